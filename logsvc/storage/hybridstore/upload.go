package hybridstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/streamline-dev/streamline/logsvc/storage"
	uploadv1 "github.com/streamline-dev/streamline/proto/gen/streamline/upload/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
)

// uploadChunk is how many bytes of batches one UploadSegment message
// carries when uploads are not paced (pace.go: paceChunk when they are).
const uploadChunk = 1 << 20

// errNothing means no rolled segment below the high watermark is waiting.
var errNothing = errors.New("nothing to upload")

// uploadLoop runs while this node leads the partition: every interval it
// uploads and commits the rolled segments the high watermark has passed,
// one object per local segment, then applies local retention. Failures
// are retried with backoff (object store or uploader outages); a fenced
// commit of a node that no longer leads ends the loop.
func (l *Log) uploadLoop(hw func() int64, stop, done chan struct{}) {
	defer close(done)
	// The first look comes at a random point of the interval, so the
	// partitions of a node do not all look (and upload) at the same tick.
	wait, backoff := time.Duration(rand.Int64N(int64(l.e.opts.UploadInterval))+1), l.e.opts.UploadInterval
	for {
		select {
		case <-stop:
			return
		case <-time.After(wait):
		}
		wait = l.e.opts.UploadInterval
		uploaded := false
		for {
			err := l.uploadNext(hw, stop)
			if errors.Is(err, errNothing) {
				break
			}
			if errors.Is(err, storage.ErrFenced) {
				l.e.log.Info("hybrid partition stopped uploading: no longer its leader", "topic", l.spec.Topic.Name, "partition", l.spec.Partition, "err", err)
				return
			}
			if err != nil {
				select {
				case <-stop:
					return
				default:
				}
				l.e.uploadFailures.Add(1)
				l.e.log.Warn("hybrid segment upload failed; retrying", "topic", l.spec.Topic.Name, "partition", l.spec.Partition, "err", err)
				backoff = min(2*backoff, 5*time.Second)
				wait = backoff
				break
			}
			uploaded, backoff = true, l.e.opts.UploadInterval
		}
		if uploaded {
			l.e.failpoint(FailBeforeLocalDelete)
			if err := l.applyLocalRetention(); err != nil && !errors.Is(err, storage.ErrClosed) {
				l.e.log.Warn("hybrid local retention failed", "topic", l.spec.Topic.Name, "partition", l.spec.Partition, "err", err)
			}
		}
	}
}

// uploadNext uploads and commits the next rolled segment, or answers
// errNothing.
func (l *Log) uploadNext(hw func() int64, stop <-chan struct{}) error {
	te := l.tier.EndOffset()
	from := max(te, l.local.StartOffset())
	to := min(l.local.SegmentEndAfter(from), l.local.SealedEnd(), hw())
	if to <= from {
		return errNothing
	}
	select { // a node-wide upload slot (UploadParallelism)
	case l.e.uploads <- struct{}{}:
		defer func() { <-l.e.uploads }()
	case <-stop:
		return errNothing
	}
	ctx, cancel := l.uploadCtx(stop)
	defer cancel()
	coords, err := l.uploadRange(ctx, from, to)
	if err != nil {
		return err
	}
	pc := &uploadv1.PartitionCommit{Topic: l.spec.Topic.Name, TopicId: l.spec.Topic.ID[:], Partition: l.spec.Partition,
		LeaderRevision: l.rev.Load(), Coords: coords}
	if coords.GetBaseOffset() > te {
		// The local copy starts above the tier's end (DeleteRecords or
		// retention passed it, or the topic became hybrid with data):
		// the tier continues at the local start, and its log start moves
		// with it.
		pc.ExpectedEnd = &te
	}
	l.e.failpoint(FailBeforeCommit)
	for attempt := 0; ; attempt++ {
		status, msg, err := l.commit(ctx, pc)
		if err != nil {
			return err
		}
		switch status {
		case uploadv1.CommitStatus_COMMIT_STATUS_COMMITTED:
			l.e.failpoint(FailAfterCommit)
			l.tier.Committed(meta.Coords{BaseOffset: coords.GetBaseOffset(), LastOffset: coords.GetLastOffset(), Length: coords.GetLength()})
			l.e.uploadedSegments.Add(1)
			l.e.uploadedBytes.Add(uint64(coords.GetLength()))
			return nil
		case uploadv1.CommitStatus_COMMIT_STATUS_FENCED:
			// The record changed. Still this node's at this epoch (an ISR
			// change, maybe its own) means commit again at the new
			// revision; this node's metadata cache may not show it yet,
			// so an unchanged revision is retried later, not given up:
			// only a lost leadership (refreshRevision) ends the uploads.
			before := l.rev.Load()
			if err := l.refreshRevision(); err != nil {
				return err
			}
			if l.rev.Load() == before || attempt >= 5 {
				return fmt.Errorf("commit refused at record revision %d (retrying once the metadata cache has the new record): %s", before, msg)
			}
			pc.LeaderRevision = l.rev.Load()
		case uploadv1.CommitStatus_COMMIT_STATUS_OUT_OF_ORDER:
			// This leader's view of the tier is stale: read it again; the
			// uploaded object is an orphan for the collector.
			if err := l.tier.Refresh(ctx); err != nil {
				return err
			}
			return fmt.Errorf("commit out of order (tier view reloaded): %s", msg)
		default:
			return fmt.Errorf("commit %s: %s", status, msg)
		}
	}
}

