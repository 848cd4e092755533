package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamline-dev/streamline/logsvc/buffer"
	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/logsvc/storage/disklessstore"
	"github.com/streamline-dev/streamline/logsvc/storage/storagetest"
	uploadv1 "github.com/streamline-dev/streamline/proto/gen/streamline/upload/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
	"github.com/streamline-dev/streamline/uploader"
	"github.com/streamline-dev/streamline/uploader/merge"
)

// mergeEnv is a diskless engine over a real etcd, a directory bucket and
// a real uploader (merging off: the test runs merge passes itself).
type mergeEnv struct {
	t      *testing.T
	dir    string
	bucket *objstorefs.Bucket
	store  *meta.Store
	open   func() storage.Engine
}

func newMergeEnv(t *testing.T) *mergeEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	etcd := metatest.Start(t)
	dir := t.TempDir()
	bucket, err := objstorefs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	client := startUploader(ctx, t, uploader.Config{Etcd: etcd.Client, Objects: bucket, Logger: quiet, Merge: uploader.MergeConfig{Disabled: true}})
	store := meta.NewStore(etcd.Client, "")
	me := &mergeEnv{t: t, dir: dir, bucket: bucket, store: store}
	me.open = func() storage.Engine {
		e := disklessstore.New(disklessstore.Options{
			NodeID: "conformance", Store: store, Objects: bucket,
			Uploaders: func() []uploadv1.UploadServiceClient { return []uploadv1.UploadServiceClient{client} },
			Buffer:    buffer.Config{MaxDelay: 2 * time.Millisecond}, Logger: quiet,
		})
		t.Cleanup(func() { e.Close() })
		return e
	}
	return me
}

// pass runs one merge pass with everything old enough.
func (me *mergeEnv) pass(cfg merge.Config) merge.Stats {
	me.t.Helper()
	cfg.Bucket, cfg.Store, cfg.ID = me.bucket, me.store, "merger"
	cfg.Logger = quiet
	cfg.Now = func() time.Time { return time.Now().Add(time.Hour) }
	m, err := merge.New(cfg)
	if err != nil {
		me.t.Fatal(err)
	}
	st, err := m.Pass(context.Background())
	if err != nil {
		me.t.Fatal(err)
	}
	return st
}

// record is one appended record: its offset, timestamp and its batch.
type record struct {
	offset, ts int64
	batch      int
}

