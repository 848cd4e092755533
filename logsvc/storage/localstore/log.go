package localstore

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamline-dev/streamline/logsvc/segment"
	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/logsvc/wal"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
)

// applierQueue bounds batches waiting for their WAL fsync per partition;
// a full queue blocks the partition's writer (backpressure).
const applierQueue = 1024

type opKind int

const (
	opAppend opKind = iota
	opDeleteRecords
	opTruncate
)

type op struct {
	kind  opKind
	batch []byte
	seq   uint64
	wal   <-chan error
	res   chan error
	// delete records below
	offset int64
	// truncate: reset (empty the log at offset) or truncate to offset;
	// the new end is answered in newEnd
	reset  bool
	newEnd *int64
}

// Log is one local partition: the segment log plus the goroutine that
// applies WAL-durable batches to it. Appends, DeleteRecords and truncation
// go through that goroutine, in order; retention and checkpoint fsyncs run
// beside it (the segment's writer lock serializes retention with appends,
// and holds it only while it detaches segments; see sync for fsyncs).
type Log struct {
	e        *Engine
	stream   string
	seg      *segment.Log
	defaults meta.Defaults

	mu       sync.Mutex // guards closed and sends on ops
	closed   bool
	ops      chan op
	done     chan struct{}
	stopping chan struct{} // closed by close: a stalled segment append gives up

	applied atomic.Uint64 // WAL seq of the last batch applied to the segment
	stalled atomic.Bool   // a segment write is being retried (disk full)
	failed  atomic.Pointer[error]
}

func newLog(e *Engine, stream string, seg *segment.Log, defaults meta.Defaults) *Log {
	l := &Log{e: e, stream: stream, seg: seg, defaults: defaults, ops: make(chan op, applierQueue), done: make(chan struct{}), stopping: make(chan struct{})}
	go l.apply()
	return l
}

func (l *Log) apply() {
	defer close(l.done)
	deferring := false // a WAL-durable batch was handed to the engine: so are the rest
	for o := range l.ops {
		switch o.kind {
		case opAppend:
			err := <-o.wal
			switch {
			case err != nil:
			case deferring:
				l.e.deferApply(l.stream, o.batch)
				err = errStalled
			case l.failed.Load() != nil:
				err = *l.failed.Load()
			default:
				if err = l.appendDurable(o.batch); err == nil {
					l.applied.Store(o.seq)
				} else if errors.Is(err, errStalled) {
					deferring = true
					l.e.deferApply(l.stream, o.batch)
				}
			}
			if err != nil {
				err = fmt.Errorf("%w: %s: %v", storage.ErrStorage, l.stream, err)
				l.failed.CompareAndSwap(nil, &err)
			}
			o.res <- err
		case opDeleteRecords:
			o.res <- mapErr(l.seg.DeleteBefore(o.offset))
		case opTruncate:
			o.res <- mapErr(l.truncate(o.offset, o.reset, o.newEnd))
		}
	}
}

// errStalled: the log was closed while a WAL-durable batch could not be
// written to its segment (disk full).
var errStalled = errors.New("log closed while the disk was full; the batch is applied when the partition reopens")

