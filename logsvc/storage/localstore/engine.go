// Package localstore is the storage engine of local-mode topics: one WAL per
// node (package wal) for durability with group-commit fsync, and per
// partition a directory of segments (package segment) for reads.
//
// Write path: the partition assigns offsets and calls Log.Append, which
// queues the batch in the WAL and hands it to the partition's applier
// goroutine. The applier waits, in append order, for each batch's WAL fsync,
// then appends it to the segment and reports it durable. Segments are
// therefore never ahead of the WAL, and are fsynced only lazily (on roll and
// at checkpoints).
//
// Checkpoints fsync every open segment and then prune WAL files whose
// records are all in fsynced segments. Recovery (Open) replays the WAL into
// the segments, skipping what they already hold, before anything is served.
//
// On-disk layout under the data directory:
//
//	wal/wal-<seq>.log                  the node WAL
//	partitions/<topicID>-<n>/          one partition (segment files)
//	partitions/<topicID>-<n>/partition.json   topic name and number, for people
//	partitions/<topicID>-<n>/log-start-offset the start set by DeleteRecords (package segment)
//	partitions/<topicID>-<n>.deleted-<nanos>/  a deleted partition whose files are being removed
//
// Deleting a partition (Log.Remove, RemovePartitionDir) first renames its
// directory to the ".deleted-" name and fsyncs partitions/ (segment.Entomb):
// from that instant the partition is gone for recovery, whatever a crash
// leaves of its files, and its WAL records are skipped. The files are then
// removed by a background goroutine, so deleting a large topic never holds
// the caller (the node's partition lock, the write path); Open finishes
// removals a crash interrupted, also in the background.
package localstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/streamline-dev/streamline/logsvc/segment"
	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/logsvc/wal"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/reclaim"
)

// Options configure the local engine.
type Options struct {
	// DataDir holds wal/ and partitions/.
	DataDir string
	WAL     wal.Options
	// CheckpointInterval is how often segments are fsynced and the WAL pruned.
	CheckpointInterval time.Duration
	// MinFreeBytes is the free space the data directory's filesystem must
	// keep: below it, appends are refused (KAFKA_STORAGE_ERROR, before an
	// offset is assigned) until space is freed. 0: DefaultMinFreeBytes;
	// negative: no check.
	MinFreeBytes int64
	Logger       *slog.Logger
}

// Engine is the local-mode storage.Engine.
type Engine struct {
	opts Options
	log  *slog.Logger
	wal  *wal.WAL

	mu   sync.Mutex
	logs map[string]*Log
	// deferred holds, per stream, WAL-durable batches a closed log could
	// not write to its segment (disk full), in order; Open appends them
	// before the stream serves again.
	deferred map[string][][]byte

	space *spaceGuard

	stop chan struct{}
	done chan struct{}
	once sync.Once

	reaping sync.WaitGroup // background removals of entombed directories
	reclaim reclaim.Pacing // how reaping gives files back (tests slow it)
}

var _ storage.Engine = (*Engine)(nil)

func (e *Engine) partitionsDir() string { return filepath.Join(e.opts.DataDir, "partitions") }

