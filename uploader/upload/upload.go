// Package upload is the uploader's core: encode a flush as one object
// (package objectfmt), write it to object storage, and return each
// partition's coordinates, ready to be committed to etcd.
package upload

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/objstore"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/uploader/objectfmt"
)

// ObjectWriter is what an uploader needs of object storage: one PUT of an
// immutable, uniquely named object (objstore.Bucket implementations
// satisfy it).
type ObjectWriter interface {
	Put(ctx context.Context, key string, data []byte) error
}

// Committer is what an uploader needs of etcd (meta.Store satisfies it):
// the fenced writes of manifest keys.
type Committer interface {
	Commit(ctx context.Context, commits []meta.PartitionCommit) []error
	AdvanceLogStart(ctx context.Context, topic string, id meta.TopicID, p int32, leaderRevision, start int64) (int64, error)
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
	Topic       string
	TopicID     meta.TopicID
	Partition   int32
	LeaderEpoch int32
	Batches     [][]byte
}

// ErrInvalidFlush means the flush itself is malformed; nothing was written.
var ErrInvalidFlush = errors.New("invalid flush")

// Write encodes the flush as one object (see objectfmt) and PUTs it. It
// returns the key and, per partition in flush order, the coordinates of
// its bytes, ready to commit.
func Write(ctx context.Context, w ObjectWriter, f Flush) (string, []meta.Coords, error) {
	b := objectfmt.NewBuilder()
	producers := make([][]meta.ProducerBatch, len(f.Partitions))
	txns := make([]meta.TxnRecorder, len(f.Partitions))
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
			txns[i].Add(h, batch)
			if h.Idempotent() && !h.Control() {
				producers[i] = append(producers[i], meta.ProducerBatch{
					ProducerID: h.ProducerID, Epoch: h.ProducerEpoch, FirstSeq: h.BaseSequence, LastSeq: h.LastSequence(),
					BaseOffset: h.BaseOffset, LastOffset: h.LastOffset(),
				})
			}
		}
	}
	if len(f.Partitions) == 0 {
		return "", nil, fmt.Errorf("%w: no partitions", ErrInvalidFlush)
	}
	obj, sections := b.Build()
	key := objectfmt.NewKey(f.NodeID, f.Seq, objstore.SpreadsKeys(w))
	if err := w.Put(ctx, key, obj); err != nil {
		return "", nil, fmt.Errorf("put %s: %w", key, err)
	}
	// Sections come out in first-appearance order: flush order, since every
	// partition appears once.
	out := make([]meta.Coords, len(sections))
	for i, s := range sections {
		out[i] = meta.Coords{
			Object: key, Position: s.Position, Length: s.Length, BaseOffset: s.BaseOffset, LastOffset: s.LastOffset,
			MaxTimestamp: s.MaxTimestamp, LeaderEpoch: f.Partitions[i].LeaderEpoch, Producers: producers[i],
			Txns: txns[i].Events(),
		}
	}
	return key, out, nil
}
