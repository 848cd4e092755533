package controller

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
)

func topics(ts ...meta.Topic) func(string) (meta.Topic, bool) {
	return func(name string) (meta.Topic, bool) {
		for _, t := range ts {
			if t.Name == name {
				return t, true
			}
		}
		return meta.Topic{}, false
	}
}

func TestPlanLocalPartitionsStayHome(t *testing.T) {
	local := meta.Topic{Name: "l", ID: meta.NewTopicID(), StorageMode: meta.StorageLocal}
	parts := []meta.Partition{
		{Topic: "l", TopicID: local.ID, Partition: 0, Leader: "a", Home: "a", LeaderEpoch: 3},
		{Topic: "l", TopicID: local.ID, Partition: 1, Leader: "b", Home: "b", LeaderEpoch: 0},
		{Topic: "l", TopicID: local.ID, Partition: 2, Leader: "", Home: "c", LeaderEpoch: 5},
	}
	// a died, b alive, c came back.
	ups := Plan(parts, []meta.LogNode{{ID: "b"}, {ID: "c"}}, topics(local))
	if len(ups) != 2 {
		t.Fatalf("updates %+v", ups)
	}
	for _, u := range ups {
		switch u.Old.Partition {
		case 0:
			if u.New.Leader != "" || u.New.Home != "a" || u.New.LeaderEpoch != 4 {
				t.Fatalf("dead home: %+v (must go offline at a new epoch, never move)", u.New)
			}
		case 2:
			if u.New.Leader != "c" || u.New.LeaderEpoch != 6 {
				t.Fatalf("returned home: %+v", u.New)
			}
		default:
			t.Fatalf("unexpected update %+v", u)
		}
	}
	// Nothing to do when every home is live and leading.
	if ups := Plan(parts[1:2], []meta.LogNode{{ID: "b"}}, topics(local)); len(ups) != 0 {
		t.Fatalf("stable cluster planned %+v", ups)
	}
}