// Open recovers the engine: it opens the WAL, replays it into the partition
// segments that still exist, fsyncs them, prunes the WAL, and starts the
// checkpoint loop.
func Open(opts Options) (*Engine, error) {
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MinFreeBytes == 0 {
		opts.MinFreeBytes = DefaultMinFreeBytes
	}
	e := &Engine{opts: opts, log: opts.Logger, logs: map[string]*Log{}, deferred: map[string][][]byte{},
		stop: make(chan struct{}), done: make(chan struct{}), reclaim: reclaim.Default, space: newSpaceGuard(opts.DataDir, opts.MinFreeBytes)}
	if err := os.MkdirAll(e.partitionsDir(), 0o755); err != nil {
		return nil, err
	}
	w, err := wal.Open(filepath.Join(opts.DataDir, "wal"), opts.WAL)
	if err != nil {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	e.wal = w
	if opts.WAL.DirectIO && !w.DirectIO() {
		e.log.Warn("the WAL's file system does not support O_DIRECT; writing the WAL through the page cache", "dir", filepath.Join(opts.DataDir, "wal"))
	}
	if err := e.replay(); err != nil {
		w.Close()
		return nil, err
	}
	// Deletions a crash interrupted: replay skipped them; finish them.
	tombs, err := segment.SweepEntombed(e.partitionsDir())
	if err != nil {
		w.Close()
		return nil, err
	}
	for _, tomb := range tombs {
		e.reap(tomb)
	}
	go e.checkpointLoop()
	return e, nil
}

// reap removes an entombed partition directory in the background, its
// files given back a step at a time (package reclaim): a deleted topic's
// gigabytes unlinked at once stalled the WAL's fsyncs on the same disk.
// Close stops it; the next Open finds the tomb and reaps it again.
func (e *Engine) reap(tomb string) {
	if tomb == "" {
		return
	}
	e.reaping.Add(1)
	go func() {
		defer e.reaping.Done()
		start := time.Now()
		if err := e.reclaim.RemoveAll(tomb, e.stop); errors.Is(err, reclaim.ErrStopped) {
			e.log.Info("stopped removing deleted partition data; the next start goes on", "dir", filepath.Base(tomb))
			return
		} else if err != nil {
			e.log.Error("removing deleted partition data", "dir", tomb, "err", err)
			return
		}
		e.log.Info("removed deleted partition data", "dir", filepath.Base(tomb), "took", time.Since(start))
	}()
}

// RemovePartitionDir deletes the data directory of a partition that is not
// open (its topic was deleted while this node was down), crash-safely and
// in the background, like Log.Remove. name is the directory's name under
// partitions/.
func (e *Engine) RemovePartitionDir(name string) error {
	e.mu.Lock()
	_, open := e.logs[name]
	e.mu.Unlock()
	if open {
		return fmt.Errorf("partition directory %s is open", name)
	}
	tomb, err := segment.Entomb(filepath.Join(e.partitionsDir(), name))
	e.reap(tomb)
	return err
}

// PartitionDirs lists the partition directories under partitions/ (names
// like "<topicID hex>-<n>"), without those being deleted.
func (e *Engine) PartitionDirs() ([]string, error) {
	ents, err := os.ReadDir(e.partitionsDir())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ent := range ents {
		if ent.IsDir() && !segment.IsEntombed(ent.Name()) {
			out = append(out, ent.Name())
		}
	}
	return out, nil
}

// replay restores into the segments every WAL record they lost. A record
// whose partition directory is gone (or entombed) belongs to a deleted
// topic and is skipped: open maps its stream to nil.
func (e *Engine) replay() error {
	open := map[string]*segment.Log{}
	defer func() {
		for _, l := range open {
			if l != nil {
				l.Close()
			}
		}
	}()
	var replayed, skipped int
	truncatedBelow := map[string]uint64{} // truncation.go
	err := e.wal.Replay(func(seq uint64, r wal.Record) error {
		l, ok := open[r.Stream]
		if !ok {
			dir := filepath.Join(e.partitionsDir(), r.Stream)
			if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
				open[r.Stream] = nil
				return nil
			}
			var err error
			if l, err = segment.Open(dir, segment.Config{}); err != nil {
				return fmt.Errorf("recover %s: %w", r.Stream, err)
			}
			open[r.Stream] = l
			if truncatedBelow[r.Stream], err = finishTruncation(l); err != nil {
				return fmt.Errorf("recover %s: %w", r.Stream, err)
			}
		}
		if l == nil {
			return nil
		}
		if seq < truncatedBelow[r.Stream] {
			skipped++ // a truncated suffix, or already in the segments
			return nil
		}
		switch end := l.EndOffset(); {
		case r.Offset < end:
			skipped++
			return nil
		case r.Offset > end:
			return fmt.Errorf("recover %s: WAL record at offset %d but segments end at %d: data between is missing", r.Stream, r.Offset, end)
		}
		replayed++
		return l.Append(r.Data)
	})
	if err != nil {
		return err
	}
	for stream, l := range open {
		if l == nil {
			continue
		}
		if err := l.Sync(); err != nil {
			return fmt.Errorf("recover %s: %w", stream, err)
		}
	}
	// Everything the WAL holds is now fsynced in segments (or garbage).
	n, err := e.wal.Prune(func(string) (uint64, bool) { return math.MaxUint64, true })
	if err != nil {
		return err
	}
	e.log.Info("local storage recovered", "wal_records_replayed", replayed, "already_in_segments", skipped, "wal_files_pruned", n)
	return nil
}

