package meta_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
)

func nodesOn(racks ...string) []meta.LogNode {
	out := make([]meta.LogNode, len(racks))
	for i, r := range racks {
		out[i] = meta.LogNode{ID: fmt.Sprintf("n%02d", i), Rack: r}
	}
	return out
}

// check asserts the invariants of every placement: rf distinct nodes per
// partition, on min(rf, racks) distinct racks.
func check(t *testing.T, nodes []meta.LogNode, got [][]string, partitions int32, rf int) {
	t.Helper()
	rackOf := map[string]string{}
	racks := map[string]bool{}
	for _, n := range nodes {
		rackOf[n.ID], racks[n.Rack] = n.Rack, true
	}
	if int32(len(got)) != partitions {
		t.Fatalf("%d partitions placed, want %d", len(got), partitions)
	}
	for p, rs := range got {
		seen, seenRacks := map[string]bool{}, map[string]bool{}
		for _, r := range rs {
			if _, ok := rackOf[r]; !ok || seen[r] {
				t.Fatalf("partition %d: replicas %v: unknown or repeated node %s", p, rs, r)
			}
			seen[r], seenRacks[rackOf[r]] = true, true
		}
		if len(rs) != rf || len(seenRacks) != min(rf, len(racks)) {
			t.Fatalf("partition %d: replicas %v on %d racks, want %d replicas on %d racks", p, rs, len(seenRacks), rf, min(rf, len(racks)))
		}
	}
}

func TestAssignReplicasSpreadsLeadersAndReplicas(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes []meta.LogNode
		rf    int
	}{
		{"no racks", nodesOn("", "", "", "", "", ""), 3},
		{"three racks of two", nodesOn("a", "a", "b", "b", "c", "c"), 3},
		{"two racks of three", nodesOn("a", "a", "a", "b", "b", "b"), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := meta.AssignReplicas(tc.nodes, 12, tc.rf, 0)
			if err != nil {
				t.Fatal(err)
			}
			check(t, tc.nodes, got, 12, tc.rf)
			leaders, replicas := map[string]int{}, map[string]int{}
			for _, rs := range got {
				leaders[rs[0]]++
				for _, r := range rs {
					replicas[r]++
				}
			}
			for _, n := range tc.nodes { // 12 partitions over 6 nodes
				if leaders[n.ID] != 2 || replicas[n.ID] != 2*tc.rf {
					t.Fatalf("node %s leads %d and holds %d replicas; want 2 and %d: %v", n.ID, leaders[n.ID], replicas[n.ID], 2*tc.rf, got)
				}
			}
		})
	}
}

func TestAssignReplicasUnevenRacks(t *testing.T) {
	nodes := nodesOn("a", "a", "a", "b")
	got, err := meta.AssignReplicas(nodes, 8, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	check(t, nodes, got, 8, 2) // every partition has a replica on b
}

func TestAssignReplicasRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		n := 1 + rng.IntN(9)
		racks := make([]string, n)
		nr := 1 + rng.IntN(4)
		for i := range racks {
			racks[i] = fmt.Sprint(rng.IntN(nr))
		}
		nodes := nodesOn(racks...)
		rf := 1 + rng.IntN(n)
		parts := int32(rng.IntN(40))
		got, err := meta.AssignReplicas(nodes, parts, rf, rng.IntN(100))
		if err != nil {
			t.Fatalf("%v rf %d: %v", racks, rf, err)
		}
		check(t, nodes, got, parts, rf)
	}
}

func TestAssignReplicasRefusesWhatCannotBePlaced(t *testing.T) {
	if _, err := meta.AssignReplicas(nodesOn("a", "b"), 3, 3, 0); !errors.Is(err, meta.ErrReplicationFactor) {
		t.Fatalf("rf 3 on 2 nodes: %v", err)
	}
	if _, err := meta.AssignReplicas(nil, 3, 1, 0); !errors.Is(err, meta.ErrNoLogNodes) {
		t.Fatalf("no nodes: %v", err)
	}
	if _, err := meta.AssignReplicas(nodesOn("a"), 3, 0, 0); err == nil {
		t.Fatal("rf 0 accepted")
	}
}

