package hybridstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/logsvc/storage/disklessstore"
	"github.com/streamline-dev/streamline/logsvc/storage/localstore"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
)

// Log is one hybrid partition: a local log and its object tier.
type Log struct {
	e     *Engine
	spec  storage.PartitionSpec
	local *localstore.Log
	tier  *disklessstore.Log
	// upload: the topic is hybrid (upload rolled segments, local
	// retention, the pending bound); false for a local topic that still
	// has a tier from when it was hybrid (LocalEngine).
	upload bool

	rev                 atomic.Int64 // partition record revision commits are fenced by
	localMs, localBytes atomic.Int64 // effective local.retention.*

	mu      sync.Mutex
	leading bool
	stop    chan struct{}
	done    chan struct{}
}

var (
	_ storage.Log          = (*Log)(nil)
	_ storage.SpaceChecker = (*Log)(nil)
	_ storage.Truncater    = (*Log)(nil)
	_ storage.Tiered       = (*Log)(nil)
)

// Append implements storage.Log: the local log's (WAL, then segment).
// An uploading partition's bytes count towards the node's upload pace.
func (l *Log) Append(batch []byte, h recbatch.Header) <-chan error {
	if l.upload {
		l.e.pace.added(len(batch))
	}
	return l.local.Append(batch, h)
}

// CheckSpace implements storage.SpaceChecker: the local disk's free space,
// and the bound on bytes the tier does not hold yet. Over the bound the
// partition's writer waits up to a second for uploads to catch up
// (backpressure), then the produce is refused (KAFKA_STORAGE_ERROR, which
// clients retry); nothing stored is dropped.
func (l *Log) CheckSpace() error {
	if err := l.local.CheckSpace(); err != nil || !l.upload {
		return err
	}
	limit := l.e.opts.MaxPendingBytes
	pending := l.local.BytesFrom(l.tier.EndOffset())
	for i := 0; pending > limit && i < 20; i++ {
		time.Sleep(50 * time.Millisecond)
		pending = l.local.BytesFrom(l.tier.EndOffset())
	}
	if pending > limit {
		return fmt.Errorf("%w: %s-%d holds %d bytes the object tier does not have yet (bound %d, --hybrid-max-pending-bytes): uploads are failing or behind",
			storage.ErrNoSpace, l.spec.Topic.Name, l.spec.Partition, pending, limit)
	}
	return nil
}

// tierBelow is the tier's range below the local log: [start, end) with
// end <= the local start, empty when the tier has nothing the local copy
// lacks.
func (l *Log) tierBelow() (start, localStart int64, ok bool) {
	localStart = l.local.StartOffset()
	ts, te := l.tier.StartOffset(), l.tier.EndOffset()
	return ts, localStart, ts < te && ts < localStart
}

// Read implements storage.Log: local segments at and above the local log
// start, the object tier below it.
func (l *Log) Read(offset int64, maxBytes int, maxOffset int64, minOne bool) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		ts, ls, tiered := l.tierBelow()
		if offset >= ls {
			b, err := l.local.Read(offset, maxBytes, maxOffset, minOne)
			if errors.Is(err, storage.ErrOffsetOutOfRange) && offset < l.local.StartOffset() && attempt == 0 {
				continue // local retention moved the start meanwhile: the tier has it
			}
			return b, err
		}
		if !tiered || offset < ts {
			return nil, storage.ErrOffsetOutOfRange
		}
		return l.tier.Read(offset, maxBytes, min(maxOffset, l.tier.EndOffset()), minOne)
	}
}

// StartOffset implements storage.Log: the tier's start when it holds data
// below the local copy.
func (l *Log) StartOffset() int64 {
	ts, ls, tiered := l.tierBelow()
	if tiered {
		return ts
	}
	return ls
}

// EndOffset implements storage.Log: the local log's end.
func (l *Log) EndOffset() int64 { return l.local.EndOffset() }

// TierStart implements storage.Tiered: the first offset a follower must
// hold locally, the tier's committed end (or the local start when the
// tier is behind it): a rebuilt or new replica copies only the tail.
func (l *Log) TierStart() int64 {
	return min(max(l.local.StartOffset(), l.tier.EndOffset()), l.local.EndOffset())
}

// LocalStart implements storage.Tiered: the local copy's first offset.
func (l *Log) LocalStart() int64 { return l.local.StartOffset() }

// OffsetForTimestamp implements storage.Log: the tier first, for records
// below the local copy, then the local segments.
func (l *Log) OffsetForTimestamp(ts int64) (int64, int64, bool, error) {
	if _, ls, tiered := l.tierBelow(); tiered {
		o, t, ok, err := l.tier.OffsetForTimestamp(ts)
		if err != nil {
			return 0, 0, false, err
		}
		if ok && o < ls {
			return o, t, true, nil
		}
	}
	return l.local.OffsetForTimestamp(ts)
}

// ScanHeaders implements storage.Log: the tier's manifest entries stand
// for the batches below the local copy (their epochs and idempotent
// producers' last batches), then the local batches.
func (l *Log) ScanHeaders(from int64, fn func(recbatch.Header) error) error {
	if _, ls, tiered := l.tierBelow(); tiered && from < ls {
		errPast := errors.New("past the tier")
		err := l.tier.ScanHeaders(from, func(h recbatch.Header) error {
			if h.BaseOffset >= ls {
				return errPast
			}
			return fn(h)
		})
		if err != nil && !errors.Is(err, errPast) {
			return err
		}
		from = ls
	}
	return l.local.ScanHeaders(max(from, l.local.StartOffset()), fn)
}

