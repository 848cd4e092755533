// Package storage is the seam between a partition and where its bytes live.
// A topic's storage mode picks an Engine; the Engine opens one Log per
// partition. The partition (package partition) owns offsets, validation and
// idempotence; a Log only stores batches whose offsets are already assigned,
// and says when each one is durable under its mode's rules:
//
//	local     durable = fsynced in the node WAL (then applied to local segments)
//	hybrid    durable = fsynced in the node WAL (rolled segments then move to object storage: hybridstore)
//	diskless  durable = PUT to object storage and committed to etcd (disklessstore)
//
// The seed plan's three strategies map onto this seam: the buffer strategy
// is how an Engine groups appends before they become durable (local:
// write-through into the WAL's group commit), the WAL backend is the Engine's
// durability step, and the segment backend is where Read finds batches.
// storagetest holds the conformance suite every Engine must pass.
package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
)

var (
	// ErrOffsetOutOfRange: a read or lookup outside [StartOffset, EndOffset].
	ErrOffsetOutOfRange = errors.New("offset out of range")
	// ErrClosed: the log or engine was closed.
	ErrClosed = errors.New("storage closed")
	// ErrNoLocalData: PartitionSpec.MustExist and this node has no data
	// for the partition.
	ErrNoLocalData = errors.New("this node has no data for the partition")
	// ErrFenced: the durability step was refused because the partition's
	// leadership moved on (a newer leader epoch); the partition must stop
	// (Kafka NOT_LEADER_OR_FOLLOWER).
	ErrFenced = errors.New("fenced: the partition has a newer leader")
	// ErrStorage wraps failures of the durability step (fsync, upload); the
	// partition stops accepting writes (Kafka KAFKA_STORAGE_ERROR).
	ErrStorage = errors.New("storage failure")
	// ErrNoSpace means the node's disk is (nearly) full: the append is
	// refused before it got an offset, and the partition stays healthy;
	// writes resume once space is freed (Kafka KAFKA_STORAGE_ERROR, which
	// clients retry).
	ErrNoSpace = errors.New("no space left for the log")
)

// SpaceChecker is implemented by logs on a local disk: CheckSpace returns
// an error wrapping ErrNoSpace when an append should be refused for lack
// of space. The partition asks before it assigns an offset.
type SpaceChecker interface {
	CheckSpace() error
}

// Log is one partition's storage. Append is called by the partition's single
// writer, in offset order; everything else may be called concurrently.
type Log interface {
	// Append stores a batch whose baseOffset is already patched to
	// EndOffset-so-far. The returned channel yields exactly one value: nil
	// once the batch is durable (and readable), or an error. Batches become
	// durable in append order.
	Append(batch []byte, h recbatch.Header) <-chan error
	// Read returns whole batches starting with the one containing offset,
	// none at or beyond maxOffset, at most maxBytes unless minOne and the
	// first batch is larger.
	Read(offset int64, maxBytes int, maxOffset int64, minOne bool) ([]byte, error)
	// StartOffset is the first retained offset.
	StartOffset() int64
	// EndOffset is one past the last durable offset.
	EndOffset() int64
	// OffsetForTimestamp is Kafka ListOffsets by time: the first offset whose
	// record timestamp is >= ts.
	OffsetForTimestamp(ts int64) (offset, timestamp int64, found bool, err error)
	// ScanHeaders walks the headers of stored batches from offset on, to
	// rebuild idempotent-producer, leader-epoch and transaction state.
	// Engines that scan the batches themselves (local, and hybrid's local
	// part) fill Header.Marker for control batches (commit or abort);
	// headers rebuilt from other records (diskless manifests, the hybrid
	// tier) carry no transactional or control bits, which is why those
	// modes take no transactions.
	ScanHeaders(from int64, fn func(h recbatch.Header) error) error
	// ApplyRetention deletes data older than retentionMs or beyond
	// retentionBytes (-1 disables either), whole segments at a time.
	ApplyRetention(retentionMs, retentionBytes int64) error
	// DeleteRecords advances StartOffset to offset (Kafka DeleteRecords):
	// reads below it fail with ErrOffsetOutOfRange, OffsetForTimestamp
	// never answers below it, storage wholly below it is freed, and the
	// new start is durable (it survives a reopen) before it returns.
	// offset may lie inside a batch. An offset at or below StartOffset
	// changes nothing; above EndOffset it is ErrOffsetOutOfRange. Callers
	// pass at most the high watermark.
	DeleteRecords(offset int64) error
	// Reconfigure applies a changed definition of the partition's topic
	// (AlterConfigs) to the open log: the settings the engine reads while
	// running (local: segment.bytes, segment.ms; diskless:
	// remote.storage.batch.size.bytes and .timeout.ms) apply to later
	// appends. Retention limits are passed to ApplyRetention by the caller.
	Reconfigure(t meta.Topic)
	// Size is the bytes stored for the partition now, as Kafka
	// DescribeLogDirs reports them: local, the segment (log) files,
	// indexes and checkpoints excluded; diskless, the byte lengths of the
	// committed manifest entries, from memory (no etcd or object-store
	// call). It grows with appends and shrinks when DeleteRecords or
	// retention frees whole segments or entries.
	Size() int64
	// Close releases the log; Remove also deletes its data (topic deleted).
	Close() error
	Remove() error
}