// TestCreateTopicPlacesReplicas checks what CreateTopic and AddPartitions
// store for a replicated local topic: rf distinct replicas, all in sync,
// the preferred one leading and as home; diskless partitions keep one
// logical replica; too few nodes is ErrReplicationFactor and writes
// nothing.
func TestCreateTopicPlacesReplicas(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := meta.NewStore(e.Client, "/rf/")
	cache := meta.NewCache(store, nil)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	list := func(name string, rev int64, err error) []meta.Partition {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if err := cache.WaitRevision(ctx, rev); err != nil {
			t.Fatal(err)
		}
		return cache.Partitions(name)
	}
	nodes := nodesOn("x", "y", "z", "x")
	top := &meta.Topic{Name: "rf3", Partitions: 6, ReplicationFactor: 3, StorageMode: meta.StorageLocal}
	if _, err := store.CreateTopic(ctx, top, nodes); err != nil {
		t.Fatal(err)
	}
	rev, err := store.AddPartitions(ctx, "rf3", 8, nodes)
	parts := list("rf3", rev, err)
	if len(parts) != 8 {
		t.Fatalf("%d partitions", len(parts))
	}
	var placed [][]string
	leaders := map[string]int{}
	for _, p := range parts {
		placed = append(placed, p.Replicas)
		if p.Leader != p.Replicas[0] || p.Home != p.Replicas[0] || !slices.Equal(p.ISR, p.Replicas) || p.MayHaveLocalData() {
			t.Fatalf("partition %d: %+v", p.Partition, p)
		}
		leaders[p.Leader]++
	}
	check(t, nodes, placed, 8, 3)
	if len(leaders) != 4 {
		t.Fatalf("preferred leaders on %d of 4 nodes: %v", len(leaders), leaders)
	}

	d := &meta.Topic{Name: "dl", Partitions: 2, ReplicationFactor: 1, StorageMode: meta.StorageDiskless}
	rev, err = store.CreateTopic(ctx, d, nodes)
	dparts := list("dl", rev, err)
	for _, p := range dparts {
		if len(p.Replicas) != 0 || !slices.Equal(p.ReplicaSet(), []string{p.Leader}) || !p.InISR(p.Leader) {
			t.Fatalf("diskless partition %+v", p)
		}
	}

	big := &meta.Topic{Name: "rf5", Partitions: 1, ReplicationFactor: 5, StorageMode: meta.StorageLocal}
	if _, err := store.CreateTopic(ctx, big, nodes); !errors.Is(err, meta.ErrReplicationFactor) {
		t.Fatalf("rf 5 on 4 nodes: %v", err)
	}
	if _, err := store.GetTopic(ctx, "rf5"); !errors.Is(err, meta.ErrTopicNotFound) {
		t.Fatalf("refused topic was stored: %v", err)
	}

	// A reassignment took partition 0 from 3 replicas to 2 (one being
	// removed still counts until it is gone): new partitions get 2, and
	// the topic record says so.
	p0 := parts[0]
	moved := p0
	moved.Replicas, moved.ISR = append(slices.Clone(p0.Replicas[:2]), p0.Replicas[2]), slices.Clone(p0.Replicas)
	moved.RemovingReplicas = []string{p0.Replicas[2]}
	if moved.ReplicationFactor() != 2 {
		t.Fatalf("replication factor of %+v: %d, want 2", moved, moved.ReplicationFactor())
	}
	if n, err := store.UpdatePartitions(ctx, []meta.PartitionUpdate{{Old: p0, New: moved}}); err != nil || n != 1 {
		t.Fatalf("reassign partition 0: %d %v", n, err)
	}
	rev, err = store.AddPartitions(ctx, "rf3", 10, nodes)
	parts = list("rf3", rev, err)
	for _, p := range parts[8:] {
		if len(p.Replicas) != 2 {
			t.Fatalf("partition %d added after the reassignment: replicas %v, want 2", p.Partition, p.Replicas)
		}
	}
	if got, err := store.GetTopic(ctx, "rf3"); err != nil || got.ReplicationFactor != 2 {
		t.Fatalf("topic record after adding partitions: %+v %v", got, err)
	}
}