// appendDurable appends a batch that is durable in the WAL to the segment.
// It must not be dropped (the WAL would then hold a record the segment
// lacks, and a later batch given the same offset would be shadowed by it at
// the next replay), so a failed write (disk full) is retried, with backoff,
// until it succeeds: the partition's acks wait meanwhile (backpressure). If
// the log is closed first, errStalled: the caller hands the batch to the
// engine, which appends it before the partition is opened again.
func (l *Log) appendDurable(batch []byte) error {
	backoff := 10 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := l.seg.Append(batch)
		if err == nil || errors.Is(err, segment.ErrOffsetMismatch) || errors.Is(err, segment.ErrClosed) || errors.Is(err, recbatch.ErrInvalid) {
			return err
		}
		if attempt == 0 {
			// New appends are refused meanwhile (CheckSpace), so the
			// backlog behind this batch does not grow.
			l.stalled.Store(true)
			defer l.stalled.Store(false)
			l.e.log.Warn("segment write failed; retrying until it succeeds (the batch is durable in the WAL)", "stream", l.stream, "err", err)
		}
		select {
		case <-l.stopping:
			return fmt.Errorf("%w: %v", errStalled, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// send queues an op unless the log is closed.
func (l *Log) send(o op) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return storage.ErrClosed
	}
	l.ops <- o
	return nil
}

// Append implements storage.Log. The WAL append and the hand-off to the
// applier happen in the caller's (the partition writer's) order, so both
// the WAL and the segment see batches in offset order.
func (l *Log) Append(batch []byte, h recbatch.Header) <-chan error {
	res := make(chan error, 1)
	if f := l.failed.Load(); f != nil {
		res <- *f
		return res
	}
	seq, walDone := l.e.wal.Append(wal.Record{Stream: l.stream, Offset: h.BaseOffset, Data: batch})
	if err := l.send(op{kind: opAppend, batch: batch, seq: seq, wal: walDone, res: res}); err != nil {
		res <- err
	}
	return res
}

// sync fsyncs the segment and returns the WAL seq that is now durable in
// it. It runs beside the applier, not through it: a checkpoint's fsync
// must not hold back the appends queued behind it (their acknowledgements
// wait for the applier). Every batch up to the seq read first was written
// to the segment before the fsync starts.
func (l *Log) sync() (uint64, error) {
	seq := l.applied.Load()
	if err := l.seg.Sync(); err != nil {
		return 0, mapErr(err)
	}
	return seq, nil
}

// Read implements storage.Log.
func (l *Log) Read(offset int64, maxBytes int, maxOffset int64, minOne bool) ([]byte, error) {
	b, err := l.seg.Read(offset, maxBytes, maxOffset, minOne)
	return b, mapErr(err)
}

// StartOffset implements storage.Log.
func (l *Log) StartOffset() int64 { return l.seg.StartOffset() }

// EndOffset implements storage.Log: one past the last batch applied, which
// is WAL-durable.
func (l *Log) EndOffset() int64 { return l.seg.EndOffset() }

// OffsetForTimestamp implements storage.Log.
func (l *Log) OffsetForTimestamp(ts int64) (int64, int64, bool, error) {
	o, t, ok, err := l.seg.OffsetForTimestamp(ts)
	return o, t, ok, mapErr(err)
}

// ScanHeaders implements storage.Log.
func (l *Log) ScanHeaders(from int64, fn func(recbatch.Header) error) error {
	return mapErr(l.seg.ScanHeaders(from, fn))
}

// ApplyRetention implements storage.Log.
func (l *Log) ApplyRetention(ms, bytes int64) error {
	return l.ApplyRetentionBelow(ms, bytes, math.MaxInt64)
}

// ApplyRetentionBelow is ApplyRetention keeping every segment that holds
// an offset at or above ceiling (hybrid topics: what the object tier has
// not committed stays local).
//
// It runs in the caller's goroutine, not through the applier: the segment
// serializes it with appends (its writer lock, held only to detach the
// expired segments), and the partition's appends - and the acks queued
// behind them - never wait for file removals.
func (l *Log) ApplyRetentionBelow(ms, bytes, ceiling int64) error {
	_, err := l.seg.ApplyRetentionBelow(ms, bytes, ceiling)
	return mapErr(err)
}

// SealedEnd is the first offset of the active segment: everything below
// it is in rolled segments (hybrid topics upload those).
func (l *Log) SealedEnd() int64 { return l.seg.SealedEnd() }

// SegmentEndAfter is the end of the segment holding offset.
func (l *Log) SegmentEndAfter(offset int64) int64 { return l.seg.SegmentEndAfter(offset) }

// BytesFrom is the size of the segments holding offsets at or above offset.
func (l *Log) BytesFrom(offset int64) int64 { return l.seg.BytesFrom(offset) }

// DeleteRecords implements storage.Log through the applier (the segment's
// only writer), after the appends queued before it: the segment moves its
// start and checkpoints it in the partition directory.
func (l *Log) DeleteRecords(offset int64) error {
	res := make(chan error, 1)
	if err := l.send(op{kind: opDeleteRecords, offset: offset, res: res}); err != nil {
		return err
	}
	return <-res
}

// Reconfigure implements storage.Log: the segment's rolling thresholds
// change at once (segment.Log.SetConfig is safe next to the applier's
// writes; it does not need to wait for queued appends).
func (l *Log) Reconfigure(t meta.Topic) { l.seg.SetConfig(segmentConfig(t, l.defaults)) }

// Size implements storage.Log.
func (l *Log) Size() int64 { return l.seg.Size() }

// Close drains pending appends (they complete or fail with the WAL), closes
// and fsyncs the segment. Idempotent.
func (l *Log) Close() error { return l.close(false) }

// Remove closes the log and deletes its directory.
func (l *Log) Remove() error { return l.close(true) }

func (l *Log) close(remove bool) error {
	l.mu.Lock()
	already := l.closed
	if !already {
		l.closed = true
		close(l.ops)
		close(l.stopping)
	}
	l.mu.Unlock()
	<-l.done
	var err error
	switch {
	case remove:
		// Entombed now (crash-safe), files removed in the background.
		l.e.dropDeferred(l.stream)
		var tomb string
		tomb, err = l.seg.Remove()
		l.e.reap(tomb)
	case !already:
		err = l.seg.Close()
	}
	if !already {
		l.e.forget(l.stream)
	}
	return err
}

func mapErr(err error) error {
	if errors.Is(err, segment.ErrOffsetOutOfRange) {
		return storage.ErrOffsetOutOfRange
	}
	if errors.Is(err, segment.ErrClosed) {
		return storage.ErrClosed
	}
	return err
}