func TestPlanSharedPartitionsMoveToLeastLoaded(t *testing.T) {
	shared := meta.Topic{Name: "d", ID: meta.NewTopicID(), StorageMode: meta.StorageDiskless}
	parts := []meta.Partition{
		{Topic: "d", TopicID: shared.ID, Partition: 0, Leader: "x", LeaderEpoch: 1},
		{Topic: "d", TopicID: shared.ID, Partition: 1, Leader: "x", LeaderEpoch: 1},
		{Topic: "d", TopicID: shared.ID, Partition: 2, Leader: "y", LeaderEpoch: 1},
	}
	ups := Plan(parts, []meta.LogNode{{ID: "y"}, {ID: "z"}}, topics(shared))
	got := map[string]int{}
	for _, u := range ups {
		if u.New.LeaderEpoch != 2 {
			t.Fatalf("epoch not bumped: %+v", u.New)
		}
		got[u.New.Leader]++
	}
	// y already leads one, so z takes the first orphan, then they alternate.
	if len(ups) != 2 || got["z"] != 1 || got["y"] != 1 {
		t.Fatalf("moves %v (%+v)", got, ups)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestFailoverFencesAndControllerMoves runs two candidates against a real
// etcd: the elected one fences a dead node's partitions; when it dies too,
// the other takes over and handles the next death.
func TestFailoverFencesAndControllerMoves(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store := meta.NewStore(e.Client, "")
	cache := meta.NewCache(store, quiet())
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()

	sessions := map[string]*concurrency.Session{}
	for _, id := range []string{"n1", "n2", "n3"} {
		s, err := concurrency.NewSession(e.NewClient(t), concurrency.WithTTL(30))
		if err != nil {
			t.Fatal(err)
		}
		sessions[id] = s
		if err := store.RegisterLogNode(ctx, s, meta.LogNode{ID: id, Addr: id + ":1"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(ctx, t, cache, func() bool { return len(cache.LogNodes()) == 3 })
	topic := &meta.Topic{Name: "t", Partitions: 6, StorageMode: meta.StorageLocal}
	if _, err := store.CreateTopic(ctx, topic, cache.LogNodesByLoad()); err != nil {
		t.Fatal(err)
	}

	// n1 and n2 are candidates; n1 campaigns first and wins.
	c1 := New(Config{NodeID: "n1", Store: store, Cache: cache, Session: sessions["n1"], Logger: quiet()})
	c2 := New(Config{NodeID: "n2", Store: store, Cache: cache, Session: sessions["n2"], Logger: quiet()})
	go c1.Run(ctx)
	waitFor(ctx, t, cache, c1.IsLeader)
	go c2.Run(ctx)

	offlineOf := func(node string) bool {
		for _, p := range cache.Partitions("t") {
			if p.Home == node && (p.Online() || p.LeaderEpoch != 1) {
				return false
			}
		}
		return true
	}
	// n3 dies: its partitions go offline at epoch 1.
	sessions["n3"].Close()
	waitFor(ctx, t, cache, func() bool { return offlineOf("n3") })

	// The controller dies with its node; n2 takes over and fences n1's.
	sessions["n1"].Close()
	waitFor(ctx, t, cache, func() bool { return c2.IsLeader() && offlineOf("n1") })

	// n3 returns: its partitions come back to it at epoch 2.
	s3, err := concurrency.NewSession(e.NewClient(t), concurrency.WithTTL(30))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.RegisterLogNode(ctx, s3, meta.LogNode{ID: "n3", Addr: "n3:1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, cache, func() bool {
		for _, p := range cache.Partitions("t") {
			if p.Home == "n3" && (p.Leader != "n3" || p.LeaderEpoch != 2) {
				return false
			}
		}
		return true
	})
}

func waitFor(ctx context.Context, t *testing.T, c *meta.Cache, cond func() bool) {
	t.Helper()
	for {
		ch := c.Changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-time.After(100 * time.Millisecond): // IsLeader is not a cache change
		case <-ctx.Done():
			t.Fatal("condition not reached")
		}
	}
}

// TestPlanElectsFromTheISR covers elections of replicated local
// partitions: a dead leader is replaced by the first live ISR member in
// replica order; with no live ISR member the partition waits offline with
// its ISR kept (KIP-966), unless unclean leader election is enabled; dead
// followers leave the ISR without a new epoch; the preferred replica gets
// the lead back only in a rebalance pass, and only once in sync.
func TestPlanElectsFromTheISR(t *testing.T) {
	clean := meta.Topic{Name: "r", ID: meta.NewTopicID(), StorageMode: meta.StorageLocal}
	unclean := meta.Topic{Name: "u", ID: meta.NewTopicID(), StorageMode: meta.StorageLocal,
		Configs: map[string]string{meta.ConfigUncleanLeaderElection: "true"}}
	rec := func(topic meta.Topic, leader string, isr ...string) meta.Partition {
		return meta.Partition{Topic: topic.Name, TopicID: topic.ID, Leader: leader, LeaderEpoch: 4, Home: "a",
			Replicas: []string{"a", "b", "c"}, ISR: isr}
	}
	live := func(ids ...string) []meta.LogNode {
		var out []meta.LogNode
		for _, id := range ids {
			out = append(out, meta.LogNode{ID: id})
		}
		return out
	}
	// tailOnly marks node id as holding only the tail of partition r/0.
	tailOnly := func(nodes []meta.LogNode, id string) []meta.LogNode {
		for i := range nodes {
			if nodes[i].ID == id {
				nodes[i].TailOnly = []string{meta.PartitionName("r", 0)}
			}
		}
		return nodes
	}
	cases := []struct {
		name      string
		p         meta.Partition
		live      []meta.LogNode
		rebalance bool
		leader    string // "-": no update
		isr       []string
		epoch     int32
	}{
		{"dead leader, ISR member takes over", rec(clean, "a", "a", "b", "c"), live("b", "c"), false, "b", []string{"b", "c"}, 5},
		{"replica order, not ISR order", rec(clean, "a", "a", "c", "b"), live("b", "c"), false, "b", []string{"c", "b"}, 5},
		{"out-of-sync replica never elected", rec(clean, "a", "a"), live("b", "c"), false, "", []string{"a"}, 5},
		{"offline stays offline while the ISR is down", rec(clean, "", "a"), live("b", "c"), false, "-", nil, 0},
		{"the last ISR member returns", rec(clean, "", "a"), live("a", "b"), false, "a", []string{"a"}, 5},
		{"unclean election", rec(unclean, "a", "a"), live("c", "b"), false, "b", []string{"b"}, 5},
		{"dead follower leaves the ISR", rec(clean, "a", "a", "b", "c"), live("a", "b"), false, "a", []string{"a", "b"}, 4},
		{"no rebalance outside a rebalance pass", rec(clean, "b", "b", "a"), live("a", "b", "c"), false, "-", nil, 0},
		{"rebalance to the in-sync preferred replica", rec(clean, "b", "b", "a"), live("a", "b", "c"), true, "a", []string{"b", "a"}, 5},
		{"no rebalance to an out-of-sync preferred replica", rec(clean, "b", "b", "c"), live("a", "b", "c"), true, "-", nil, 0},
		{"no rebalance to a preferred replica without local history", rec(clean, "b", "b", "a"), tailOnly(live("a", "b", "c"), "a"), true, "-", nil, 0},
		{"an ISR member with local history first", rec(clean, "a", "a", "b", "c"), tailOnly(live("b", "c"), "b"), false, "c", []string{"b", "c"}, 5},
		{"without history rather than offline", rec(clean, "a", "a", "b"), tailOnly(live("b", "c"), "b"), false, "b", []string{"b"}, 5},
	}
	for _, tc := range cases {
		ups := plan([]meta.Partition{tc.p}, tc.live, topics(clean, unclean), tc.rebalance)
		if tc.leader == "-" {
			if len(ups) != 0 {
				t.Errorf("%s: unexpected update %+v", tc.name, ups[0].New)
			}
			continue
		}
		if len(ups) != 1 {
			t.Errorf("%s: %d updates", tc.name, len(ups))
			continue
		}
		n := ups[0].New
		if n.Leader != tc.leader || !slices.Equal(n.ISR, tc.isr) || n.LeaderEpoch != tc.epoch {
			t.Errorf("%s: leader %q isr %v epoch %d; want %q %v %d", tc.name, n.Leader, n.ISR, n.LeaderEpoch, tc.leader, tc.isr, tc.epoch)
		}
		// Only a leader from outside the ISR may start without data.
		if wantUnclean := tc.name == "unclean election"; n.UncleanLeader != wantUnclean {
			t.Errorf("%s: UncleanLeader %v, want %v", tc.name, n.UncleanLeader, wantUnclean)
		}
	}
	// A clean election clears the mark of an earlier unclean one.
	was := rec(clean, "a", "a", "b")
	was.UncleanLeader = true
	if ups := plan([]meta.Partition{was}, live("b"), topics(clean, unclean), false); len(ups) != 1 || ups[0].New.Leader != "b" || ups[0].New.UncleanLeader {
		t.Errorf("clean election after an unclean one: %+v", ups)
	}
}