// commit sends one partition's commit to the first uploader that answers.
func (l *Log) commit(ctx context.Context, pc *uploadv1.PartitionCommit) (uploadv1.CommitStatus, string, error) {
	var errs []error
	for _, c := range l.e.opts.Uploaders() {
		resp, err := c.Commit(ctx, &uploadv1.CommitRequest{Partitions: []*uploadv1.PartitionCommit{pc}})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(resp.GetPartitions()) != 1 {
			return 0, "", fmt.Errorf("uploader answered %d partitions for 1", len(resp.GetPartitions()))
		}
		r := resp.GetPartitions()[0]
		return r.GetStatus(), r.GetMessage(), nil
	}
	if len(errs) == 0 {
		return 0, "", errors.New("no live uploader")
	}
	return 0, "", fmt.Errorf("no uploader took the commit: %w", errors.Join(errs...))
}

// uploadRange streams the local batches of [from, to) to an uploader,
// which writes them as one segment object, and returns its coordinates.
func (l *Log) uploadRange(ctx context.Context, from, to int64) (*uploadv1.Coords, error) {
	var errs []error
	for _, c := range l.e.opts.Uploaders() {
		coords, err := l.uploadTo(ctx, c, from, to)
		if err == nil {
			return coords, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil || errors.Is(err, storage.ErrOffsetOutOfRange) {
			break
		}
	}
	if len(errs) == 0 {
		return nil, errors.New("no live uploader")
	}
	return nil, fmt.Errorf("uploading %s-%d [%d, %d): %w", l.spec.Topic.Name, l.spec.Partition, from, to, errors.Join(errs...))
}

func (l *Log) uploadTo(ctx context.Context, c uploadv1.UploadServiceClient, from, to int64) (*uploadv1.Coords, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // abandons the stream on an error
	stream, err := c.UploadSegment(ctx)
	if err != nil {
		return nil, err
	}
	first := true
	for next := from; next < to; {
		b, err := l.local.Read(next, l.e.pace.chunk(), to, true)
		if err != nil {
			return nil, err
		}
		behind := l.local.BytesFrom(l.tier.EndOffset()) > l.e.opts.MaxPendingBytes/2
		if err := l.e.pace.wait(ctx, len(b), behind); err != nil {
			return nil, err
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("local log has no batches at %d (ends at %d)", next, l.local.EndOffset())
		}
		var last recbatch.Header
		if _, err := recbatch.Iterate(b, false, func(h recbatch.Header, _ []byte) error { last = h; return nil }); err != nil {
			return nil, fmt.Errorf("local batches at %d: %w", next, err)
		}
		msg := &uploadv1.UploadSegmentRequest{Batches: b}
		if first {
			msg.NodeId, msg.Topic, msg.TopicId, msg.Partition = l.e.opts.NodeID, l.spec.Topic.Name, l.spec.Topic.ID[:], l.spec.Partition
			first = false
		}
		if err := stream.Send(msg); err != nil {
			_, rerr := stream.CloseAndRecv() // the server's reason
			return nil, errors.Join(err, rerr)
		}
		next = last.NextOffset()
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, err
	}
	return resp.GetCoords(), nil
}