// Truncater is implemented by logs that can serve as follower copies of a
// replicated partition (local): a follower removes the suffix its leader
// does not have, or starts over at the leader's log start. Both are
// durable when they return and survive a crash at any step (WAL replay
// never brings a truncated batch back); both go after the appends
// submitted before them.
type Truncater interface {
	// TruncateTo removes the batch containing offset and every later one
	// and returns the new end offset (at most offset; unchanged if offset
	// is at or past the end). offset must be above StartOffset.
	TruncateTo(offset int64) (int64, error)
	// ResetTo empties the log; it then starts and ends at offset.
	ResetTo(offset int64) error
}

// Tiered is implemented by logs whose older data lives in an object tier
// (hybrid). The node calls Lead once it leads the partition: the log then
// uploads what hw (the high watermark) has passed, until it is closed.
// TierStart is the first offset a follower must hold locally - the tier's
// end - so followers, and replicas being rebuilt, copy only the tail.
type Tiered interface {
	Lead(hw func() int64)
	TierStart() int64
	// LocalStart is the first offset on this node's disk.
	LocalStart() int64
}

// ContextAppender is implemented by Logs whose Append can use the produce
// request's context, to trace the wait for durability as part of the
// request (the diskless engine's buffer wait). The partition calls
// AppendContext instead of Append when its Log has it; the contract is
// Append's, and ctx carries values only (it never cancels the append).
type ContextAppender interface {
	AppendContext(ctx context.Context, batch []byte, h recbatch.Header) <-chan error
}

// PartitionSpec is what an Engine needs to open a partition's Log.
type PartitionSpec struct {
	Topic     meta.Topic
	Partition int32
	// Defaults are the server's topic config defaults.
	Defaults meta.Defaults
	// Leader is the partition record this node leads it under (epoch and
	// etcd revision), for engines whose commits are fenced by it.
	Leader meta.Partition
	// MustExist refuses to create the partition's data if this node has
	// none: the partition already had a life (leader epoch > 0), and an
	// empty log here would restart it at offset 0 (ErrNoLocalData).
	MustExist bool
}

// Stream names a partition's data: the topic id (not the name, which can be
// reused after a delete) and the partition number.
func (s PartitionSpec) Stream() string { return StreamName(s.Topic.ID, s.Partition) }

// StreamName is the stable name of a partition's data in the WAL and on disk.
func StreamName(id meta.TopicID, partition int32) string {
	return fmt.Sprintf("%s-%d", id, partition)
}

// Engine opens partition logs of one storage mode.
type Engine interface {
	Mode() meta.StorageMode
	Open(spec PartitionSpec) (Log, error)
	Close() error
}

// Engines selects the Engine for each storage mode: the seed plan's
// StorageBackendFactory.
type Engines map[meta.StorageMode]Engine

// For returns the engine for mode, or an error saying the mode is not
// available on this node.
func (e Engines) For(mode meta.StorageMode) (Engine, error) {
	if eng, ok := e[mode]; ok {
		return eng, nil
	}
	if err := mode.Supported(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: storage.mode=%s has no engine on this node", meta.ErrUnsupportedStorageMode, mode)
}