// Mode is local.
func (e *Engine) Mode() meta.StorageMode { return meta.StorageLocal }

// Open opens (or creates) a partition's log.
func (e *Engine) Open(spec storage.PartitionSpec) (storage.Log, error) {
	stream := spec.Stream()
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.logs[stream]; ok {
		return nil, fmt.Errorf("partition %s-%d is already open", spec.Topic.Name, spec.Partition)
	}
	dir := filepath.Join(e.partitionsDir(), stream)
	if spec.MustExist && !hasData(dir) {
		return nil, fmt.Errorf("%w: %s-%d (refusing to start an empty log for a partition that already had data)",
			storage.ErrNoLocalData, spec.Topic.Name, spec.Partition)
	}
	if err := e.createDir(dir, spec); err != nil {
		return nil, fmt.Errorf("open %s-%d: %w", spec.Topic.Name, spec.Partition, err)
	}
	seg, err := segment.Open(dir, segmentConfig(spec.Topic, spec.Defaults))
	if err != nil {
		return nil, fmt.Errorf("open %s-%d: %w", spec.Topic.Name, spec.Partition, err)
	}
	if _, err := finishTruncation(seg); err != nil {
		seg.Close()
		return nil, fmt.Errorf("open %s-%d: %w", spec.Topic.Name, spec.Partition, err)
	}
	// Batches durable in the WAL that the previous log could not write to
	// the segment come first: the log must end where the WAL's stream ends.
	for len(e.deferred[stream]) > 0 {
		b := e.deferred[stream][0]
		if err := appendDeferred(seg, b); err != nil {
			seg.Close()
			return nil, fmt.Errorf("%w: open %s-%d: writing a batch held back while the disk was full: %v", storage.ErrStorage, spec.Topic.Name, spec.Partition, err)
		}
		e.deferred[stream] = e.deferred[stream][1:]
	}
	delete(e.deferred, stream)
	// The segment now holds every durable record of the stream: records
	// may follow its end again, if a failed WAL write had blocked them.
	e.wal.Unblock(stream)
	l := newLog(e, stream, seg, spec.Defaults)
	e.logs[stream] = l
	return l, nil
}

// segmentConfig is the segment rolling of topic t (segment.bytes, segment.ms).
func segmentConfig(t meta.Topic, d meta.Defaults) segment.Config {
	return segment.Config{
		SegmentBytes: t.Int64(meta.ConfigSegmentBytes, d),
		SegmentAge:   time.Duration(t.Int64(meta.ConfigSegmentMs, d)) * time.Millisecond,
	}
}

// appendDeferred appends a held-back batch unless the segment already has
// it (a replay restored it, or it is below a moved log start).
func appendDeferred(seg *segment.Log, b []byte) error {
	h, err := recbatch.Validate(b)
	if err != nil {
		return err
	}
	if h.BaseOffset < seg.EndOffset() {
		return nil
	}
	return seg.Append(b)
}

