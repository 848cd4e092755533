package merge_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
	"github.com/streamline-dev/streamline/shared/segobject"
	"github.com/streamline-dev/streamline/uploader/merge"
	"github.com/streamline-dev/streamline/uploader/upload"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is a real etcd with one diskless topic and a real local-directory
// bucket; flush writes and commits flushes as the uploader does, and
// remembers every batch to check what merges leave.
type env struct {
	t      *testing.T
	ctx    context.Context
	store  *meta.Store
	topic  *meta.Topic
	parts  []meta.Partition
	dir    string
	bucket *objstorefs.Bucket
	rng    *rand.Rand
	seq    uint64
	next   []int64    // next offset per partition
	want   [][][]byte // committed batches per partition, in offset order
	pseq   []int32    // next sequence of partition p's producer
}

func newEnv(t *testing.T, partitions int32) *env {
	t.Helper()
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	store := meta.NewStore(e.Client, "")
	cache := meta.NewCache(store, quiet)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	topic := &meta.Topic{Name: "events", Partitions: partitions, StorageMode: meta.StorageDiskless}
	rev, err := store.CreateTopic(ctx, topic, []meta.LogNode{{ID: "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bucket, err := objstorefs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	en := &env{t: t, ctx: ctx, store: store, topic: topic, dir: dir, bucket: bucket, rng: rand.New(rand.NewPCG(1, 2)),
		next: make([]int64, partitions), want: make([][][]byte, partitions), pseq: make([]int32, partitions)}
	for i := range partitions {
		p, ok := cache.Partition("events", i)
		if !ok {
			t.Fatalf("partition %d not in cache", i)
		}
		en.parts = append(en.parts, p)
	}
	return en
}

// flush uploads and commits one flush holding one or two batches of each
// partition; partition p's batches come from idempotent producer 100+p.
func (en *env) flush() {
	en.t.Helper()
	en.seq++
	f := upload.Flush{NodeID: "n1", Seq: en.seq}
	for p := range en.parts {
		pb := upload.PartitionBatches{Topic: "events", TopicID: en.topic.ID, Partition: int32(p), LeaderEpoch: en.parts[p].LeaderEpoch}
		for range 1 + en.rng.IntN(2) {
			spec := recbatchtest.Values(time.Now().UnixMilli()+en.next[p], "v")
			for range en.rng.IntN(3) {
				spec.Records = append(spec.Records, kmsg.Record{Value: bytes.Repeat([]byte{'x'}, en.rng.IntN(200))})
			}
			spec.BaseOffset, spec.ProducerID, spec.ProducerEpoch, spec.BaseSequence = en.next[p], 100+int64(p), 0, en.pseq[p]
			b := recbatchtest.Build(spec)
			pb.Batches = append(pb.Batches, b)
			en.next[p] += int64(len(spec.Records))
			en.pseq[p] += int32(len(spec.Records))
			en.want[p] = append(en.want[p], b)
		}
		f.Partitions = append(f.Partitions, pb)
	}
	_, coords, err := upload.Write(en.ctx, en.bucket, f)
	if err != nil {
		en.t.Fatal(err)
	}
	var commits []meta.PartitionCommit
	for p, c := range coords {
		commits = append(commits, meta.PartitionCommit{Topic: "events", TopicID: en.topic.ID, Partition: int32(p),
			LeaderRevision: en.parts[p].ModRevision, Ranges: []meta.Coords{c}})
	}
	for _, err := range en.store.Commit(en.ctx, commits) {
		if err != nil {
			en.t.Fatal(err)
		}
	}
}

// merger returns a merger whose clock runs an hour ahead (everything is
// older than the default min age) with cfg's other fields.
func (en *env) merger(cfg merge.Config) *merge.Merger {
	en.t.Helper()
	if cfg.Bucket == nil {
		cfg.Bucket = en.bucket
	}
	cfg.Store, cfg.ID, cfg.Logger = en.store, "up-1", quiet
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return time.Now().Add(time.Hour) }
	}
	m, err := merge.New(cfg)
	if err != nil {
		en.t.Fatal(err)
	}
	return m
}

