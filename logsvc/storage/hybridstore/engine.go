// Package hybridstore is the storage engine of hybrid topics (Kafka's
// tiered storage, KIP-405): a partition is a local log - the node WAL,
// group commit, segments, replication to followers, exactly as local
// topics - plus an object tier that holds its older segments.
//
// The leader uploads each rolled segment, once the high watermark has
// passed it (an upload never holds a batch a new leader could truncate),
// through an uploader (UploadService.UploadSegment: the segment object
// format of merged diskless data, with its block index), and has the
// uploader commit its manifest entry in etcd, fenced by the partition
// record like every commit. Uploads are off the acknowledgement path:
// produces are acknowledged at the WAL fsync (and the ISR for acks=all) as
// for local topics. Local segments wholly below the tier's committed end
// are then deleted by local.retention.ms / local.retention.bytes (KIP-405's
// names); retention.ms / retention.bytes apply to the whole log (the tier
// is trimmed by an uploader, the local copy by its own retention).
//
// Reads at or above the local log start go to the local segments; below
// it, to the tier (package disklessstore's read path: manifest, cached
// segment index, chunked range GETs, prefetch). A new leader's log is the
// tier's manifest plus its local tail: its local copy starts where the
// tier ended when it was rebuilt (followers fetch only from the tier's end,
// see storage.TierStart), and its idempotent-producer and leader-epoch
// history below that come from the manifest entries (each carries its
// producers' last batches and its epoch starts, as KIP-1023's snapshots).
//
// When uploads fail (object store down, no uploader) the local copy keeps
// everything above the tier's end; once that exceeds
// Options.MaxPendingBytes, produce is held back for a moment and then
// refused with KAFKA_STORAGE_ERROR (retriable): an acknowledged record is
// never dropped to make room. Uploads resume by themselves.
package hybridstore

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/logsvc/storage/disklessstore"
	"github.com/streamline-dev/streamline/logsvc/storage/localstore"
	"github.com/streamline-dev/streamline/shared/meta"
)

// Options configure the engine.
type Options struct {
	// Local is the node's local engine: hybrid partitions share its WAL
	// and partition directories (a partition keeps its directory when its
	// topic changes between local and hybrid).
	Local *localstore.Engine
	// Tier reads, trims and tracks the object tier (its manifest is the
	// same as a diskless partition's).
	Tier *disklessstore.Engine
	// Store reads the manifests (whether a local partition has a tier).
	Store *meta.Store
	// Uploaders hands out clients of live uploaders, in the order to try.
	Uploaders disklessstore.Uploaders
	NodeID    string
	// LeaderRevision returns the current etcd revision of the partition
	// record if this node still leads it at epoch: commits are fenced by
	// the record's revision, which ISR changes also move.
	LeaderRevision func(topic string, partition, epoch int32) (int64, bool)
	// MaxPendingBytes bounds a partition's local bytes not yet in the tier
	// (0: 1 GiB); past it, produce is held back and then refused.
	MaxPendingBytes int64
	// UploadInterval is how often a leader looks for rolled segments to
	// upload (default 1 s).
	UploadInterval time.Duration
	// UploadTimeout bounds one segment upload (default 10 min).
	UploadTimeout time.Duration
	// UploadParallelism bounds the segment uploads this node runs at
	// once, over all its partitions (default 2): rolled segments of many
	// partitions become ready together, and uploading them all at once
	// takes the CPU from the produce path in bursts.
	UploadParallelism int
	// UploadBytesPerSecond paces what this node reads from its disk and
	// sends to uploaders for segment uploads, over all partitions: a
	// bound in bytes per second (Kafka's
	// remote.log.manager.copy.max.bytes.per.second, KIP-956), 0 (the
	// default) for an automatic pace of twice the node's hybrid ingest
	// rate, at least 16 MiB/s, or UnlimitedUploadRate. See pace.go.
	UploadBytesPerSecond int64
	Logger               *slog.Logger
	// Failpoint, if set, is called at each step of a segment upload with
	// its name (crash tests kill the process there).
	Failpoint func(step string)
}