// deferApply holds a WAL-durable batch a closing log could not write to
// its segment, for the next Open of its stream.
func (e *Engine) deferApply(stream string, batch []byte) {
	e.mu.Lock()
	e.deferred[stream] = append(e.deferred[stream], batch)
	e.mu.Unlock()
}

// dropDeferred forgets the held-back batches of a deleted stream.
func (e *Engine) dropDeferred(stream string) {
	e.mu.Lock()
	delete(e.deferred, stream)
	e.mu.Unlock()
}

// forget drops a log from the open set. It is called only after the log is
// closed and fsynced, so a concurrent checkpoint treating the stream as
// unknown (its WAL records prunable) is safe.
func (e *Engine) forget(stream string) {
	e.mu.Lock()
	delete(e.logs, stream)
	e.mu.Unlock()
}

// Checkpoint fsyncs every open segment and prunes WAL files whose records
// are all durable in segments.
func (e *Engine) Checkpoint() error {
	e.mu.Lock()
	logs := make(map[string]*Log, len(e.logs))
	for k, v := range e.logs {
		logs[k] = v
	}
	e.mu.Unlock()
	durable := make(map[string]uint64, len(logs))
	for stream, l := range logs {
		seq, err := l.sync()
		if err != nil {
			if errors.Is(err, storage.ErrClosed) {
				// Closed meanwhile: Close fsynced it, it is durable.
				durable[stream] = math.MaxUint64
				continue
			}
			return err
		}
		durable[stream] = seq
	}
	_, err := e.wal.Prune(func(stream string) (uint64, bool) {
		if seq, ok := durable[stream]; ok {
			return seq, true
		}
		e.mu.Lock()
		_, open := e.logs[stream]
		e.mu.Unlock()
		if open {
			return 0, true // opened after the snapshot: keep its records
		}
		return 0, false
	})
	return err
}

func (e *Engine) checkpointLoop() {
	defer close(e.done)
	t := time.NewTicker(e.opts.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			if err := e.Checkpoint(); err != nil {
				e.log.Error("checkpoint failed", "err", err)
			}
		}
	}
}

// WALSize is the bytes the WAL holds on disk.
func (e *Engine) WALSize() int64 { return e.wal.Size() }

// Close closes every log (fsyncing segments) and the WAL. Idempotent.
func (e *Engine) Close() error {
	var err error
	e.once.Do(func() {
		close(e.stop)
		<-e.done
		e.mu.Lock()
		logs := make([]*Log, 0, len(e.logs))
		for _, l := range e.logs {
			logs = append(logs, l)
		}
		e.mu.Unlock()
		for _, l := range logs {
			err = errors.Join(err, l.Close())
		}
		err = errors.Join(err, e.wal.Close())
		e.reaping.Wait()
	})
	return err
}

// hasData reports whether a partition directory holds a log: its
// descriptor, or segment files if the descriptor was lost.
// HasPartition reports whether this node holds a log of the partition
// (its directory with a descriptor or a segment).
func (e *Engine) HasPartition(id meta.TopicID, partition int32) bool {
	return hasData(filepath.Join(e.partitionsDir(), storage.StreamName(id, partition)))
}

func hasData(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "partition.json")); err == nil {
		return true
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	return len(segs) > 0
}

// createDir creates a partition's directory with its descriptor, durably:
// the WAL only keeps a partition's records while its directory exists, so
// a directory lost to a power failure after its records were acked would
// make recovery take them for a deleted topic's. An existing descriptor is
// left as it is (it is only for people: never parsed, garbage is harmless).
func (e *Engine) createDir(dir string, spec storage.PartitionSpec) error {
	if _, err := os.Stat(filepath.Join(dir, "partition.json")); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(map[string]any{"topic": spec.Topic.Name, "topic_id": spec.Topic.ID.String(), "partition": spec.Partition}, "", "  ")
	f, err := os.Create(filepath.Join(dir, "partition.json"))
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return err
	}
	return errors.Join(syncDir(dir), syncDir(e.partitionsDir()))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
