package gc_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/objstore"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
	"github.com/streamline-dev/streamline/uploader/gc"
	"github.com/streamline-dev/streamline/uploader/objectfmt"
	"github.com/streamline-dev/streamline/uploader/upload"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is a real etcd with one diskless topic of two partitions and a real
// local-directory bucket.
type env struct {
	t      *testing.T
	ctx    context.Context
	etcd   *metatest.Etcd
	store  *meta.Store
	topic  *meta.Topic
	parts  [2]meta.Partition
	bucket *objstorefs.Bucket
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	store := meta.NewStore(e.Client, "")
	cache := meta.NewCache(store, quiet)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	topic := &meta.Topic{Name: "events", Partitions: 2, StorageMode: meta.StorageDiskless}
	rev, err := store.CreateTopic(ctx, topic, []meta.LogNode{{ID: "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	bucket, err := objstorefs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	en := &env{t: t, ctx: ctx, etcd: e, store: store, topic: topic, bucket: bucket}
	for i := range en.parts {
		p, ok := cache.Partition("events", int32(i))
		if !ok {
			t.Fatalf("partition %d not in cache", i)
		}
		en.parts[i] = p
	}
	return en
}

// span is one partition's batch in a flush: offsets base..base+1.
type span struct {
	partition int32
	base      int64
}

// write uploads one flush with a real two-record batch per span and
// returns the object key and the coordinates per span.
func (en *env) write(seq uint64, spans ...span) (string, []meta.Coords) {
	en.t.Helper()
	f := upload.Flush{NodeID: "n1", Seq: seq}
	for _, s := range spans {
		b := recbatchtest.Build(recbatchtest.Values(1_000+s.base, "a", "b"))
		recbatch.SetBaseOffset(b, s.base)
		f.Partitions = append(f.Partitions, upload.PartitionBatches{Topic: "events", TopicID: en.topic.ID, Partition: s.partition,
			LeaderEpoch: en.parts[s.partition].LeaderEpoch, Batches: [][]byte{b}})
	}
	key, coords, err := upload.Write(en.ctx, en.bucket, f)
	if err != nil {
		en.t.Fatal(err)
	}
	return key, coords
}

// commit commits coordinates of partition p.
func (en *env) commit(p int32, c meta.Coords) {
	en.t.Helper()
	errs := en.store.Commit(en.ctx, []meta.PartitionCommit{{Topic: "events", TopicID: en.topic.ID, Partition: p,
		LeaderRevision: en.parts[p].ModRevision, Ranges: []meta.Coords{c}}})
	if errs[0] != nil {
		en.t.Fatalf("commit partition %d: %v", p, errs[0])
	}
}

func (en *env) exists(key string) bool {
	en.t.Helper()
	_, err := en.bucket.Size(en.ctx, key)
	switch {
	case err == nil:
		return true
	case errors.Is(err, objstore.ErrNotFound):
		return false
	}
	en.t.Fatal(err)
	return false
}

// collector returns a collector whose clock runs ahead of real time by
// ahead (0: the real clock).
func (en *env) collector(b gc.Bucket, grace, ahead time.Duration) *gc.Collector {
	en.t.Helper()
	c, err := gc.New(gc.Config{Bucket: b, Store: en.store, Grace: grace, Logger: quiet, Linger: -1,
		Now: func() time.Time { return time.Now().Add(ahead) }})
	if err != nil {
		en.t.Fatal(err)
	}
	return c
}

func (en *env) pass(c *gc.Collector, want gc.Stats) {
	en.t.Helper()
	got, err := c.Pass(en.ctx)
	if err != nil {
		en.t.Fatal(err)
	}
	if got != want {
		en.t.Fatalf("pass: got %+v, want %+v", got, want)
	}
}

// past is how far ahead a clock must run for every object written by the
// test so far to be older than the default grace period.
const past = gc.DefaultGrace + time.Minute

func TestPassDeletesExactlyTheOrphanOnceGraceHasPassed(t *testing.T) {
	en := newEnv(t)
	// Flush a: both partitions, committed. Flush b: partition 0, committed.
	// Flush c: partition 1, uploaded but never committed (its leader was
	// fenced, say): the orphan.
	a, ac := en.write(1, span{0, 0}, span{1, 0})
	en.commit(0, ac[0])
	en.commit(1, ac[1])
	b, bc := en.write(2, span{0, 2})
	en.commit(0, bc[0])
	orphan, _ := en.write(3, span{1, 2})
	// Something that is not a Streamline object is never touched.
	foreign := "notes/readme.txt"
	if err := en.bucket.Put(en.ctx, foreign, []byte("hello")); err != nil {
		t.Fatal(err)
	}

	// Within the grace period (the default 10 min, the real clock) the
	// orphan may still be waiting for its commit: kept.
	en.pass(en.collector(en.bucket, 0, 0), gc.Stats{Kept: 3, Skipped: 1})
	for _, k := range []string{a, b, orphan, foreign} {
		if !en.exists(k) {
			t.Fatalf("%s deleted within the grace period", k)
		}
	}

	// The grace boundary, measured from the time in the key: one
	// millisecond short of Grace keeps it, Grace itself collects it.
	born, ok := objectfmt.KeyTime(orphan)
	if !ok {
		t.Fatalf("upload.Write made key %q without a time", orphan)
	}
	grace := 5 * time.Minute
	at := func(now time.Time) *gc.Collector {
		c, err := gc.New(gc.Config{Bucket: en.bucket, Store: en.store, Grace: grace, Logger: quiet, Linger: -1, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// a and b are referenced: kept whatever their age.
	en.pass(at(born.Add(grace-time.Millisecond)), gc.Stats{Kept: 3, Skipped: 1})
	if !en.exists(orphan) {
		t.Fatal("orphan deleted 1ms before its grace period ended")
	}

	en.pass(at(born.Add(grace)), gc.Stats{Kept: 2, Deleted: 1, Skipped: 1})
	if en.exists(orphan) {
		t.Fatal("orphan survived a pass after its grace period")
	}
	for _, k := range []string{a, b, foreign} {
		if !en.exists(k) {
			t.Fatalf("%s was deleted, but it is referenced or foreign", k)
		}
	}
	// The committed data is still readable where etcd says it is.
	for p := int32(0); p < 2; p++ {
		rs, err := en.store.RangesFrom(en.ctx, en.topic.ID, p, 0, 10)
		if err != nil || len(rs) == 0 {
			t.Fatalf("partition %d ranges: %v %v", p, rs, err)
		}
		for _, r := range rs {
			data, err := en.bucket.GetRange(en.ctx, r.Object, r.Position, r.Length)
			if err != nil {
				t.Fatalf("partition %d range %d-%d: %v", p, r.BaseOffset, r.LastOffset, err)
			}
			if h, err := recbatch.Validate(data); err != nil || h.BaseOffset != r.BaseOffset {
				t.Fatalf("partition %d range %d-%d holds %+v, %v", p, r.BaseOffset, r.LastOffset, h, err)
			}
		}
	}

	// A second pass has nothing left to do.
	en.pass(en.collector(en.bucket, 0, past), gc.Stats{Kept: 2, Skipped: 1})
}

// TestUnreferencedObjectsLingerBeforeDeletion: an object that is old
// enough but only just became unreferenced (a merge replaced it, retention
// dropped it) stays for Linger after the collector first saw it
// unreferenced, so a reader holding its coordinates can still read it.
func TestUnreferencedObjectsLingerBeforeDeletion(t *testing.T) {
	en := newEnv(t)
	a, ac := en.write(1, span{0, 0})
	en.commit(0, ac[0])
	_, bc := en.write(2, span{0, 2})
	en.commit(0, bc[0])
	now := time.Now().Add(past)
	c, err := gc.New(gc.Config{Bucket: en.bucket, Store: en.store, Logger: quiet, Linger: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	en.pass(c, gc.Stats{Kept: 2})
	if _, err := en.store.AdvanceLogStart(en.ctx, "events", en.topic.ID, 0, en.parts[0].ModRevision, 2); err != nil {
		t.Fatal(err)
	}
	en.pass(c, gc.Stats{Kept: 1, Waiting: 1}) // first seen unreferenced now
	now = now.Add(time.Minute - time.Millisecond)
	en.pass(c, gc.Stats{Kept: 1, Waiting: 1})
	if !en.exists(a) {
		t.Fatal("deleted before it lingered a minute")
	}
	now = now.Add(time.Millisecond)
	en.pass(c, gc.Stats{Kept: 1, Deleted: 1})
	if en.exists(a) {
		t.Fatal("survived its linger")
	}
}

func TestRetentionLeavesObjectsToTheCollector(t *testing.T) {
	en := newEnv(t)
	a, ac := en.write(1, span{0, 0}, span{1, 0}) // one object, two partitions
	en.commit(0, ac[0])
	en.commit(1, ac[1])
	b, bc := en.write(2, span{0, 2}, span{1, 2})
	en.commit(0, bc[0])
	en.commit(1, bc[1])
	old := en.collector(en.bucket, 0, past)
	en.pass(old, gc.Stats{Kept: 2})

	// Partition 0's leader applies retention: its entry for a goes, but
	// partition 1 still references a.
	if _, err := en.store.AdvanceLogStart(en.ctx, "events", en.topic.ID, 0, en.parts[0].ModRevision, 2); err != nil {
		t.Fatal(err)
	}
	en.pass(old, gc.Stats{Kept: 2})
	if !en.exists(a) {
		t.Fatal("object a deleted while partition 1 still references it")
	}

	// Partition 1 too: nobody references a any more. Within the grace
	// period it stays (retention never shortens the grace).
	if _, err := en.store.AdvanceLogStart(en.ctx, "events", en.topic.ID, 1, en.parts[1].ModRevision, 2); err != nil {
		t.Fatal(err)
	}
	en.pass(en.collector(en.bucket, 0, 0), gc.Stats{Kept: 2})
	en.pass(old, gc.Stats{Kept: 1, Deleted: 1})
	if en.exists(a) {
		t.Fatal("unreferenced object a survived")
	}
	if !en.exists(b) {
		t.Fatal("referenced object b deleted")
	}
}

// hookBucket runs afterList once a listing has finished, before Iter
// returns: a commit landing between the listing and the etcd scan.
type hookBucket struct {
	*objstorefs.Bucket
	afterList func()
}

func (h hookBucket) Iter(ctx context.Context, prefix string, fn func(string) error) error {
	if err := h.Bucket.Iter(ctx, prefix, fn); err != nil {
		return err
	}
	h.afterList()
	return nil
}

func TestPassSeesCommitsMadeWhileListing(t *testing.T) {
	en := newEnv(t)
	key, coords := en.write(1, span{0, 0})
	committed := false
	hb := hookBucket{Bucket: en.bucket, afterList: func() {
		if !committed {
			committed = true
			en.commit(0, coords[0])
		}
	}}
	// The object was listed as unreferenced and is past its grace period,
	// but its commit landed before the referenced set was read: kept.
	en.pass(en.collector(hb, 0, past), gc.Stats{Kept: 1})
	if !committed || !en.exists(key) {
		t.Fatalf("committed %v, object exists %v", committed, en.exists(key))
	}
}

func TestPassLeavesEverythingWhenEtcdCannotBeRead(t *testing.T) {
	en := newEnv(t)
	orphan, _ := en.write(1, span{0, 0})
	cli := en.etcd.NewClient(t)
	c, err := gc.New(gc.Config{Bucket: en.bucket, Store: meta.NewStore(cli, ""), Logger: quiet,
		Now: func() time.Time { return time.Now().Add(past) }})
	if err != nil {
		t.Fatal(err)
	}
	cli.Close() // every etcd read of this collector fails
	st, err := c.Pass(en.ctx)
	if err == nil {
		t.Fatalf("pass without etcd succeeded: %+v", st)
	}
	if st.Deleted != 0 || !en.exists(orphan) {
		t.Fatalf("pass without etcd deleted something: %+v", st)
	}
}

func TestOnlyTheElectedCollectorRunsPasses(t *testing.T) {
	en := newEnv(t)
	orphan, _ := en.write(1, span{0, 0})

	type candidate struct {
		c      *gc.Collector
		sess   *concurrency.Session
		passes atomic.Int64
		done   chan error
	}
	passed := make(chan int, 1000)
	var cands [2]*candidate
	ctx, cancel := context.WithCancel(en.ctx)
	defer cancel()
	for i := range cands {
		cd := &candidate{done: make(chan error, 1)}
		sess, err := concurrency.NewSession(en.etcd.NewClient(t), concurrency.WithTTL(5))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sess.Close() })
		cd.sess = sess
		// The real clock and default grace: passes run but delete nothing
		// written by this test, so they can repeat freely.
		c, err := gc.New(gc.Config{Bucket: en.bucket, Store: en.store, ID: []string{"u0", "u1"}[i], Interval: 5 * time.Millisecond,
			Logger: quiet, OnPass: func(st gc.Stats, err error) {
				if err != nil {
					t.Errorf("candidate %d pass: %v", i, err)
				}
				cd.passes.Add(1)
				select {
				case passed <- i:
				default:
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		cd.c = c
		cands[i] = cd
		go func() { cd.done <- c.Run(ctx, sess) }()
	}

	// waitPasses waits until candidate i has made n passes in all.
	waitPasses := func(i int, n int64) {
		t.Helper()
		for cands[i].passes.Load() < n {
			select {
			case <-passed:
			case <-ctx.Done():
				t.Fatalf("candidate %d made %d passes, want %d", i, cands[i].passes.Load(), n)
			}
		}
	}
	// Whoever wins makes passes; the other makes none meanwhile.
	var first int
	select {
	case first = <-passed:
	case <-ctx.Done():
		t.Fatal("no candidate made a pass")
	}
	second := 1 - first
	waitPasses(first, 20)
	if n := cands[second].passes.Load(); n != 0 {
		t.Fatalf("candidate %d made %d passes while candidate %d was elected", second, n, first)
	}
	if !cands[first].c.IsLeader() || cands[second].c.IsLeader() {
		t.Fatalf("IsLeader: %v %v", cands[0].c.IsLeader(), cands[1].c.IsLeader())
	}
	resp, err := en.etcd.Client.Get(ctx, gc.ElectionKey(en.store)+"/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil || len(resp.Kvs) != 2 || string(resp.Kvs[0].Value) != []string{"u0", "u1"}[first] {
		t.Fatalf("election keys: %v %v", resp, err)
	}

	// The leader's session ends (its uploader died): its candidacy ends,
	// and the other one takes over.
	if err := cands[first].sess.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-cands[first].done:
		if !errors.Is(err, gc.ErrSessionLost) {
			t.Fatalf("Run after the session ended: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the deposed collector kept running")
	}
	stopped := cands[first].passes.Load()
	if cands[first].c.IsLeader() {
		t.Fatal("deposed collector still says it is the leader")
	}
	waitPasses(second, 20)
	if n := cands[first].passes.Load(); n != stopped {
		t.Fatalf("deposed candidate %d made %d passes after its session ended", first, n-stopped)
	}
	if !en.exists(orphan) {
		t.Fatal("a young orphan was collected")
	}

	// Stopping resigns: the election is left empty.
	cancel()
	if err := <-cands[second].done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	resp, err = en.etcd.Client.Get(en.ctx, gc.ElectionKey(en.store)+"/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("election keys after resigning: %v %v", resp.Kvs, err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	en := newEnv(t)
	for _, cfg := range []gc.Config{
		{Store: en.store},
		{Bucket: en.bucket},
		{Bucket: en.bucket, Store: en.store, Grace: -time.Second},
		{Bucket: en.bucket, Store: en.store, Interval: -time.Second},
	} {
		if _, err := gc.New(cfg); err == nil {
			t.Errorf("gc.New(%+v) accepted", cfg)
		}
	}
	c, err := gc.New(gc.Config{Bucket: en.bucket, Store: en.store})
	if err != nil || c.Grace() != gc.DefaultGrace {
		t.Fatalf("zero grace: %v %v", c, err)
	}
}

// A deleted topic whose manifest was too large to delete with it: the
// elected collector's pass deletes the manifest (a chunk at a time), and
// the objects only it referenced are then unreferenced and collected, in
// that same pass once they are old enough.
func TestPassReapsADeletedTopicsManifestThenCollectsItsObjects(t *testing.T) {
	en := newEnv(t)
	a, ac := en.write(1, span{0, 0}, span{1, 0})
	en.commit(0, ac[0])
	en.commit(1, ac[1])
	// More entries than one chunk, all in object a (the collector only
	// needs the references).
	keys := 2 * 2 // the two ranges above and the two committed ends
	for p := range int32(2) {
		for base := int64(2); base < 2+2*300; base += 200 {
			var rs []meta.Coords
			for off := base; off < base+200; off += 2 {
				rs = append(rs, meta.Coords{Object: a, Position: ac[p].Position, Length: ac[p].Length, BaseOffset: off, LastOffset: off + 1})
			}
			if err := en.store.Commit(en.ctx, []meta.PartitionCommit{{Topic: "events", TopicID: en.topic.ID, Partition: p,
				LeaderRevision: en.parts[p].ModRevision, Ranges: rs}})[0]; err != nil {
				t.Fatal(err)
			}
			keys += len(rs)
		}
	}
	if keys <= meta.ReapChunkKeys {
		t.Fatalf("test needs more than %d manifest keys, has %d", meta.ReapChunkKeys, keys)
	}
	if _, err := en.store.DeleteTopic(en.ctx, "events"); err != nil {
		t.Fatal(err)
	}
	if dead, err := en.store.DeletedTopics(en.ctx); err != nil || len(dead) != 1 {
		t.Fatalf("tombstones %+v, %v; want the deleted topic's", dead, err)
	}
	// Within the grace period the manifest goes, the object stays.
	en.pass(en.collector(en.bucket, 0, 0), gc.Stats{Kept: 1, ReapedKeys: keys, ReapedTopics: 1})
	if !en.exists(a) {
		t.Fatal("object deleted within the grace period")
	}
	en.pass(en.collector(en.bucket, 0, past), gc.Stats{Deleted: 1})
	if en.exists(a) {
		t.Fatal("the deleted topic's object survived")
	}
	if dead, err := en.store.DeletedTopics(en.ctx); err != nil || len(dead) != 0 {
		t.Fatalf("tombstones after the pass: %+v, %v", dead, err)
	}
}
