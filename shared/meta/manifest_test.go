package meta_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestManifestCommitsAreFencedAndOrdered(t *testing.T) {
	e := metatest.Start(t)
	ctx := context.Background()
	store, cache := startStoreCache(t, e)
	topic := &meta.Topic{Name: "d", Partitions: 2, StorageMode: meta.StorageDiskless}
	rev, err := store.CreateTopic(ctx, topic, []meta.LogNode{{ID: "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	_ = cache.WaitRevision(ctx, rev)
	p0, _ := cache.Partition("d", 0)
	p1, _ := cache.Partition("d", 1)
	rng := func(base, last int64) meta.Coords {
		return meta.Coords{Object: "o", Position: base * 10, Length: 10 * (last - base + 1), BaseOffset: base, LastOffset: last}
	}
	commit := func(p meta.Partition, ranges ...meta.Coords) meta.PartitionCommit {
		return meta.PartitionCommit{Topic: "d", TopicID: topic.ID, Partition: p.Partition, LeaderRevision: p.ModRevision, Ranges: ranges}
	}

	// Two partitions in one call; both succeed.
	errs := store.Commit(ctx, []meta.PartitionCommit{commit(p0, rng(0, 4), rng(5, 9)), commit(p1, rng(0, 0))})
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("first commit: %v", errs)
	}
	if end, _, _ := store.CommittedEnd(ctx, topic.ID, 0); end != 10 {
		t.Fatalf("end %d", end)
	}
	// A gap (an earlier commit missing) is refused, and only that partition.
	errs = store.Commit(ctx, []meta.PartitionCommit{commit(p0, rng(12, 13)), commit(p1, rng(1, 2))})
	if !errors.Is(errs[0], meta.ErrCommitOutOfOrder) || errs[1] != nil {
		t.Fatalf("gap: %v", errs)
	}
	// A leadership change fences the old leader's commit.
	moved := p0
	moved.Leader, moved.LeaderEpoch = "n2", p0.LeaderEpoch+1
	if n, err := store.UpdatePartitions(ctx, []meta.PartitionUpdate{{Old: p0, New: moved}}); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	errs = store.Commit(ctx, []meta.PartitionCommit{commit(p0, rng(10, 11))})
	if !errors.Is(errs[0], meta.ErrCommitFenced) {
		t.Fatalf("stale leader: %v", errs)
	}
	if end, _, _ := store.CommittedEnd(ctx, topic.ID, 0); end != 10 {
		t.Fatalf("fenced commit changed the end to %d", end)
	}
	// Lookup by offset finds the range holding it.
	for _, c := range []struct{ off, base int64 }{{0, 0}, {3, 0}, {5, 5}, {9, 5}} {
		rs, err := store.RangesFrom(ctx, topic.ID, 0, c.off, 1)
		if err != nil || len(rs) != 1 || rs[0].BaseOffset != c.base {
			t.Fatalf("offset %d: %+v %v", c.off, rs, err)
		}
	}
	if rs, _ := store.RangesFrom(ctx, topic.ID, 0, 10, 1); len(rs) != 0 {
		t.Fatalf("past the end: %+v", rs)
	}
}

func TestManifestCommitSplitsLargeGroups(t *testing.T) {
	e := metatest.Start(t)
	ctx := context.Background()
	store, cache := startStoreCache(t, e)
	topic := &meta.Topic{Name: "wide", Partitions: 60, StorageMode: meta.StorageDiskless}
	rev, err := store.CreateTopic(ctx, topic, []meta.LogNode{{ID: "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	_ = cache.WaitRevision(ctx, rev)
	var commits []meta.PartitionCommit
	for _, p := range cache.Partitions("wide") {
		commits = append(commits, meta.PartitionCommit{Topic: "wide", TopicID: topic.ID, Partition: p.Partition, LeaderRevision: p.ModRevision,
			Ranges: []meta.Coords{{Object: "o", BaseOffset: 0, LastOffset: 1}}})
	}
	// 60 partitions x 4 operations is above etcd's 128-operation limit.
	for i, err := range store.Commit(ctx, commits) {
		if err != nil {
			t.Fatalf("partition %d: %v", i, err)
		}
	}
	for _, p := range cache.Partitions("wide") {
		if end, _, _ := store.CommittedEnd(ctx, topic.ID, p.Partition); end != 2 {
			t.Fatalf("partition %d end %d", p.Partition, end)
		}
	}
}

// A commit or DeleteRecords in flight when its topic is deleted must not
// resurrect any of it, and a topic re-created under the same name (a new
// id) starts with an empty manifest that the old leader cannot write to.
func TestManifestCommitAfterTopicDeleteIsRefused(t *testing.T) {
	e := metatest.Start(t)
	ctx := context.Background()
	store := meta.NewStore(e.Client, "")
	nodes := []meta.LogNode{{ID: "n1"}}
	partition := func(name string) meta.Partition {
		t.Helper()
		resp, err := e.Client.Get(ctx, "/streamline/partitions/"+name+"/00000")
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("partition key: %v %v", resp, err)
		}
		return meta.Partition{Topic: name, Partition: 0, ModRevision: resp.Kvs[0].ModRevision}
	}
	rng := func(base, last int64) meta.Coords {
		return meta.Coords{Object: "o", Length: 10, BaseOffset: base, LastOffset: last}
	}
	old := &meta.Topic{Name: "gone", Partitions: 1, StorageMode: meta.StorageDiskless}
	if _, err := store.CreateTopic(ctx, old, nodes); err != nil {
		t.Fatal(err)
	}
	leader := partition("gone")
	commit := func(id meta.TopicID, base, last int64) error {
		return store.Commit(ctx, []meta.PartitionCommit{{Topic: "gone", TopicID: id, Partition: 0, LeaderRevision: leader.ModRevision, Ranges: []meta.Coords{rng(base, last)}}})[0]
	}
	if err := commit(old.ID, 0, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := store.DeleteTopic(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	noManifest := func(id meta.TopicID) {
		t.Helper()
		resp, err := e.Client.Get(ctx, "/streamline/manifests/"+id.String()+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil || resp.Count != 0 {
			t.Fatalf("manifest keys of %s: %d %v", id, resp.Count, err)
		}
	}
	// The in-flight commit and DeleteRecords land after the delete.
	if err := commit(old.ID, 5, 9); !errors.Is(err, meta.ErrCommitFenced) {
		t.Fatalf("commit after delete: %v, want ErrCommitFenced", err)
	}
	if _, err := store.AdvanceLogStart(ctx, "gone", old.ID, 0, leader.ModRevision, 3); !errors.Is(err, meta.ErrCommitFenced) {
		t.Fatalf("DeleteRecords after delete: %v, want ErrCommitFenced", err)
	}
	noManifest(old.ID)
	if _, err := store.GetTopic(ctx, "gone"); !errors.Is(err, meta.ErrTopicNotFound) {
		t.Fatalf("topic resurrected: %v", err)
	}

	// Re-created: new id, empty manifest; the old leader stays fenced.
	again := &meta.Topic{Name: "gone", Partitions: 1, StorageMode: meta.StorageDiskless}
	if _, err := store.CreateTopic(ctx, again, nodes); err != nil {
		t.Fatal(err)
	}
	if again.ID == old.ID {
		t.Fatal("re-created topic reuses the old id")
	}
	if end, _, err := store.CommittedEnd(ctx, again.ID, 0); end != 0 || err != nil {
		t.Fatalf("re-created topic's committed end %d %v, want 0", end, err)
	}
	if rs, err := store.RangesFrom(ctx, again.ID, 0, 0, 10); len(rs) != 0 || err != nil {
		t.Fatalf("re-created topic sees ranges %+v %v", rs, err)
	}
	for _, id := range []meta.TopicID{old.ID, again.ID} {
		if err := commit(id, 0, 4); !errors.Is(err, meta.ErrCommitFenced) {
			t.Fatalf("old leader's commit under %s: %v, want ErrCommitFenced", id, err)
		}
	}
	noManifest(old.ID)
	noManifest(again.ID)
}

// A controller's partition update computed before its topic's delete (or
// before a delete and re-create) must not write a partition key without
// its topic, nor move the new topic's partition.
func TestPartitionUpdateAfterTopicDeleteIsRefused(t *testing.T) {
	e := metatest.Start(t)
	ctx := context.Background()
	store, cache := startStoreCache(t, e)
	nodes := []meta.LogNode{{ID: "n1"}, {ID: "n2"}}
	rev, err := store.CreateTopic(ctx, &meta.Topic{Name: "moved", Partitions: 1}, nodes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	old, _ := cache.Partition("moved", 0)
	moved := old
	moved.Leader, moved.LeaderEpoch = "n2", old.LeaderEpoch+1
	if _, err := store.DeleteTopic(ctx, "moved"); err != nil {
		t.Fatal(err)
	}
	if n, err := store.UpdatePartitions(ctx, []meta.PartitionUpdate{{Old: old, New: moved}}); n != 0 || err != nil {
		t.Fatalf("update after delete: applied %d, %v", n, err)
	}
	resp, err := e.Client.Get(ctx, "/streamline/partitions/moved/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("partition keys without their topic: %d %v", resp.Count, err)
	}
	again := &meta.Topic{Name: "moved", Partitions: 1}
	if _, err := store.CreateTopic(ctx, again, nodes[:1]); err != nil {
		t.Fatal(err)
	}
	if n, err := store.UpdatePartitions(ctx, []meta.PartitionUpdate{{Old: old, New: moved}}); n != 0 || err != nil {
		t.Fatalf("update after re-create: applied %d, %v", n, err)
	}
	got, err := e.Client.Get(ctx, "/streamline/partitions/moved/00000")
	if err != nil || len(got.Kvs) != 1 || !strings.Contains(string(got.Kvs[0].Value), again.ID.String()) {
		t.Fatalf("re-created topic's partition overwritten: %v %v", got, err)
	}
}

// startStoreCache returns a store on e's default prefix and a started
// cache of it, closed when the test ends.
func startStoreCache(t *testing.T, e *metatest.Etcd) (*meta.Store, *meta.Cache) {
	t.Helper()
	store := meta.NewStore(e.Client, "")
	cache := meta.NewCache(store, nil)
	if err := cache.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	return store, cache
}

// Commits with ExpectedEnd (hybrid topics): the first commit may start
// above 0 and later ones above the committed end, raising the log start
// over the gap, but only when the committed end is the one expected; the
// leader fence holds as for any commit.
func TestManifestCommitAcrossAGap(t *testing.T) {
	e := metatest.Start(t)
	ctx := context.Background()
	store, cache := startStoreCache(t, e)
	topic := &meta.Topic{Name: "h", Partitions: 2, StorageMode: meta.StorageDiskless}
	rev, err := store.CreateTopic(ctx, topic, []meta.LogNode{{ID: "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	_ = cache.WaitRevision(ctx, rev)
	p0, _ := cache.Partition("h", 0)
	p1, _ := cache.Partition("h", 1)
	rng := func(base, last int64) meta.Coords {
		return meta.Coords{Object: "o", Position: 8, Length: 10 * (last - base + 1), BaseOffset: base, LastOffset: last}
	}
	commit := func(p meta.Partition, expected int64, ranges ...meta.Coords) meta.PartitionCommit {
		return meta.PartitionCommit{Topic: "h", TopicID: topic.ID, Partition: p.Partition, LeaderRevision: p.ModRevision,
			Ranges: ranges, ExpectedEnd: &expected}
	}
	state := func(p int32) (end, start int64, bases []int64) {
		t.Helper()
		end, _, err := store.CommittedEnd(ctx, topic.ID, p)
		if err != nil {
			t.Fatal(err)
		}
		if start, err = store.LogStart(ctx, topic.ID, p); err != nil {
			t.Fatal(err)
		}
		rs, err := store.RangesFrom(ctx, topic.ID, p, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			bases = append(bases, r.BaseOffset)
		}
		return end, start, bases
	}
	want := func(p int32, end, start int64, bases ...int64) {
		t.Helper()
		gotEnd, gotStart, gotBases := state(p)
		if gotEnd != end || gotStart != start || fmt.Sprint(gotBases) != fmt.Sprint(bases) {
			t.Fatalf("partition %d: end %d, log start %d, ranges at %v; want %d, %d, %v", p, gotEnd, gotStart, gotBases, end, start, bases)
		}
	}

	// The first commit at a non-zero offset (a tier starting at 100):
	// refused without ExpectedEnd, committed with ExpectedEnd 0, raising
	// the log start to 100.
	if errs := store.Commit(ctx, []meta.PartitionCommit{{Topic: "h", TopicID: topic.ID, Partition: 0, LeaderRevision: p0.ModRevision,
		Ranges: []meta.Coords{rng(100, 109)}}}); !errors.Is(errs[0], meta.ErrCommitOutOfOrder) {
		t.Fatalf("first commit at 100 without ExpectedEnd: %v", errs)
	}
	if errs := store.Commit(ctx, []meta.PartitionCommit{commit(p0, 0, rng(100, 109))}); errs[0] != nil {
		t.Fatalf("first commit at 100: %v", errs)
	}
	want(0, 110, 100, 100)
	// ExpectedEnd 0 again: the end exists now.
	if errs := store.Commit(ctx, []meta.PartitionCommit{commit(p0, 0, rng(200, 209))}); !errors.Is(errs[0], meta.ErrCommitOutOfOrder) {
		t.Fatalf("second commit expecting no end: %v", errs)
	}
	// A gap above the end (the log start moved past the tier's end):
	// committed, log start raised to the range's base, entries below it
	// gone. In the same call, partition 1's first commit at 0 (no gap).
	errs := store.Commit(ctx, []meta.PartitionCommit{commit(p0, 110, rng(150, 159)), commit(p1, 0, rng(0, 9))})
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("gap commit: %v", errs)
	}
	want(0, 160, 150, 150)
	want(1, 10, 0, 0)
	// Refused when the committed end is not the expected one, and when the
	// range starts below the expected end; nothing changes.
	errs = store.Commit(ctx, []meta.PartitionCommit{commit(p0, 150, rng(170, 179)), commit(p1, 10, rng(10, 19))})
	if !errors.Is(errs[0], meta.ErrCommitOutOfOrder) || !strings.Contains(errs[0].Error(), "committed end is 160") || errs[1] != nil {
		t.Fatalf("gap commit expecting a wrong end: %v", errs)
	}
	if errs := store.Commit(ctx, []meta.PartitionCommit{commit(p0, 160, rng(155, 165))}); !errors.Is(errs[0], meta.ErrCommitOutOfOrder) {
		t.Fatalf("commit below the expected end: %v", errs)
	}
	want(0, 160, 150, 150)
	want(1, 20, 0, 0, 10)
	// ExpectedEnd equal to the base: an ordinary commit, log start kept.
	if errs := store.Commit(ctx, []meta.PartitionCommit{commit(p0, 160, rng(160, 169))}); errs[0] != nil {
		t.Fatal(errs)
	}
	want(0, 170, 150, 150, 160)
	// A log start already above the base (a trim went further): the
	// range is committed and the log start left where it is, inside it.
	if _, err := store.AdvanceLogStart(ctx, "h", topic.ID, 0, p0.ModRevision, 300); err != nil {
		t.Fatal(err)
	}
	if errs := store.Commit(ctx, []meta.PartitionCommit{commit(p0, 170, rng(250, 349))}); errs[0] != nil {
		t.Fatal(errs)
	}
	want(0, 350, 300, 250)
	// A new leader fences the old one's gap commit.
	moved := p0
	moved.Leader, moved.LeaderEpoch = "n2", p0.LeaderEpoch+1
	if n, err := store.UpdatePartitions(ctx, []meta.PartitionUpdate{{Old: p0, New: moved}}); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	if errs := store.Commit(ctx, []meta.PartitionCommit{commit(p0, 350, rng(400, 409))}); !errors.Is(errs[0], meta.ErrCommitFenced) {
		t.Fatalf("stale leader's gap commit: %v", errs)
	}
	want(0, 350, 300, 250)
	// A negative expected end is refused before etcd.
	if errs := store.Commit(ctx, []meta.PartitionCommit{commit(p1, -1, rng(20, 29))}); errs[0] == nil {
		t.Fatal("negative expected end committed")
	}
}
