package meta_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestGroupShardGuardFencesDeposedCoordinator: once a gateway's lease is
// gone and another gateway claimed the shard, every write with the old
// guard is refused, and the new owner's writes land.
func TestGroupShardGuardFencesDeposedCoordinator(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := meta.NewStore(e.Client, "/test/")
	cache := meta.NewCache(store, nil)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()

	const group = "orders/processor a" // slashes and spaces must survive the key escaping
	shard := meta.GroupShard(group)
	leaseA, err := e.Client.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	guardA, ok, err := store.ClaimGroupShard(ctx, leaseA.ID, shard, "gw-a")
	if err != nil || !ok {
		t.Fatalf("claim A: ok=%v err=%v", ok, err)
	}
	if _, ok, _ := store.ClaimGroupShard(ctx, leaseA.ID, shard, "gw-b"); ok {
		t.Fatal("a held shard was claimed twice")
	}
	tp := meta.TopicPartition{Topic: "orders", Partition: 3}
	gm := &meta.GroupMeta{Group: group, ProtocolType: "consumer", Generation: 4, Stable: true,
		Members: []meta.GroupMember{{ID: "m1", ClientID: "c", SessionTimeoutMs: 10000, Protocols: []meta.GroupProtocol{{Name: "range", Metadata: []byte{1, 2}}}, Assignment: []byte{3}}}}
	if err := store.CommitGroupOffsets(ctx, guardA, group, gm, map[meta.TopicPartition]meta.GroupOffset{tp: {Offset: 10, LeaderEpoch: 2}}); err != nil {
		t.Fatal(err)
	}
	waitCache(ctx, t, cache, func() bool { return cache.GroupShardOwner(shard) == "gw-a" })

	// A's lease expires (here: revoked); B claims; A's writes now fail.
	if _, err := e.Client.Revoke(ctx, leaseA.ID); err != nil {
		t.Fatal(err)
	}
	leaseB, err := e.Client.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	guardB, ok, err := store.ClaimGroupShard(ctx, leaseB.ID, shard, "gw-b")
	if err != nil || !ok {
		t.Fatalf("claim B: ok=%v err=%v", ok, err)
	}
	for name, write := range map[string]func(meta.ShardGuard) error{
		"commit": func(g meta.ShardGuard) error {
			return store.CommitGroupOffsets(ctx, g, group, nil, map[meta.TopicPartition]meta.GroupOffset{tp: {Offset: 99}})
		},
		"meta": func(g meta.ShardGuard) error {
			return store.SaveGroupMeta(ctx, g, &meta.GroupMeta{Group: group, Generation: 99})
		},
		"delete": func(g meta.ShardGuard) error { return store.DeleteGroup(ctx, g, group) },
		"offsets": func(g meta.ShardGuard) error {
			return store.DeleteGroupOffsets(ctx, g, group, []meta.TopicPartition{tp})
		},
	} {
		if err := write(guardA); !errors.Is(err, meta.ErrNotCoordinator) {
			t.Fatalf("%s with the deposed guard: %v, want ErrNotCoordinator", name, err)
		}
	}
	gotMeta, offsets, err := store.LoadGroup(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if gotMeta == nil || gotMeta.Generation != 4 || len(gotMeta.Members) != 1 || string(gotMeta.Members[0].Assignment) != "\x03" {
		t.Fatalf("loaded meta %+v", gotMeta)
	}
	if o := offsets[tp]; o.Offset != 10 || o.LeaderEpoch != 2 || len(offsets) != 1 {
		t.Fatalf("loaded offsets %+v", offsets)
	}
	waitCache(ctx, t, cache, func() bool { return cache.GroupShardOwner(shard) == "gw-b" })

	// The new owner writes; many partitions span several transactions.
	many := map[meta.TopicPartition]meta.GroupOffset{}
	for p := range int32(250) {
		many[meta.TopicPartition{Topic: "big", Partition: p}] = meta.GroupOffset{Offset: int64(p)}
	}
	if err := store.CommitGroupOffsets(ctx, guardB, group, nil, many); err != nil {
		t.Fatal(err)
	}
	if _, offsets, _ = store.LoadGroup(ctx, group); len(offsets) != 251 || offsets[meta.TopicPartition{Topic: "big", Partition: 249}].Offset != 249 {
		t.Fatalf("after a 250-partition commit: %d offsets", len(offsets))
	}
	listed, err := store.ListGroupMetas(ctx, map[int]bool{shard: true})
	if err != nil || len(listed) != 1 || listed[0].Group != group {
		t.Fatalf("ListGroupMetas(own shard) = %+v, %v", listed, err)
	}
	if listed, _ := store.ListGroupMetas(ctx, map[int]bool{(shard + 1) % meta.GroupShards: true}); len(listed) != 0 {
		t.Fatalf("ListGroupMetas(other shard) = %+v", listed)
	}
	if err := store.DeleteGroup(ctx, guardB, group); err != nil {
		t.Fatal(err)
	}
	if gm, offsets, _ := store.LoadGroup(ctx, group); gm != nil || len(offsets) != 0 {
		t.Fatalf("after delete: meta %+v, %d offsets", gm, len(offsets))
	}
	if err := store.ReleaseGroupShard(ctx, guardB); err != nil {
		t.Fatal(err)
	}
	waitCache(ctx, t, cache, func() bool { return cache.GroupShardOwner(shard) == "" })
	if resp, _ := e.Client.Get(ctx, "/test/groupshards/", clientv3.WithPrefix(), clientv3.WithCountOnly()); resp.Count != 0 {
		t.Fatalf("%d shard keys left after release", resp.Count)
	}
}

func waitCache(ctx context.Context, t *testing.T, c *meta.Cache, cond func() bool) {
	t.Helper()
	for {
		ch := c.Changed() // before cond: a change in between still wakes us
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal("cache never reached the expected state")
		}
	}
}

// Stale hides an offset only when the cache is known to be at least as
// new as the commit: a lagging cache that still shows an older topic of
// the same name must not hide a commit to the newer one.
func TestGroupOffsetStale(t *testing.T) {
	idA, idB := meta.NewTopicID(), meta.NewTopicID()
	o := meta.GroupOffset{Offset: 5, TopicID: idB, TopicRevision: 100}
	cases := []struct {
		name    string
		rev     int64
		current meta.Topic
		ok      bool
		want    bool
	}{
		{"same topic", 120, meta.Topic{ID: idB}, true, false},
		{"re-created", 120, meta.Topic{ID: idA}, true, true},
		{"deleted", 120, meta.Topic{}, false, true},
		{"cache lags, still shows the older topic", 90, meta.Topic{ID: idA}, true, false},
		{"cache lags, topic not seen yet", 90, meta.Topic{}, false, false},
	}
	for _, c := range cases {
		if got := o.Stale(c.rev, c.current, c.ok); got != c.want {
			t.Errorf("%s: Stale = %v, want %v", c.name, got, c.want)
		}
	}
	legacy := meta.GroupOffset{Offset: 5} // committed before ids were kept
	if legacy.Stale(120, meta.Topic{ID: idA}, true) || legacy.Stale(120, meta.Topic{}, false) {
		t.Error("an offset without a topic id is never stale")
	}
}
