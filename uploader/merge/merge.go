// Package merge is the uploader fleet's merger: it rewrites the small
// ranges diskless flushes leave in shared intake objects into
// per-partition segment objects (package segobject), so that a partition's
// manifest in etcd holds O(segments) entries instead of O(flushes), reads
// of old data are one or two range GETs per segment, and intake objects
// become garbage.
//
// One uploader merges at a time (elected through etcd, package elected).
// Each pass scans every manifest once and does two kinds of merge:
//
//   - intake rounds: the oldest intake objects whose ranges are older than
//     MinAge, up to RoundBytes of them, are read once each (one range GET
//     spanning the sections still referenced), and each partition's
//     contiguous run of ranges in them becomes one segment object. Reading
//     by object, not by range, costs one GET per intake object however
//     many partitions it holds.
//   - segment merges: consecutive segments of a partition smaller than
//     TargetBytes are concatenated, streamed chunk by chunk from their
//     objects into a multipart upload, when the older one is no larger than
//     the rest (each byte is then rewritten O(log(TargetBytes/segment))
//     times, as in a binary counter).
//
// Batches are copied byte for byte (CRCs unchanged) and verified on the
// way: a source that fails its CRC or is short stops that partition's
// merge, is logged, and is left in place. A merge's result replaces its
// sources in one fenced etcd transaction (meta.Store.SwapRanges): a race
// with retention, DeleteRecords, a topic deletion or another merge loses
// cleanly and its object becomes garbage; a failed merge never touches
// its sources. Replaced objects are deleted by the garbage collector
// after its grace period and linger.
package merge

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
	"golang.org/x/sync/errgroup"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/objstore"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/segobject"
	"github.com/streamline-dev/streamline/uploader/elected"
	"github.com/streamline-dev/streamline/uploader/objectfmt"
)

// Defaults for zero Config fields.
const (
	// DefaultMinAge leaves a range in its intake object for a few
	// minutes: the tail that consumers and a new leader's cache read is
	// still in the read caches, and merging later means fewer, larger
	// rounds.
	DefaultMinAge = 5 * time.Minute
	// DefaultTargetBytes is the size segments grow to. 128 MiB keeps a
	// 1 TiB partition at 8,192 manifest entries, a segment's index (24
	// bytes per 4 KiB block) at 768 KiB, and a segment merge within S3's
	// part limits with 8 MiB parts; reads are unaffected by size (they
	// GET one block range), and memory is bounded by the chunk size, not
	// by this.
	DefaultTargetBytes = 128 << 20
	// DefaultRoundBytes bounds the intake bytes one round reads (and
	// holds: the round's segments are built in memory).
	DefaultRoundBytes = 64 << 20
	// DefaultInterval is the time between passes.
	DefaultInterval = 15 * time.Second
	// DefaultChunkBytes is how much of a source segment a segment merge
	// reads at once (with the PUT's part buffers, its memory bound).
	DefaultChunkBytes = 8 << 20
	// DefaultParallelism is how many merged objects are written at once.
	DefaultParallelism = 4
)

// Bucket is what the merger needs of object storage (objstore.Bucket
// implementations satisfy it).
type Bucket interface {
	GetRange(ctx context.Context, key string, off, length int64) ([]byte, error)
	PutReader(ctx context.Context, key string, r io.Reader, size int64) error
}

// Config configures a Merger.
type Config struct {
	Bucket Bucket
	Store  *meta.Store
	// ID is this candidate's value in the election (the uploader id); it
	// also names the writer in segment objects' keys.
	ID          string
	MinAge      time.Duration
	TargetBytes int64
	RoundBytes  int64
	Interval    time.Duration
	// ChunkBytes is how much of a source segment is read at once; zero is
	// DefaultChunkBytes.
	ChunkBytes int64
	// Parallelism is how many merged objects are written at once; zero is
	// DefaultParallelism. Object stores with high PUT latency (S3) need
	// several to keep up with many partitions; a local directory sharing
	// its disk with the produce path is gentler with 1.
	Parallelism int
	// MaxCommitAge is how old (by its key time) a segment object may be
	// when its swap is made: gc.MaxCommitAge of the fleet's grace, so the
	// garbage collector can never have deleted it. Zero: not checked.
	MaxCommitAge time.Duration
	Logger       *slog.Logger
	Now          func() time.Time
	// OnPass, if set, is called after every pass Run makes (metrics).
	OnPass func(Stats, error)
	// Failpoint, if set, is called at each step of a merge with its name
	// (FailBeforePut, FailAfterPut, FailAfterSwap): crash tests kill the
	// process there.
	Failpoint func(step string)
}