// ApplyRetention implements storage.Log. retention.ms and retention.bytes
// cover the whole log: the local copy is trimmed by them and by
// local.retention.* (below the tier's end) first, then the tier (by an
// uploader, fenced) to what the limits keep once the local bytes it lacks
// are counted. Local first: the tier's part is judged against the local
// start retention leaves, so a tier range that local retention has just
// uncovered is not left behind as the log's start.
func (l *Log) ApplyRetention(ms, bytes int64) error {
	errs := []error{l.local.ApplyRetention(ms, bytes), l.applyLocalRetention()}
	if l.isLeading() {
		if _, _, tiered := l.tierBelow(); tiered {
			if err := l.refreshRevision(); err != nil {
				return errors.Join(append(errs, err)...)
			}
			budget := bytes
			if bytes >= 0 {
				budget = max(bytes-l.local.BytesFrom(l.tier.EndOffset()), 0)
			}
			errs = append(errs, l.tier.ApplyRetention(ms, budget))
		}
	}
	return errors.Join(errs...)
}

// applyLocalRetention deletes local segments that the tier holds and that
// local.retention.* no longer keeps.
func (l *Log) applyLocalRetention() error {
	ms, bytes := l.localMs.Load(), l.localBytes.Load()
	if ms < 0 && bytes < 0 {
		return nil
	}
	return l.local.ApplyRetentionBelow(ms, bytes, l.tier.EndOffset())
}

// DeleteRecords implements storage.Log on both parts: the tier's stored
// start (an uploader's fenced trim, which deletes the entries wholly below
// it), then the local start.
func (l *Log) DeleteRecords(offset int64) error {
	if offset > l.EndOffset() {
		return fmt.Errorf("%w: cannot delete below %d, the log ends at %d", storage.ErrOffsetOutOfRange, offset, l.EndOffset())
	}
	if offset <= l.StartOffset() {
		return nil
	}
	if offset > l.tier.StartOffset() {
		// The tier's stored start moves to offset even past its end: an
		// upload committed meanwhile, or a new leader reading the tier,
		// never shows what lies below it.
		if err := l.refreshRevision(); err != nil {
			return err
		}
		if err := l.tier.TrimTo(offset); err != nil {
			return err
		}
	}
	if offset > l.local.StartOffset() {
		return l.local.DeleteRecords(offset)
	}
	return nil
}

// Reconfigure implements storage.Log: segment settings and local retention.
func (l *Log) Reconfigure(t meta.Topic) {
	l.local.Reconfigure(t)
	ms, bytes := int64(-1), int64(-1)
	if l.upload {
		ms, bytes = t.LocalRetention(l.spec.Defaults)
	}
	l.localMs.Store(ms)
	l.localBytes.Store(bytes)
}

// Size implements storage.Log: what is on this node's disk (Kafka's
// DescribeLogDirs reports the local log of tiered topics).
func (l *Log) Size() int64 { return l.local.Size() }

// TruncateTo implements storage.Truncater on the local copy.
func (l *Log) TruncateTo(offset int64) (int64, error) { return l.local.TruncateTo(offset) }

// ResetTo implements storage.Truncater on the local copy.
func (l *Log) ResetTo(offset int64) error { return l.local.ResetTo(offset) }

// Close stops uploading and closes the local log.
func (l *Log) Close() error {
	l.stopLeading()
	return errors.Join(l.local.Close(), l.tier.Close())
}

// Remove stops uploading and deletes the local copy (the topic's manifest
// went with it in etcd; its objects are collected).
func (l *Log) Remove() error {
	l.stopLeading()
	return errors.Join(l.local.Remove(), l.tier.Remove())
}

// Lead implements storage.Tiered: this node leads the partition, so it
// uploads rolled segments below hw() (the high watermark) and applies
// local retention after each commit, until Close.
func (l *Log) Lead(hw func() int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leading {
		return
	}
	l.leading, l.stop, l.done = true, make(chan struct{}), make(chan struct{})
	if !l.upload {
		close(l.done) // leads (trims the tier by retention) but uploads nothing
		return
	}
	go l.uploadLoop(hw, l.stop, l.done)
}

func (l *Log) isLeading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leading
}

func (l *Log) stopLeading() {
	l.mu.Lock()
	stop, done := l.stop, l.done
	if l.leading {
		close(stop)
		l.leading = false
	}
	l.mu.Unlock()
	if done != nil {
		<-done
	}
}

// refreshRevision points commits and trims at the partition record's
// current revision while this node still leads it at its epoch, or
// answers storage.ErrFenced.
func (l *Log) refreshRevision() error {
	if l.e.opts.LeaderRevision == nil {
		return nil
	}
	rev, ok := l.e.opts.LeaderRevision(l.spec.Topic.Name, l.spec.Partition, l.spec.Leader.LeaderEpoch)
	if !ok {
		return fmt.Errorf("%w: %s-%d is no longer led by this node at epoch %d", storage.ErrFenced, l.spec.Topic.Name, l.spec.Partition, l.spec.Leader.LeaderEpoch)
	}
	l.rev.Store(rev)
	l.tier.SetLeaderRevision(rev)
	return nil
}

// uploadCtx bounds one upload and commit.
func (l *Log) uploadCtx(stop <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), l.e.opts.UploadTimeout)
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
