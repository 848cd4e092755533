package uploader

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/uploader/objectfmt"
)

// ObjectWriter is what an uploader needs of object storage: one PUT of an
// immutable, uniquely named object. (objstore.Bucket implementations
// satisfy it.)
type ObjectWriter interface {
	Put(ctx context.Context, key string, data []byte) error
}

// Committer is what an uploader needs of etcd (meta.Store satisfies it).
type Committer interface {
	Commit(ctx context.Context, commits []meta.PartitionCommit) []error
}

// Flush is one log-service node's flush: batches of many partitions.
type Flush struct {
	NodeID     string
	Seq        uint64
	Partitions []PartitionBatches
}

// PartitionBatches are one partition's batches in a flush, contiguous and
// in offset order.
type PartitionBatches struct {
	Topic          string
	TopicID        meta.TopicID
	Partition      int32
	LeaderEpoch    int32
	LeaderRevision int64
	Batches        [][]byte
}

// Outcome is one partition's commit result (Err nil = committed).
type Outcome struct {
	Err          error
	CommittedEnd int64
}

// ErrInvalidFlush means the flush itself is malformed; nothing was written.
var ErrInvalidFlush = errors.New("invalid flush")

// Upload writes the flush as one object and commits every partition's
// range, fenced by its leader revision and in offset order. It returns the
// object key and one outcome per partition. An error means nothing was
// committed (the object, if written, is an orphan for garbage collection).
func Upload(ctx context.Context, w ObjectWriter, c Committer, f Flush) (string, []Outcome, error) {
	b := objectfmt.NewBuilder()
	producers := make([][]meta.ProducerBatch, len(f.Partitions))
	seen := map[string]bool{}
	for i, p := range f.Partitions {
		k := fmt.Sprintf("%s/%d", p.TopicID, p.Partition)
		if seen[k] {
			return "", nil, fmt.Errorf("%w: partition %s-%d appears twice", ErrInvalidFlush, p.Topic, p.Partition)
		}
		seen[k] = true
		if len(p.Batches) == 0 {
			return "", nil, fmt.Errorf("%w: partition %s-%d has no batches", ErrInvalidFlush, p.Topic, p.Partition)
		}
		for _, batch := range p.Batches {
			h, err := recbatch.ParseHeader(batch)
			if err != nil || h.Size() != len(batch) {
				return "", nil, fmt.Errorf("%w: partition %s-%d: not one whole record batch (%v)", ErrInvalidFlush, p.Topic, p.Partition, err)
			}
			if err := b.Add(p.TopicID, p.Partition, batch, h.BaseOffset, h.LastOffset(), h.MaxTimestamp); err != nil {
				return "", nil, fmt.Errorf("%w: %v", ErrInvalidFlush, err)
			}
			if h.Idempotent() && !h.Control() {
				producers[i] = append(producers[i], meta.ProducerBatch{
					ProducerID: h.ProducerID, Epoch: h.ProducerEpoch, FirstSeq: h.BaseSequence, LastSeq: h.LastSequence(),
					BaseOffset: h.BaseOffset, LastOffset: h.LastOffset(),
				})
			}
		}
	}
	obj, sections := b.Build()
	key := objectfmt.NewKey(f.NodeID, f.Seq)
	if err := w.Put(ctx, key, obj); err != nil {
		return "", nil, fmt.Errorf("put %s: %w", key, err)
	}
	// Sections come out in first-appearance order, which is partition order
	// here because every partition appears once in f.Partitions.
	commits := make([]meta.PartitionCommit, len(sections))
	for i, s := range sections {
		p := f.Partitions[i]
		commits[i] = meta.PartitionCommit{
			Topic: p.Topic, TopicID: p.TopicID, Partition: p.Partition, LeaderRevision: p.LeaderRevision,
			Ranges: []meta.Coords{{
				Object: key, Position: s.Position, Length: s.Length, BaseOffset: s.BaseOffset, LastOffset: s.LastOffset,
				MaxTimestamp: s.MaxTimestamp, LeaderEpoch: p.LeaderEpoch, Producers: producers[i],
			}},
		}
	}
	errs := c.Commit(ctx, commits)
	out := make([]Outcome, len(commits))
	for i := range commits {
		out[i] = Outcome{Err: errs[i], CommittedEnd: -1}
		if errs[i] == nil {
			out[i].CommittedEnd = sections[i].LastOffset + 1
		}
	}
	return key, out, nil
}