// The steps of a merge a Failpoint sees.
const (
	FailBeforePut = "merge-before-put"
	FailAfterPut  = "merge-after-put"
	FailAfterSwap = "merge-after-swap"
)

func (m *Merger) failpoint(step string) {
	if m.cfg.Failpoint != nil {
		m.cfg.Failpoint(step)
	}
}

// Stats is what one pass saw and did.
type Stats struct {
	Partitions    int   // partitions with a manifest
	Entries       int   // manifest entries before the pass
	ManifestBytes int64 // their keys and values
	// PerTopic counts entries and bytes by topic name (id when unknown).
	PerTopic map[string]TopicStats
	// Lag is the age of the oldest intake range not merged yet.
	Lag time.Duration
	// Segments written and swapped in, the entries they replaced, the
	// bytes of batches they hold.
	Segments, Sources int
	Bytes             int64
	// Conflicts: swaps that lost a race (their objects are garbage).
	Conflicts int
	// Failed: merges that failed (read, verify, PUT); sources untouched.
	Failed int
}

// TopicStats is one topic's part of a manifest scan.
type TopicStats struct {
	Entries int
	Bytes   int64
}

// Merger is one uploader's merger candidate.
type Merger struct {
	cfg    Config
	log    *slog.Logger
	leader atomic.Bool
	seq    atomic.Uint64
}