func (en *env) pass(m *merge.Merger) merge.Stats {
	en.t.Helper()
	st, err := m.Pass(en.ctx)
	if err != nil {
		en.t.Fatal(err)
	}
	return st
}

// entries returns partition p's manifest after checking it has no gap and
// no overlap and ends at the committed end.
func (en *env) entries(p int32) []meta.RangeEntry {
	en.t.Helper()
	var got []meta.RangeEntry
	end := int64(-2)
	if err := en.store.ScanManifests(en.ctx, func(pm meta.PartitionManifest) error {
		if pm.TopicID == en.topic.ID && pm.Partition == p {
			got, end = pm.Entries, pm.End
		}
		return nil
	}); err != nil {
		en.t.Fatal(err)
	}
	for i := 1; i < len(got); i++ {
		if got[i].BaseOffset != got[i-1].LastOffset+1 {
			en.t.Fatalf("partition %d: entry %d starts at %d after one ending at %d: a gap or an overlap", p, i, got[i].BaseOffset, got[i-1].LastOffset)
		}
	}
	if len(got) > 0 && got[len(got)-1].LastOffset+1 != end {
		en.t.Fatalf("partition %d: entries end at %d, committed end %d", p, got[len(got)-1].LastOffset, end)
	}
	return got
}

// readBack checks that partition p's entries from offset from on hold
// exactly the committed batches, byte for byte, and that every offset of a
// segment is found through its index.
func (en *env) readBack(p int32, from int64) {
	en.t.Helper()
	var got []byte
	for _, e := range en.entries(p) {
		data, err := en.bucket.GetRange(en.ctx, e.Object, e.Position, e.Length)
		if err != nil || int64(len(data)) != e.Length {
			en.t.Fatalf("partition %d %d..%d: %d bytes, %v", p, e.BaseOffset, e.LastOffset, len(data), err)
		}
		if e.Segment != nil {
			ib, err := en.bucket.GetRange(en.ctx, e.Object, e.Segment.IndexPos, e.Segment.IndexLen)
			if err != nil {
				en.t.Fatal(err)
			}
			ix, err := segobject.ParseIndex(ib, e.Segment.IndexPos, e.LastOffset)
			if err != nil {
				en.t.Fatal(err)
			}
			for o := e.BaseOffset; o <= e.LastOffset; o++ {
				blk, ok := ix.Find(o)
				if !ok {
					en.t.Fatalf("offset %d not in its segment's index", o)
				}
				if err := segobject.Verify(data[blk.Pos-e.Position:blk.End-e.Position], blk.BaseOffset, e.LastOffset); err != nil {
					en.t.Fatalf("offset %d: %v", o, err)
				}
			}
		}
		got = append(got, data...)
	}
	var want []byte
	for _, b := range en.want[p] {
		if h, _ := recbatch.ParseHeader(b); h.LastOffset() >= from {
			want = append(want, b...)
		}
	}
	if !bytes.Equal(got, want) {
		en.t.Fatalf("partition %d: manifest holds %d bytes, %d were committed from offset %d, or they differ", p, len(got), len(want), from)
	}
}

