// Package disklessstore is the storage engine of diskless topics: a
// partition has no local log at all. Appends go to the node's batching
// buffer (package buffer), which cuts one flush per window mixing all the
// node's diskless partitions; an uploader writes each flush to object
// storage as one object (UploadService.Upload, several in parallel) and
// then commits each partition's byte range to etcd (UploadService.Commit,
// one flush at a time, fenced by the partition's leader revision). Only
// then is a batch durable: the producer is acknowledged after both the PUT
// and the etcd commit.
//
// Reads go to the MemoryRing of recently committed batches first, then a
// byte-bounded LRU cache of object ranges, then a range GET of the object
// located through the etcd manifest. The ranges one read needs are GET
// several at a time (a consumer behind the ring reads many small ranges,
// one per flush), each GET loads the other partitions' ranges around it in
// the flush object too (intakeWindow), concurrent reads of one range or
// window share its GET, and a sequential reader's next ranges are
// prefetched into the cache.
//
// A new leader recovers everything from etcd: the log end is the committed
// end, idempotent-producer state and leader epochs come from the manifest
// entries. Offsets handed out but never committed are forgotten: they were
// never acknowledged.
package disklessstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/streamline-dev/streamline/logsvc/buffer"
	"github.com/streamline-dev/streamline/logsvc/storage"
	uploadv1 "github.com/streamline-dev/streamline/proto/gen/streamline/upload/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/telemetry"
)

// Objects is what the read path needs of object storage (objstore
// buckets satisfy it).
type Objects interface {
	GetRange(ctx context.Context, key string, off, length int64) ([]byte, error)
}

// Uploaders hands out UploadService clients of live uploaders, in the
// order to try them.
type Uploaders func() []uploadv1.UploadServiceClient

// Options configure the engine.
type Options struct {
	NodeID    string
	Store     *meta.Store
	Objects   Objects
	Uploaders Uploaders
	// Buffer sizes the node's batching buffer (batch size, timeout,
	// parallel uploads, memory bound).
	Buffer buffer.Config
	// RingBytes bounds the ring of recent batches (default
	// DefaultRingBytes).
	RingBytes int
	// ReadCacheBytes bounds the cache of object ranges (default 100 MiB).
	ReadCacheBytes int64
	// RPCTimeout bounds one upload or commit call (default 30 s).
	RPCTimeout time.Duration
	Logger     *slog.Logger
	// TracerProvider traces a traced produce's wait in the buffer and its
	// flush's upload and commit (nil or no-op: no spans).
	TracerProvider trace.TracerProvider
}

// Engine is the diskless storage.Engine of one node.
type Engine struct {
	opts  Options
	log   *slog.Logger
	buf   *buffer.Batching
	ring  *buffer.MemoryRing
	cache *rangeCache
	// windows: intake ranges are GET in windows (intakeWindow), unless
	// the cache is too small to hold them for long.
	windows bool
	hedge   hedger
	seq     atomic.Uint64

	tracer trace.Tracer // nil: not tracing
	// gets joins concurrent GETs of one intake range or window (readRange).
	gets                 singleflight.Group
	ringHits, ringMisses atomic.Uint64
	// Reads behind the ring that found their manifest entries in their
	// partition's cached page, or fetched a page from etcd (Log.rangesAt).
	manifestHits, manifestMisses atomic.Uint64
	warmed                       atomic.Uint64 // entries loaded by cache warming
	warmSem                      chan struct{} // warmGETs: GETs of cache warming running

	mu   sync.Mutex
	logs map[string]*Log
}

var _ storage.Engine = (*Engine)(nil)

// ErrNoUploader means no live uploader could take a flush.
var ErrNoUploader = errors.New("no live uploader accepted the request")

// DefaultRingBytes is the default Options.RingBytes: memory a node's
// processes count in its budgets (the automatic --memory-limit).
const DefaultRingBytes = 64 << 20