// New returns a merger; Pass runs one pass, Run campaigns and merges.
func New(cfg Config) (*Merger, error) {
	switch {
	case cfg.Bucket == nil:
		return nil, errors.New("merge: bucket is required")
	case cfg.Store == nil:
		return nil, errors.New("merge: store is required")
	case cfg.MinAge < 0 || cfg.Interval < 0 || cfg.TargetBytes < 0 || cfg.RoundBytes < 0:
		return nil, errors.New("merge: negative min age, interval, target or round size")
	}
	if cfg.MinAge == 0 {
		cfg.MinAge = DefaultMinAge
	}
	if cfg.TargetBytes == 0 {
		cfg.TargetBytes = DefaultTargetBytes
	}
	if cfg.RoundBytes == 0 {
		cfg.RoundBytes = DefaultRoundBytes
	}
	// A round's segment of one partition must not outgrow the target.
	cfg.RoundBytes = min(cfg.RoundBytes, cfg.TargetBytes)
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.ChunkBytes <= 0 {
		cfg.ChunkBytes = DefaultChunkBytes
	}
	if cfg.Parallelism <= 0 {
		cfg.Parallelism = DefaultParallelism
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Merger{cfg: cfg, log: cfg.Logger.With("component", "merge")}, nil
}

// ElectionKey is where mergers campaign, under the metadata prefix.
func ElectionKey(store *meta.Store) string { return store.Prefix() + "merge" }

// IsLeader reports whether this candidate is the elected merger.
func (m *Merger) IsLeader() bool { return m.leader.Load() }

// Run campaigns with sess and, once elected, runs a pass at once and then
// every Interval until ctx ends (nil) or the session ends
// (elected.ErrSessionLost).
func (m *Merger) Run(ctx context.Context, sess *concurrency.Session) error {
	return elected.Run(ctx, sess, elected.Job{
		Name: "merger", Key: ElectionKey(m.cfg.Store), ID: m.cfg.ID, Interval: m.cfg.Interval,
		Logger: m.log, Leader: &m.leader,
		Pass: func(ctx context.Context) {
			start := time.Now()
			st, err := m.Pass(ctx)
			if ctx.Err() != nil {
				return
			}
			attrs := []any{"entries", st.Entries, "segments", st.Segments, "replaced", st.Sources, "bytes", st.Bytes,
				"conflicts", st.Conflicts, "failed", st.Failed, "lag", st.Lag.Round(time.Second), "took", time.Since(start).Round(time.Millisecond)}
			switch {
			case err != nil:
				m.log.Warn("merge pass failed; retrying next interval", append(attrs, "err", err)...)
			case st.Segments > 0:
				m.log.Info("merge pass", attrs...)
			default:
				m.log.Debug("merge pass", attrs...)
			}
			if m.cfg.OnPass != nil {
				m.cfg.OnPass(st, err)
			}
		},
	})
}

// Pass scans the manifests and runs one intake round and the segment
// merges that are due. A failed scan merges nothing; failed merges are
// counted and logged, and the first error is returned.
func (m *Merger) Pass(ctx context.Context) (Stats, error) {
	now := m.cfg.Now()
	st := Stats{PerTopic: map[string]TopicStats{}}
	topics, err := m.cfg.Store.TopicsByID(ctx)
	if err != nil {
		return st, fmt.Errorf("merge: topics: %w", err)
	}
	tombstones, err := m.cfg.Store.DeletedTopics(ctx)
	if err != nil && tombstones == nil {
		return st, fmt.Errorf("merge: deleted topics: %w", err)
	} // a tombstone that does not decode is the collector's to report
	deleted := make(map[meta.TopicID]struct{}, len(tombstones))
	for _, d := range tombstones {
		deleted[d.ID] = struct{}{}
	}
	var parts []meta.PartitionManifest
	err = m.cfg.Store.ScanManifests(ctx, func(pm meta.PartitionManifest) error {
		st.Partitions++
		st.Entries += len(pm.Entries)
		st.ManifestBytes += pm.Bytes
		t, ok := topics[pm.TopicID]
		name := t.Name
		if !ok {
			name = pm.TopicID.String()
		}
		ts := st.PerTopic[name]
		ts.Entries += len(pm.Entries)
		ts.Bytes += pm.Bytes
		st.PerTopic[name] = ts
		for _, e := range pm.Entries {
			if e.Segment == nil {
				if t, ok := objectfmt.KeyTime(e.Object); ok {
					st.Lag = max(st.Lag, now.Sub(t))
				}
				break // the first intake entry is the partition's oldest
			}
		}
		if _, gone := deleted[pm.TopicID]; gone {
			// A deleted topic's manifest, still being deleted a chunk at
			// a time (meta.Store.ReapDeletedTopics): merging it would
			// only write segments nobody can read.
			return nil
		}
		if ok && t.StorageMode.KeepsLocalData() {
			// A hybrid (or formerly hybrid) partition's entries are its
			// rolled local segments, sized by segment.bytes: rewriting
			// them would only add writes next to the topic's produce
			// path (its manifest is data / segment.bytes keys).
			return nil
		}
		parts = append(parts, pm)
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("merge: scan manifests: %w", err)
	}
	var errs []error
	if err := m.intakeRound(ctx, now, parts, &st); err != nil {
		errs = append(errs, err)
	}
	if err := m.mergeSegments(ctx, parts, &st); err != nil {
		errs = append(errs, err)
	}
	return st, errors.Join(errs...)
}

// job is one merge: consecutive entries of a partition, to be replaced by
// one segment.
type job struct {
	pm      *meta.PartitionManifest
	sources []meta.RangeEntry
}

// intakeRound merges the oldest intake ranges, up to RoundBytes of them.
func (m *Merger) intakeRound(ctx context.Context, now time.Time, parts []meta.PartitionManifest, st *Stats) error {
	// Each partition's candidate run: its intake entries from the first,
	// in offset order, while old enough.
	type run struct {
		pm      *meta.PartitionManifest
		entries []meta.RangeEntry
	}
	var runs []run
	objAge := map[string]time.Time{}
	for i := range parts {
		pm := &parts[i]
		first := slices.IndexFunc(pm.Entries, func(e meta.RangeEntry) bool { return e.Segment == nil })
		if first < 0 {
			continue
		}
		r := run{pm: pm}
		for _, e := range pm.Entries[first:] {
			t, ok := objectfmt.KeyTime(e.Object)
			if e.Segment != nil || ok && now.Sub(t) < m.cfg.MinAge {
				break
			}
			objAge[e.Object] = t
			r.entries = append(r.entries, e)
		}
		if len(r.entries) > 0 {
			runs = append(runs, r)
		}
	}
	if len(runs) == 0 {
		return nil
	}
	// Choose the oldest objects until the round is full.
	need := map[string]int64{} // object -> referenced bytes in the runs
	for _, r := range runs {
		for _, e := range r.entries {
			need[e.Object] += e.Length
		}
	}
	objects := make([]string, 0, len(need))
	for o := range need {
		objects = append(objects, o)
	}
	slices.SortFunc(objects, func(a, b string) int { return cmp.Or(objAge[a].Compare(objAge[b]), cmp.Compare(a, b)) })
	chosen := map[string]bool{}
	var total int64
	for _, o := range objects {
		if total > 0 && total+need[o] > m.cfg.RoundBytes {
			break
		}
		chosen[o] = true
		total += need[o]
	}
	// Cut every run at its first range in an object left for later, and
	// note the span of each chosen object to read.
	type span struct{ from, to int64 }
	spans := map[string]span{}
	var jobs []job
	for _, r := range runs {
		n := slices.IndexFunc(r.entries, func(e meta.RangeEntry) bool { return !chosen[e.Object] })
		if n < 0 {
			n = len(r.entries)
		}
		if n == 0 {
			continue
		}
		for _, e := range r.entries[:n] {
			s, ok := spans[e.Object]
			if !ok {
				s = span{e.Position, e.Position + e.Length}
			}
			spans[e.Object] = span{min(s.from, e.Position), max(s.to, e.Position+e.Length)}
		}
		jobs = append(jobs, job{pm: r.pm, sources: r.entries[:n]})
	}
	// Read each object's span once.
	data := map[string][]byte{}
	var failed []error
	for o, s := range spans {
		b, err := m.cfg.Bucket.GetRange(ctx, o, s.from, s.to-s.from)
		if err != nil {
			failed = append(failed, fmt.Errorf("read intake object %s: %w", o, err))
			continue
		}
		data[o] = b
	}
	return m.runJobs(ctx, jobs, st, failed, func(j job) (meta.Coords, []byte, error) {
		var buf bytes.Buffer
		w := segobject.NewWriter(&buf, 0)
		for _, e := range j.sources {
			b, ok := data[e.Object]
			if !ok {
				return meta.Coords{}, nil, fmt.Errorf("intake object %s was not read", e.Object)
			}
			s := spans[e.Object]
			rel := e.Position - s.from
			if rel+e.Length > int64(len(b)) {
				return meta.Coords{}, nil, fmt.Errorf("%w: intake object %s is shorter than its manifest says", segobject.ErrCorrupt, e.Object)
			}
			src := b[rel : rel+e.Length]
			if err := segobject.Verify(src, e.BaseOffset, e.LastOffset); err != nil {
				return meta.Coords{}, nil, fmt.Errorf("range %d..%d in %s: %w", e.BaseOffset, e.LastOffset, e.Object, err)
			}
			if _, err := recbatch.Iterate(src, false, func(_ recbatch.Header, batch []byte) error { return w.Append(batch) }); err != nil {
				return meta.Coords{}, nil, err
			}
		}
		info, err := w.Close()
		if err != nil {
			return meta.Coords{}, nil, err
		}
		return merged(j.sources, info), buf.Bytes(), nil
	})
}

// mergeSegments concatenates each partition's small consecutive segments.
func (m *Merger) mergeSegments(ctx context.Context, parts []meta.PartitionManifest, st *Stats) error {
	var jobs []job
	for i := range parts {
		pm := &parts[i]
		es := pm.Entries
		for a := 0; a < len(es); {
			if es[a].Segment == nil || es[a].Length >= m.cfg.TargetBytes {
				a++
				continue
			}
			// Grow a group from a while the entries are small segments
			// and the total fits the target.
			total, b := es[a].Length, a+1
			for b < len(es) && es[b].Segment != nil && total+es[b].Length <= m.cfg.TargetBytes {
				total += es[b].Length
				b++
			}
			// Merge when the oldest is no larger than the rest: each byte
			// is then rewritten O(log) times, not once per new segment.
			if b-a >= 2 && es[a].Length <= total-es[a].Length {
				jobs = append(jobs, job{pm: pm, sources: es[a:b]})
				a = b
				continue
			}
			a++
		}
	}
	return m.runJobs(ctx, jobs, st, nil, nil)
}

// build makes a job's object: its coordinates (Object left empty) and,
// for objects built in memory, the bytes; nil bytes means stream the
// concatenation of the sources' segments.
type build func(job) (meta.Coords, []byte, error)

// runJobs writes each job's object (parallelism at a time), then swaps
// every written one in with one etcd transaction per group of swaps
// (meta.Store.Swap: fewer etcd writes and fsyncs next to the produce
// path's commits).
func (m *Merger) runJobs(ctx context.Context, jobs []job, st *Stats, failed []error, b build) error {
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(m.cfg.Parallelism)
	fail := func(j job, err error) {
		mu.Lock()
		defer mu.Unlock()
		st.Failed++
		failed = append(failed, err)
		if errors.Is(err, segobject.ErrCorrupt) {
			m.log.Error("CORRUPT object data: merge refused, sources left in place", "topic_id", j.pm.TopicID, "partition", j.pm.Partition, "err", err)
		}
	}
	written := make([]*meta.Coords, len(jobs))
	for i, j := range jobs {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			m.failpoint(FailBeforePut)
			c, err := m.write(ctx, j, b)
			if err != nil {
				fail(j, err)
				return nil
			}
			written[i] = &c
			return nil
		})
	}
	_ = g.Wait() // outcomes are counted, not returned
	var swaps []meta.Swap
	var swapped []job
	for i, c := range written {
		if c == nil {
			continue
		}
		if err := m.checkAge(*c); err != nil { // right before the swap
			fail(jobs[i], err)
			continue
		}
		swaps = append(swaps, meta.Swap{TopicID: jobs[i].pm.TopicID, Partition: jobs[i].pm.Partition, Sources: jobs[i].sources, Merged: *c})
		swapped = append(swapped, jobs[i])
	}
	if len(swaps) == 0 {
		return errors.Join(failed...)
	}
	m.failpoint(FailAfterPut)
	for i, err := range m.cfg.Store.Swap(ctx, swaps) {
		switch {
		case err == nil:
			st.Segments++
			st.Sources += len(swaps[i].Sources)
			st.Bytes += swaps[i].Merged.Length
		case errors.Is(err, meta.ErrSwapConflict):
			st.Conflicts++
			m.log.Info("merge lost a race; its object is left to garbage collection", "err", err)
		default:
			fail(swapped[i], fmt.Errorf("swap: %w", err))
		}
	}
	m.failpoint(FailAfterSwap)
	return errors.Join(failed...)
}

