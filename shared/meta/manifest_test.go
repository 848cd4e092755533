package meta_test

import (
	"context"
	"errors"
	"testing"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
)

func TestManifestCommitsAreFencedAndOrdered(t *testing.T) {
	e := metatest.Start(t)
	ctx := context.Background()
	store := meta.NewStore(e.Client, "")
	cache := meta.NewCache(store, nil)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
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
	store := meta.NewStore(e.Client, "")
	cache := meta.NewCache(store, nil)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
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