// The steps of a segment upload a Failpoint sees on the log-service side
// (the uploader has its own: before and after its PUT).
const (
	FailBeforeCommit      = "hybrid-before-commit"       // uploaded, not committed
	FailAfterCommit       = "hybrid-after-commit"        // committed, local copy untouched
	FailBeforeLocalDelete = "hybrid-before-local-delete" // local retention about to delete uploaded segments
)

func (e *Engine) failpoint(step string) {
	if e.opts.Failpoint != nil {
		e.opts.Failpoint(step)
	}
}

// Engine is the hybrid storage.Engine of one node.
type Engine struct {
	opts Options
	log  *slog.Logger
	// uploads holds a token per running segment upload (UploadParallelism).
	uploads chan struct{}
	// pace spreads uploads over time (UploadBytesPerSecond).
	pace *pacer

	uploadedSegments, uploadedBytes, uploadFailures atomic.Uint64
}

var _ storage.Engine = (*Engine)(nil)

// New returns the engine.
func New(opts Options) *Engine {
	if opts.MaxPendingBytes <= 0 {
		opts.MaxPendingBytes = 1 << 30
	}
	if opts.UploadInterval <= 0 {
		opts.UploadInterval = time.Second
	}
	if opts.UploadTimeout <= 0 {
		opts.UploadTimeout = 10 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.UploadParallelism <= 0 {
		opts.UploadParallelism = 2
	}
	return &Engine{opts: opts, log: opts.Logger, uploads: make(chan struct{}, opts.UploadParallelism),
		pace: newPacer(opts.UploadBytesPerSecond, time.Now)}
}

// Mode is hybrid.
func (e *Engine) Mode() meta.StorageMode { return meta.StorageHybrid }

// Open opens the partition's local log and its tier view. Uploading
// starts when the node leads it (Lead).
func (e *Engine) Open(spec storage.PartitionSpec) (storage.Log, error) {
	lg, err := e.opts.Local.Open(spec)
	if err != nil {
		return nil, err
	}
	tier, err := e.opts.Tier.OpenTier(spec)
	if err != nil {
		lg.Close()
		return nil, err
	}
	l := &Log{e: e, spec: spec, local: lg.(*localstore.Log), tier: tier, upload: spec.Topic.StorageMode == meta.StorageHybrid}
	l.rev.Store(spec.Leader.ModRevision)
	l.Reconfigure(spec.Topic)
	return l, nil
}

// LocalEngine is the engine of local topics on a node with an object
// tier. A local partition whose topic was hybrid before (live migration
// back to local) keeps reading the history its tier holds - nothing is
// uploaded any more, retention still trims the tier - while one that never
// had a tier is a plain local log (one etcd read at open tells them apart).
func (e *Engine) LocalEngine() storage.Engine { return localEngine{e} }

type localEngine struct{ e *Engine }

func (v localEngine) Mode() meta.StorageMode { return meta.StorageLocal }
func (v localEngine) Close() error           { return nil }

func (v localEngine) Open(spec storage.PartitionSpec) (storage.Log, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	end, _, err := v.e.opts.Store.CommittedEnd(ctx, spec.Topic.ID, spec.Partition)
	if err != nil {
		return nil, fmt.Errorf("local %s-%d: reading its tier's end: %w", spec.Topic.Name, spec.Partition, err)
	}
	if end == 0 {
		return v.e.opts.Local.Open(spec)
	}
	return v.e.Open(spec)
}

// Close does nothing: the logs are closed by their partitions, and the
// local and diskless engines are closed by the node.
func (e *Engine) Close() error { return nil }

// Stats are the engine's upload counters.
type Stats struct {
	UploadedSegments, UploadedBytes, UploadFailures uint64
}

// Stats returns the upload counters (for metrics and tests).
func (e *Engine) Stats() Stats {
	return Stats{e.uploadedSegments.Load(), e.uploadedBytes.Load(), e.uploadFailures.Load()}
}