// write PUTs a job's object and returns its coordinates.
func (m *Merger) write(ctx context.Context, j job, b build) (meta.Coords, error) {
	key := objectfmt.NewKey(m.cfg.ID, m.seq.Add(1), objstore.SpreadsKeys(m.cfg.Bucket))
	where := fmt.Sprintf("%s-%d %d..%d", j.pm.TopicID, j.pm.Partition, j.sources[0].BaseOffset, j.sources[len(j.sources)-1].LastOffset)
	if b != nil {
		c, obj, err := b(j)
		if err != nil {
			return meta.Coords{}, fmt.Errorf("merge %s: %w", where, err)
		}
		if err := m.cfg.Bucket.PutReader(ctx, key, bytes.NewReader(obj), int64(len(obj))); err != nil {
			return meta.Coords{}, fmt.Errorf("merge %s: put %s: %w", where, key, err)
		}
		c.Object = key
		return c, nil
	}
	c, err := m.concat(ctx, key, j.sources)
	if err != nil {
		return meta.Coords{}, fmt.Errorf("merge %s: %w", where, err)
	}
	return c, nil
}

// concat streams the concatenation of segment sources into one new
// segment object: the sources' indexes are read first (their sizes give
// the new object's), then their data chunk by chunk, each chunk verified
// before it is written.
func (m *Merger) concat(ctx context.Context, key string, sources []meta.RangeEntry) (meta.Coords, error) {
	idx := make([]*segobject.Index, len(sources))
	var dataLen int64
	blocks := 0
	for i, s := range sources {
		b, err := m.cfg.Bucket.GetRange(ctx, s.Object, s.Segment.IndexPos, s.Segment.IndexLen)
		if err != nil {
			return meta.Coords{}, fmt.Errorf("read index of %s: %w", s.Object, err)
		}
		if int64(len(b)) != s.Segment.IndexLen {
			return meta.Coords{}, fmt.Errorf("%w: index of %s is short", segobject.ErrCorrupt, s.Object)
		}
		if idx[i], err = segobject.ParseIndex(b, s.Segment.IndexPos, s.LastOffset); err != nil {
			return meta.Coords{}, fmt.Errorf("index of %s: %w", s.Object, err)
		}
		dataLen += s.Segment.IndexPos - idx[i].Entries[0].Position
		blocks += len(idx[i].Entries)
	}
	size := segobject.Size(dataLen, blocks)
	pr, pw := io.Pipe()
	var info segobject.Info
	written := make(chan struct{})
	go func() {
		defer close(written)
		w := segobject.NewWriter(pw, 0)
		err := func() error {
			for i, s := range sources {
				ix := idx[i]
				for pos := ix.Entries[0].Position; pos < ix.End; {
					end := ix.ReadEnd(pos, m.cfg.ChunkBytes)
					chunk, err := m.cfg.Bucket.GetRange(ctx, s.Object, pos, end-pos)
					if err != nil {
						return fmt.Errorf("read %s@%d: %w", s.Object, pos, err)
					}
					if int64(len(chunk)) != end-pos {
						return fmt.Errorf("%w: %s is shorter than its index says (%d bytes at %d, wanted %d)", segobject.ErrCorrupt, s.Object, len(chunk), pos, end-pos)
					}
					entries := ix.EntriesIn(pos, end)
					if err := segobject.Verify(chunk, entries[0].BaseOffset, s.LastOffset); err != nil {
						return fmt.Errorf("%s@%d: %w", s.Object, pos, err)
					}
					if err := w.AppendBlocks(chunk, entries); err != nil {
						return err
					}
					pos = end
				}
			}
			var err error
			info, err = w.Close()
			return err
		}()
		pw.CloseWithError(err)
	}()
	err := m.cfg.Bucket.PutReader(ctx, key, pr, size)
	pr.CloseWithError(errors.New("put ended")) // unblocks the writer if the put stopped reading
	<-written
	if err != nil {
		return meta.Coords{}, fmt.Errorf("put %s: %w", key, err)
	}
	if info.Size != size || info.LastOffset != sources[len(sources)-1].LastOffset {
		return meta.Coords{}, fmt.Errorf("merged object %s is %d bytes up to offset %d, expected %d bytes up to %d", key, info.Size, info.LastOffset, size, sources[len(sources)-1].LastOffset)
	}
	c := merged(sources, info)
	c.Object = key
	return c, nil
}