func TestRoundMergesIntakeIntoOneSegmentPerPartition(t *testing.T) {
	en := newEnv(t, 3)
	for range 20 {
		en.flush()
	}
	before, err := en.store.ReferencedObjects(en.ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := en.pass(en.merger(merge.Config{}))
	if st.Segments != 3 || st.Sources != 60 || st.Entries != 60 || st.Conflicts != 0 || st.Failed != 0 || st.Lag < time.Hour-time.Minute {
		t.Fatalf("stats %+v", st)
	}
	if ts := st.PerTopic["events"]; ts.Entries != 60 || ts.Bytes <= 0 {
		t.Fatalf("per-topic stats %+v", st.PerTopic)
	}
	for p := range int32(3) {
		es := en.entries(p)
		if len(es) != 1 || es[0].Segment == nil || es[0].BaseOffset != 0 {
			t.Fatalf("partition %d: %d entries after the merge: %+v", p, len(es), es)
		}
		// The producer facts a new leader needs: the last five batches.
		pr := es[0].Producers
		if len(pr) != meta.ProducerWindow || pr[len(pr)-1].LastOffset != es[0].LastOffset || pr[0].ProducerID != 100+int64(p) {
			t.Fatalf("partition %d producers %+v", p, pr)
		}
		en.readBack(p, 0)
	}
	after, err := en.store.ReferencedObjects(en.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 20 || len(after) != 3 {
		t.Fatalf("%d objects referenced before, %d after; want 20 intake objects, then 3 segments", len(before), len(after))
	}
	for o := range before {
		if _, ok := after[o]; ok {
			t.Fatalf("intake object %s still referenced", o)
		}
	}
	// Nothing left to merge.
	if st := en.pass(en.merger(merge.Config{})); st.Segments != 0 || st.Lag != 0 {
		t.Fatalf("second pass %+v", st)
	}
}

// A deleted topic's manifest waiting for the collector to delete it (too
// large to go with its topic: meta.Store.ReapDeletedTopics) is not merged:
// that would only write segments nobody can read.
func TestDeletedTopicsManifestIsNotMerged(t *testing.T) {
	en := newEnv(t, 1)
	for range meta.ReapChunkKeys + 5 {
		en.flush()
	}
	objects, err := en.store.ReferencedObjects(en.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := en.store.DeleteTopic(en.ctx, "events"); err != nil {
		t.Fatal(err)
	}
	if dead, err := en.store.DeletedTopics(en.ctx); err != nil || len(dead) != 1 {
		t.Fatalf("tombstones %+v, %v; want the deleted topic's", dead, err)
	}
	st := en.pass(en.merger(merge.Config{}))
	if st.Segments != 0 || st.Sources != 0 || st.Entries != meta.ReapChunkKeys+5 {
		t.Fatalf("stats %+v; want the deleted topic's entries counted and none merged", st)
	}
	after, err := en.store.ReferencedObjects(en.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(objects) {
		t.Fatalf("%d objects referenced after the pass, %d before", len(after), len(objects))
	}
	var written int
	if err := en.bucket.Iter(en.ctx, "", func(string) error { written++; return nil }); err != nil {
		t.Fatal(err)
	}
	if written != len(objects) {
		t.Fatalf("%d objects in the bucket, want the %d intake objects and no segment", written, len(objects))
	}
}

func TestYoungRangesAreLeftAlone(t *testing.T) {
	en := newEnv(t, 1)
	en.flush()
	st := en.pass(en.merger(merge.Config{Now: time.Now}))
	if st.Segments != 0 || st.Entries != 1 || st.Lag > merge.DefaultMinAge {
		t.Fatalf("stats %+v", st)
	}
	if es := en.entries(0); len(es) != 1 || es[0].Segment != nil {
		t.Fatalf("a range younger than the min age was merged: %+v", es)
	}
}

// TestSegmentsGrowGeometrically runs one flush per round: each round makes
// a small segment per partition, and segment merges keep the count
// logarithmic while every byte stays where the manifest says.
func TestSegmentsGrowGeometrically(t *testing.T) {
	en := newEnv(t, 2)
	m := en.merger(merge.Config{RoundBytes: 1, ChunkBytes: 300, TargetBytes: 1 << 30})
	merges := 0
	for round := 1; round <= 16; round++ {
		en.flush()
		merges += en.pass(m).Segments
		for p := range int32(2) {
			if n := len(en.entries(p)); n > 6 {
				t.Fatalf("round %d: partition %d has %d entries", round, p, n)
			}
		}
	}
	en.pass(m) // merges due after the last round
	for p := range int32(2) {
		en.readBack(p, 0)
	}
	if merges <= 32 {
		t.Fatalf("%d merges in 16 rounds: segments were never merged", merges)
	}
}

// hookBucket runs hook (once) when the merger starts its first PUT: the
// merger has read the manifest and is about to swap.
type hookBucket struct {
	*objstorefs.Bucket
	once sync.Once
	hook func()
}

func (h *hookBucket) PutReader(ctx context.Context, key string, r io.Reader, size int64) error {
	h.once.Do(h.hook)
	return h.Bucket.PutReader(ctx, key, r, size)
}

// TestSwapRacesWinCleanlyOrLoseCleanly runs something that changes the
// partition's manifest between the merger's read and its swap. Either the
// swap loses (nothing written, the other change stands) or it wins; after
// each, the manifest has no gap and no overlap and every retained record
// is where it says.
func TestSwapRacesWinCleanlyOrLoseCleanly(t *testing.T) {
	for _, tc := range []struct {
		name      string
		race      func(en *env)
		conflicts int
		from      int64 // first offset retained after the race
	}{
		{"retention", func(en *env) {
			if _, err := en.store.AdvanceLogStart(en.ctx, "events", en.topic.ID, 0, en.parts[0].ModRevision, en.entries(0)[2].LastOffset+1); err != nil {
				en.t.Fatal(err)
			}
		}, 1, -1},
		{"delete-records", func(en *env) {
			to := en.entries(0)[1].LastOffset // inside entry 1 when it holds several offsets
			if _, err := en.store.AdvanceLogStart(en.ctx, "events", en.topic.ID, 0, en.parts[0].ModRevision, to); err != nil {
				en.t.Fatal(err)
			}
		}, 1, -1},
		{"another-merge", func(en *env) { // it merges all three: all conflict
			if st := en.pass(en.merger(merge.Config{})); st.Segments != 3 {
				en.t.Fatalf("the other merger: %+v", st)
			}
		}, 3, 0},
		{"commit", func(en *env) { en.flush() }, 0, 0},
		{"leader-change", func(en *env) {
			p := en.parts[0]
			np := p
			np.LeaderEpoch++
			if n, err := en.store.UpdatePartitions(en.ctx, []meta.PartitionUpdate{{Old: p, New: np}}); err != nil || n != 1 {
				en.t.Fatalf("leader change: %d, %v", n, err)
			}
		}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Three partitions, swapped in one transaction: the race on
			// partition 0 must not take the others down with it.
			en := newEnv(t, 3)
			for range 6 {
				en.flush()
			}
			hb := &hookBucket{Bucket: en.bucket, hook: func() { tc.race(en) }}
			st, err := en.merger(merge.Config{Bucket: hb}).Pass(en.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Conflicts != tc.conflicts || st.Segments != 3-tc.conflicts {
				t.Fatalf("stats %+v, want %d conflicts", st, tc.conflicts)
			}
			for p := int32(1); p < 3; p++ {
				if es := en.entries(p); es[0].Segment == nil || es[0].BaseOffset != 0 {
					t.Fatalf("partition %d not merged: %+v", p, es)
				}
				en.readBack(p, 0)
			}
			from := tc.from
			if from < 0 {
				from = en.entries(0)[0].BaseOffset
			}
			en.readBack(0, from)
			// And a later pass merges whatever is left, cleanly.
			en.pass(en.merger(merge.Config{}))
			en.readBack(0, from)
		})
	}
}

// TestCorruptSourceIsNeverMerged flips one byte of a committed batch in
// its intake object: the merge of that partition fails loudly and leaves
// its entries as they were; the other partition merges.
func TestCorruptSourceIsNeverMerged(t *testing.T) {
	en := newEnv(t, 2)
	for range 4 {
		en.flush()
	}
	victim := en.entries(0)[2]
	path := filepath.Join(en.dir, filepath.FromSlash(victim.Object))
	obj, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	obj[victim.Position+victim.Length-3] ^= 0xff // inside the batch's CRC
	if err := os.WriteFile(path, obj, 0o644); err != nil {
		t.Fatal(err)
	}
	before := en.entries(0)
	st, err := en.merger(merge.Config{}).Pass(en.ctx)
	if err == nil || !errors.Is(err, segobject.ErrCorrupt) || st.Failed != 1 || st.Segments != 1 {
		t.Fatalf("pass over a corrupt source: %+v, %v", st, err)
	}
	after := en.entries(0)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatal("a failed merge changed its partition's manifest")
	}
	if es := en.entries(1); len(es) != 1 || es[0].Segment == nil {
		t.Fatalf("the healthy partition was not merged: %+v", es)
	}
	en.readBack(1, 0)
}