// TestFetchAndTimeLookupAtEveryOffsetOfMergedData appends batches of
// varied sizes (some larger than a segment read chunk) and wandering
// timestamps, merges them into several segments (leaving a tail in intake
// objects), and then, on a fresh engine (cold caches), checks at every
// offset that a fetch returns exactly the batches from the one holding it,
// and for every timestamp that ListOffsets-by-time answers the first record
// at or after it - before and after DeleteRecords moves the start into a
// segment.
func TestFetchAndTimeLookupAtEveryOffsetOfMergedData(t *testing.T) {
	me := newMergeEnv(t)
	spec := storagetest.Spec("merged")
	spec.Topic.StorageMode = meta.StorageDiskless
	l, err := me.open().Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(12, 5))
	var batches [][]byte
	var recs []record
	next, ts := int64(0), int64(1_700_000_000_000)
	appendBatch := func() {
		n := 1 + rng.IntN(4)
		spec := recbatchtest.Values(ts)
		var deltas []int64
		for i := range n {
			size := rng.IntN(400)
			if rng.IntN(40) == 0 {
				size = 1<<20 + rng.IntN(1<<18) // larger than a segment read chunk
			}
			v := strings.Repeat("r", size)
			spec.Records = append(spec.Records, recbatchtest.Values(0, v).Records...)
			d := rng.Int64N(50) - 10
			deltas = append(deltas, d)
			recs = append(recs, record{offset: next + int64(i), ts: ts + d, batch: len(batches)})
		}
		spec.TimestampDeltas = deltas
		b := recbatchtest.Build(spec)
		recbatch.SetBaseOffset(b, next)
		h, err := recbatch.Validate(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := <-l.Append(b, h); err != nil {
			t.Fatalf("append at %d: %v", next, err)
		}
		batches = append(batches, b)
		next = h.NextOffset()
		ts += rng.Int64N(40) - 8
	}
	for round := range 6 {
		for range 15 {
			appendBatch()
		}
		if round < 5 { // the last round's batches stay in intake objects
			if st := me.pass(merge.Config{RoundBytes: 1 << 20, TargetBytes: 3 << 20, ChunkBytes: 64 << 10}); st.Failed != 0 || st.Conflicts != 0 {
				t.Fatalf("merge pass: %+v", st)
			}
		}
	}
	segments := 0
	rs, err := me.store.RangesFrom(context.Background(), spec.Topic.ID, 0, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Segment != nil {
			segments++
		}
	}
	if segments < 2 || segments == len(rs) {
		t.Fatalf("%d of %d entries are segments; want several segments and an intake tail", segments, len(rs))
	}
	t.Logf("%d records in %d batches, %d manifest entries of which %d segments", len(recs), len(batches), len(rs), segments)

	check := func(l storage.Log, start int64) {
		t.Helper()
		for _, r := range recs {
			data, err := l.Read(r.offset, 1+rng.IntN(3<<20), next, true)
			if r.offset < start {
				if !errors.Is(err, storage.ErrOffsetOutOfRange) {
					t.Fatalf("read at %d below the start %d: %v", r.offset, start, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("read at %d: %v", r.offset, err)
			}
			want := bytes.Join(batches[r.batch:], nil)
			if len(data) == 0 || !bytes.HasPrefix(want, data) {
				t.Fatalf("read at %d: %d bytes that are not the batches from the one holding it", r.offset, len(data))
			}
		}
		for q := recs[0].ts - 15; q <= ts+60; q++ {
			want, found := int64(-1), false
			for _, r := range recs {
				if r.offset >= start && r.ts >= q {
					want, found = r.offset, true
					break
				}
			}
			got, _, ok, err := l.OffsetForTimestamp(q)
			if err != nil || ok != found || (found && got != want) {
				t.Fatalf("offset for time %d: %d %v %v, want %d %v", q, got, ok, err, want, found)
			}
		}
	}
	cold, err := me.open().Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	check(cold, 0)
	// DeleteRecords into the middle of the second segment.
	mid := rs[1].BaseOffset + (rs[1].LastOffset-rs[1].BaseOffset)/2 + 1
	// DeleteRecords through the partition's first engine, whose view of
	// the manifest is the small ranges it committed before the merges.
	if err := l.DeleteRecords(mid); err != nil {
		t.Fatal(err)
	}
	// Size is what the manifest holds now: the merged entry holding mid
	// stays whole, the ones below it are gone.
	left, err := me.store.RangesFrom(context.Background(), spec.Topic.ID, 0, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var stored int64
	for _, r := range left {
		stored += r.Length
	}
	if l.Size() != stored {
		t.Fatalf("Size %d after DeleteRecords into a merged segment; the manifest holds %d bytes", l.Size(), stored)
	}
	again, err := me.open().Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	if again.StartOffset() != mid {
		t.Fatalf("start %d after DeleteRecords(%d) and a reopen", again.StartOffset(), mid)
	}
	check(again, mid)
	// Retention by size on merged data: whole entries (segments included)
	// go from the bottom until what is left fits.
	if err := again.ApplyRetention(-1, again.Size()/3); err != nil {
		t.Fatal(err)
	}
	kept, err := me.store.RangesFrom(context.Background(), spec.Topic.ID, 0, 0, 1000)
	if err != nil || len(kept) == 0 {
		t.Fatalf("after retention: %v %v", kept, err)
	}
	start := again.StartOffset()
	if start <= mid || start != kept[0].BaseOffset {
		t.Fatalf("retention moved the start to %d (first entry %d), from %d", start, kept[0].BaseOffset, mid)
	}
	last, err := me.open().Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	check(last, start)
}

// TestCorruptSegmentIsAStorageError flips one byte of a merged segment's
// batch data: a fetch of it fails with a storage error (Kafka
// KAFKA_STORAGE_ERROR), never returns the bytes.
func TestCorruptSegmentIsAStorageError(t *testing.T) {
	me := newMergeEnv(t)
	spec := storagetest.Spec("corrupt")
	spec.Topic.StorageMode = meta.StorageDiskless
	l, err := me.open().Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for i := range 10 {
		next = storagetest.Append(t, l, next, int64(1000+i), "a", "b", "c")
	}
	if st := me.pass(merge.Config{}); st.Segments != 1 {
		t.Fatalf("merge: %+v", st)
	}
	rs, err := me.store.RangesFrom(context.Background(), spec.Topic.ID, 0, 0, 10)
	if err != nil || len(rs) != 1 || rs[0].Segment == nil {
		t.Fatalf("entries %+v, %v", rs, err)
	}
	for _, tc := range []struct {
		name string
		mut  func([]byte) []byte
	}{
		{"crc", func(b []byte) []byte { b[rs[0].Position+rs[0].Length/2] ^= 0x40; return b }},
		{"index", func(b []byte) []byte { b[rs[0].Segment.IndexPos+3] ^= 0x01; return b }},
		{"truncated", func(b []byte) []byte { return b[:rs[0].Position+rs[0].Length-5] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(me.dir, filepath.FromSlash(rs[0].Object))
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(path, orig, 0o644)
			if err := os.WriteFile(path, tc.mut(bytes.Clone(orig)), 0o644); err != nil {
				t.Fatal(err)
			}
			fresh, err := me.open().Open(spec) // cold cache
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond) // let cache warming (which fails too) finish
			failed := 0
			for o := int64(0); o < next; o += 7 {
				data, err := fresh.Read(o, 1<<20, next, true)
				if errors.Is(err, storage.ErrStorage) {
					failed++
				} else {
					// A chunk before the damage may still be served, but
					// only if it is exactly what was written.
					if err != nil || !bytes.Contains(orig, data) || len(data) == 0 {
						t.Fatalf("read at %d of a corrupt segment: %d bytes, %v", o, len(data), err)
					}
				}
			}
			if failed == 0 {
				t.Fatal("no read of the corrupt segment failed")
			}
		})
	}
}

// TestNewLeaderWarmsItsCache opens a partition on a fresh engine (as a new
// leader does) and checks that its tail is loaded into the read cache in
// the background: once warmed, the tail reads with every object gone from
// the store.
func TestNewLeaderWarmsItsCache(t *testing.T) {
	me := newMergeEnv(t)
	spec := storagetest.Spec("warm")
	spec.Topic.StorageMode = meta.StorageDiskless
	l, err := me.open().Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for i := range 5 {
		next = storagetest.Append(t, l, next, int64(1000+i), "a", "b")
	}
	e := me.open().(*disklessstore.Engine)
	fresh, err := e.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.Warmed() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 5 entries warmed after 10 s", e.Warmed())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.RemoveAll(me.dir); err != nil {
		t.Fatal(err)
	}
	data, err := fresh.Read(next-2, 1<<20, next, true)
	if err != nil || len(data) == 0 {
		t.Fatalf("tail read with the objects gone: %d bytes, %v (not warmed)", len(data), err)
	}
}

// TestReadAfterAMergeDeletedTheCachedPagesObjects: a reader behind the
// ring reads from the page of manifest entries its previous read fetched
// (Log.rangesAt). A merge then replaces those entries with a segment's
// and the collector deletes their intake objects: the next read from the
// page finds its object gone, drops the page and reads the segment
// instead, so the consumer gets the records, not a storage error.
func TestReadAfterAMergeDeletedTheCachedPagesObjects(t *testing.T) {
	me := newMergeEnv(t)
	ctx := context.Background()
	spec := storagetest.Spec("stale-page")
	spec.Topic.StorageMode = meta.StorageDiskless
	w, err := me.open().Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	const ranges = 80
	next := int64(0)
	for i := range ranges { // one flush, one intake object, per batch
		next = storagetest.Append(t, w, next, int64(i), fmt.Sprintf("record %d", i))
	}
	reader := me.open().(*disklessstore.Engine)
	r, err := reader.OpenTier(spec) // empty ring and cache: every read is behind the ring
	if err != nil {
		t.Fatal(err)
	}
	readOne := func(at int64) []byte {
		t.Helper()
		b, err := r.Read(at, 1, next, true)
		if err != nil {
			t.Fatalf("read at %d: %v", at, err)
		}
		want, err := w.Read(at, 1, next, true) // the writer's ring
		if err != nil || len(b) == 0 || !bytes.Equal(b, want) {
			t.Fatalf("read at %d: %d bytes, not the batch the writer holds there (%v)", at, len(b), err)
		}
		return b
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(reader.Collector())
	manifest := func() (hits, misses float64) {
		return counterValue(t, reg, "streamline_logsvc_read_cache_hits_total", "manifest"),
			counterValue(t, reg, "streamline_logsvc_read_cache_misses_total", "manifest")
	}
	readOne(0) // fetches entries 0-63
	readOne(1)
	if hits, misses := manifest(); hits < 1 || misses != 1 {
		t.Fatalf("manifest page: %v hits, %v misses after two reads in one page; want >= 1 and 1", hits, misses)
	}

	if st := me.pass(merge.Config{RoundBytes: 1 << 20, TargetBytes: 3 << 20, ChunkBytes: 64 << 10}); st.Failed != 0 || st.Conflicts != 0 {
		t.Fatalf("merge pass: %+v", st)
	}
	refs, err := me.store.ReferencedObjects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var stale []string
	if err := me.bucket.Iter(ctx, "", func(key string) error {
		if _, ok := refs[key]; !ok {
			stale = append(stale, key)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(stale) < ranges/2 {
		t.Fatalf("the merge left %d objects unreferenced; want the intake objects (%d)", len(stale), ranges)
	}
	for _, key := range stale {
		if err := me.bucket.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	_, before := manifest()
	readOne(20) // in the cached page (44 entries left of 64); its intake object is gone
	if _, misses := manifest(); misses != before+1 {
		t.Fatalf("manifest misses %v -> %v: the read should have fetched a fresh page once", before, misses)
	}
	readOne(21) // from the fresh page: the segment's entry
	for at := int64(22); at < next; at++ {
		readOne(at)
	}
}
