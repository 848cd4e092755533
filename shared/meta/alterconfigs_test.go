package meta_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
)

func TestUpdateTopicCompareAndSwap(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := meta.NewStore(e.Client, "")
	cache := meta.NewCache(store, nil)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	top := &meta.Topic{Name: "cfg", Partitions: 1, StorageMode: meta.StorageLocal, Configs: map[string]string{meta.ConfigRetentionMs: "1000"}}
	if _, err := store.CreateTopic(ctx, top, []meta.LogNode{{ID: "n"}}); err != nil {
		t.Fatal(err)
	}

	got, rev, err := store.UpdateTopic(ctx, "cfg", func(t *meta.Topic) error {
		t.Configs[meta.ConfigRetentionBytes] = "5000"
		delete(t.Configs, meta.ConfigRetentionMs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if c, _ := cache.Topic("cfg"); c.Configs[meta.ConfigRetentionBytes] != "5000" || len(c.Configs) != 1 || got.ID != top.ID {
		t.Fatalf("cache after update: %+v (returned %+v)", c, got)
	}

	// No change: nothing written, the read revision returned.
	modRev := func() int64 {
		r, err := e.Client.Get(ctx, "/streamline/topics/cfg")
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("get topic key: %v", err)
		}
		return r.Kvs[0].ModRevision
	}
	before := modRev()
	if _, rev, err := store.UpdateTopic(ctx, "cfg", func(*meta.Topic) error { return nil }); err != nil || rev < before {
		t.Fatalf("no-op update: rev %d (topic at %d), %v", rev, before, err)
	}
	if modRev() != before {
		t.Fatal("a no-op update wrote the topic")
	}

	// update's error aborts; changing more than configs is refused.
	boom := errors.New("boom")
	if _, _, err := store.UpdateTopic(ctx, "cfg", func(*meta.Topic) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("aborted update: %v", err)
	}
	if _, _, err := store.UpdateTopic(ctx, "cfg", func(t *meta.Topic) error { t.Partitions = 2; return nil }); err == nil {
		t.Fatal("partition count changed through UpdateTopic")
	}
	if _, _, err := store.UpdateTopic(ctx, "cfg", func(t *meta.Topic) error { t.StorageMode = meta.StorageDiskless; return nil }); !errors.Is(err, meta.ErrCannotBecomeDiskless) {
		t.Fatalf("local -> diskless through UpdateTopic: %v", err)
	}
	if _, _, err := store.UpdateTopic(ctx, "nope", func(*meta.Topic) error { return nil }); !errors.Is(err, meta.ErrTopicNotFound) {
		t.Fatalf("missing topic: %v", err)
	}

	// Concurrent incremental updates all land: each one is retried on the
	// latest definition instead of overwriting another's change.
	var wg sync.WaitGroup
	keys := []string{meta.ConfigSegmentBytes, meta.ConfigSegmentMs, meta.ConfigMaxMessageBytes}
	errs := make([]error, len(keys))
	for i, k := range keys {
		wg.Go(func() {
			_, _, errs[i] = store.UpdateTopic(ctx, "cfg", func(t *meta.Topic) error {
				t.Configs[k] = "4096"
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && !errors.Is(err, meta.ErrConflict) {
			t.Fatalf("concurrent update %d: %v", i, err)
		}
	}
	final, err := store.GetTopic(ctx, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if errs[i] == nil && final.Configs[k] != "4096" {
			t.Fatalf("update of %s acknowledged but lost: %v", k, final.Configs)
		}
	}
}

// TestUpdateTopicStorageMode: local and hybrid topics change into each
// other through UpdateTopic (the record's StorageMode, which
// Effective/DescribeConfigs reads, not Configs); diskless never changes,
// and nothing becomes diskless. Partition records stay as they are.
func TestUpdateTopicStorageMode(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := meta.NewStore(e.Client, "")
	cache := meta.NewCache(store, nil)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	nodes := []meta.LogNode{{ID: "n1"}, {ID: "n2"}}
	if _, err := store.CreateTopic(ctx, &meta.Topic{Name: "m", Partitions: 2, ReplicationFactor: 2, StorageMode: meta.StorageLocal}, nodes); err != nil {
		t.Fatal(err)
	}
	rev, err := store.CreateTopic(ctx, &meta.Topic{Name: "d", Partitions: 1, StorageMode: meta.StorageDiskless}, nodes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	before := cache.Partitions("m")
	setMode := func(name string, mode meta.StorageMode) error {
		_, rev, err := store.UpdateTopic(ctx, name, func(t *meta.Topic) error {
			t.StorageMode = mode
			if mode == meta.StorageHybrid {
				t.Configs = map[string]string{meta.ConfigLocalRetentionMs: "1000"}
			}
			return nil
		})
		if err == nil {
			err = cache.WaitRevision(ctx, rev)
		}
		return err
	}
	for _, mode := range []meta.StorageMode{meta.StorageHybrid, meta.StorageLocal, meta.StorageHybrid} {
		if err := setMode("m", mode); err != nil {
			t.Fatalf("-> %s: %v", mode, err)
		}
		stored, err := store.GetTopic(ctx, "m")
		if err != nil {
			t.Fatal(err)
		}
		cached, _ := cache.Topic("m")
		if stored.StorageMode != mode || cached.StorageMode != mode || cached.Effective(nil)[meta.ConfigStorageMode].Value != string(mode) {
			t.Fatalf("-> %s: stored %s, cached %s", mode, stored.StorageMode, cached.StorageMode)
		}
		if _, inConfigs := stored.Configs[meta.ConfigStorageMode]; inConfigs {
			t.Fatalf("storage.mode stored in Configs: %v", stored.Configs)
		}
	}
	if err := setMode("m", meta.StorageDiskless); !errors.Is(err, meta.ErrCannotBecomeDiskless) {
		t.Fatalf("hybrid -> diskless: %v", err)
	}
	for _, mode := range []meta.StorageMode{meta.StorageLocal, meta.StorageHybrid} {
		if err := setMode("d", mode); !errors.Is(err, meta.ErrDisklessModeFixed) {
			t.Fatalf("diskless -> %s: %v", mode, err)
		}
	}
	if st, _ := store.GetTopic(ctx, "m"); st.StorageMode != meta.StorageHybrid {
		t.Fatalf("a refused change was written: %s", st.StorageMode)
	}
	after := cache.Partitions("m")
	if len(before) != 2 || len(after) != 2 {
		t.Fatalf("partitions %d before, %d after", len(before), len(after))
	}
	for i := range before {
		if before[i].ModRevision != after[i].ModRevision || before[i].Home != after[i].Home || len(after[i].Replicas) != 2 {
			t.Fatalf("partition %d changed: %+v -> %+v", i, before[i], after[i])
		}
	}
}

func TestAdvanceLogStart(t *testing.T) {
	e := metatest.Start(t)
	ctx := context.Background()
	store := meta.NewStore(e.Client, "")
	cache := meta.NewCache(store, nil)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	topic := &meta.Topic{Name: "d", Partitions: 1, StorageMode: meta.StorageDiskless}
	rev, err := store.CreateTopic(ctx, topic, []meta.LogNode{{ID: "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	_ = cache.WaitRevision(ctx, rev)
	p0, _ := cache.Partition("d", 0)
	rng := func(base, last int64) meta.Coords {
		return meta.Coords{Object: "o", Position: base, Length: last - base + 1, BaseOffset: base, LastOffset: last}
	}
	if errs := store.Commit(ctx, []meta.PartitionCommit{{Topic: "d", TopicID: topic.ID, Partition: 0, LeaderRevision: p0.ModRevision,
		Ranges: []meta.Coords{rng(0, 4), rng(5, 9), rng(10, 14)}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if s, err := store.LogStart(ctx, topic.ID, 0); s != 0 || err != nil {
		t.Fatalf("initial log start %d %v", s, err)
	}
	// Offset 7 lies inside the second range: only the first goes.
	if s, err := store.AdvanceLogStart(ctx, "d", topic.ID, 0, p0.ModRevision, 7); s != 7 || err != nil {
		t.Fatalf("advance to 7: %d %v", s, err)
	}
	rs, _ := store.RangesFrom(ctx, topic.ID, 0, 0, 10)
	if len(rs) != 2 || rs[0].BaseOffset != 5 {
		t.Fatalf("ranges after advancing to 7: %+v", rs)
	}
	// Never backwards.
	if s, err := store.AdvanceLogStart(ctx, "d", topic.ID, 0, p0.ModRevision, 3); s != 7 || err != nil {
		t.Fatalf("advance to 3: %d %v", s, err)
	}
	if s, _ := store.LogStart(ctx, topic.ID, 0); s != 7 {
		t.Fatalf("stored start %d", s)
	}
	// A deposed leader is fenced.
	moved := p0
	moved.LeaderEpoch++
	if n, err := store.UpdatePartitions(ctx, []meta.PartitionUpdate{{Old: p0, New: moved}}); n != 1 || err != nil {
		t.Fatalf("move: %d %v", n, err)
	}
	if _, err := store.AdvanceLogStart(ctx, "d", topic.ID, 0, p0.ModRevision, 15); !errors.Is(err, meta.ErrCommitFenced) {
		t.Fatalf("stale leader: %v", err)
	}
	// Deleting the topic removes the stored start with the manifests.
	if _, err := store.DeleteTopic(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if s, _ := store.LogStart(ctx, topic.ID, 0); s != 0 {
		t.Fatalf("log start survived the topic: %d", s)
	}
}