// New starts the engine's buffer.
func New(opts Options) *Engine {
	if opts.RingBytes <= 0 {
		opts.RingBytes = DefaultRingBytes
	}
	if opts.ReadCacheBytes <= 0 {
		opts.ReadCacheBytes = 100 << 20
	}
	if opts.RPCTimeout <= 0 {
		opts.RPCTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	e := &Engine{opts: opts, log: opts.Logger, ring: buffer.NewMemoryRing(opts.RingBytes),
		cache: newRangeCache(opts.ReadCacheBytes), windows: opts.ReadCacheBytes >= 4*intakeWindow, logs: map[string]*Log{}, warmSem: make(chan struct{}, warmGETs),
		tracer: telemetry.Tracer(opts.TracerProvider, "github.com/streamline-dev/streamline/logsvc/storage/disklessstore")}
	e.buf = buffer.New(opts.Buffer, e.flush)
	return e
}

// Mode is diskless.
func (e *Engine) Mode() meta.StorageMode { return meta.StorageDiskless }

// Open recovers a partition from etcd: its committed end and log start.
func (e *Engine) Open(spec storage.PartitionSpec) (storage.Log, error) {
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.RPCTimeout)
	defer cancel()
	// A previous life of this partition on this node may have failed
	// batches still in the buffer; wait for them before starting over.
	if err := e.buf.Reset(ctx, spec.Stream()); err != nil {
		return nil, err
	}
	return e.open(ctx, spec, true)
}

// OpenTier opens the object-tier part of a hybrid partition: the same
// manifest, reads, retention and DeleteRecords (trims) as a diskless log,
// but nothing is appended through the buffer (the hybrid engine uploads
// whole segments and reports each commit with Committed) and the cache is
// not warmed (the tail is on the local disk).
func (e *Engine) OpenTier(spec storage.PartitionSpec) (*Log, error) {
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.RPCTimeout)
	defer cancel()
	return e.open(ctx, spec, false)
}

func (e *Engine) open(ctx context.Context, spec storage.PartitionSpec, warm bool) (*Log, error) {
	stream := spec.Stream()
	end, _, err := e.opts.Store.CommittedEnd(ctx, spec.Topic.ID, spec.Partition)
	if err != nil {
		return nil, fmt.Errorf("diskless %s-%d: committed end: %w", spec.Topic.Name, spec.Partition, err)
	}
	l := &Log{e: e, spec: spec, stream: stream}
	l.rev.Store(spec.Leader.ModRevision)
	// The manifest entries give the first retained offset, the size, and
	// the tail to warm the cache with.
	start := end
	var tail []meta.Coords
	var tailBytes int64
	if err := l.eachRange(ctx, 0, func(r meta.Coords) error {
		if len(l.entries) == 0 {
			start = r.BaseOffset
		}
		l.entries = append(l.entries, sizeEntry{r.LastOffset, r.Length})
		l.bytes += r.Length
		tail, tailBytes = append(tail, r), tailBytes+min(r.Length, segmentChunk)
		for tailBytes > warmBytes && len(tail) > 1 {
			tailBytes -= min(tail[0].Length, segmentChunk)
			tail = tail[1:]
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("diskless %s-%d: manifest: %w", spec.Topic.Name, spec.Partition, err)
	}
	// DeleteRecords may have moved the start into the first range.
	deleted, err := e.opts.Store.LogStart(ctx, spec.Topic.ID, spec.Partition)
	if err != nil {
		return nil, fmt.Errorf("diskless %s-%d: log start: %w", spec.Topic.Name, spec.Partition, err)
	}
	start = max(start, min(deleted, end))
	l.Reconfigure(spec.Topic)
	l.start.Store(start)
	l.end.Store(end)
	if !warm {
		return l, nil
	}
	e.mu.Lock()
	e.logs[stream] = l
	e.mu.Unlock()
	e.ring.Drop(stream)
	l.warm(tail)
	return l, nil
}

// Close flushes what is buffered (bounded) and stops the buffer.
func (e *Engine) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.RPCTimeout)
	defer cancel()
	return e.buf.Close(ctx)
}

// Warmed is how many manifest entries cache warming loaded (tests).
func (e *Engine) Warmed() uint64 { return e.warmed.Load() }

// Stats returns the buffer's counters (for metrics and tests).
func (e *Engine) Stats() buffer.Stats { return e.buf.Stats() }

// HedgedUploads is how many uploads were hedged.
func (e *Engine) HedgedUploads() int {
	e.hedge.mu.Lock()
	defer e.hedge.mu.Unlock()
	return e.hedge.hedged
}

// itemMeta travels with each buffered batch to the flush.
type itemMeta struct {
	log   *Log
	trace trace.SpanContext // the batch's buffer-wait span, if traced
}