// checkAge refuses an object too old to be swapped in safely: the
// garbage collector may already judge it.
func (m *Merger) checkAge(c meta.Coords) error {
	if m.cfg.MaxCommitAge > 0 {
		if t, ok := objectfmt.KeyTime(c.Object); ok && m.cfg.Now().Sub(t) > m.cfg.MaxCommitAge {
			return fmt.Errorf("merged object %s took longer than %v to write; not swapped in (it may be collected)", c.Object, m.cfg.MaxCommitAge)
		}
	}
	return nil
}

// merged is the manifest entry of an object holding sources' batches.
func merged(sources []meta.RangeEntry, info segobject.Info) meta.Coords {
	c := meta.Coords{
		Position: info.DataPos, Length: info.DataLen, BaseOffset: info.BaseOffset, LastOffset: info.LastOffset,
		MaxTimestamp: info.MaxTimestamp, LeaderEpoch: sources[0].LeaderEpoch,
		Segment: &meta.SegmentRef{IndexPos: info.IndexPos, IndexLen: info.IndexLen},
	}
	epoch := sources[0].LeaderEpoch
	note := func(e meta.EpochStart) {
		if e.Epoch != epoch {
			c.Epochs = append(c.Epochs, e)
			epoch = e.Epoch
		}
	}
	var producers []meta.ProducerBatch
	txns := make([][]meta.TxnEvent, 0, len(sources))
	for _, s := range sources {
		c.MaxTimestamp = max(c.MaxTimestamp, s.MaxTimestamp)
		note(meta.EpochStart{Epoch: s.LeaderEpoch, Start: s.BaseOffset})
		for _, e := range s.Epochs {
			note(e)
		}
		producers = append(producers, s.Producers...)
		txns = append(txns, s.Txns)
	}
	c.Producers = meta.LastPerProducer(producers, meta.ProducerWindow)
	c.Txns = meta.MergeTxns(txns...)
	return c
}
