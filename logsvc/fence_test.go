package logsvc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

// TestNoAckAfterLeaseLoss takes away the node's etcd lease behind its back
// (what happens to a process paused past its TTL) and checks that it
// refuses to acknowledge the next write — the leadership check before the
// ack finds the registration gone — and then rejoins by itself.
func TestNoAckAfterLeaseLoss(t *testing.T) {
	e := metatest.Start(t)
	n := startNode(t, e, t.TempDir())
	store := meta.NewStore(e.Client, "")
	topic := &meta.Topic{Name: "z", Partitions: 1}
	if _, err := store.CreateTopic(context.Background(), topic, []meta.LogNode{{ID: n.ID(), Addr: n.Addr()}}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, n.Addr())
	if r := produceUntilLed(t, c, *topic, recbatchtest.Build(recbatchtest.Values(1, "before"))); r.ErrorCode != 0 {
		t.Fatalf("produce while leading: %+v", r)
	}
	oldLease := n.fence.Load().lease
	if _, err := e.Client.Revoke(context.Background(), oldLease); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Produce(context.Background(), &logv1.ProduceRequest{Acks: -1, TimeoutMs: 10000, Partitions: []*logv1.ProducePartition{
		{Topic: "z", TopicId: topic.ID[:], Partition: 0, Records: recbatchtest.Build(recbatchtest.Values(2, "after"))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Partitions[0]
	if r.ErrorCode != int32(kerr.NotLeaderForPartition.Code) || !strings.Contains(r.ErrorMessage, "lease") {
		t.Fatalf("write acknowledged or wrong error after the lease was lost: %+v", r)
	}
	// The node rejoins under a new lease by itself and leads again.
	deadline := time.Now().Add(20 * time.Second)
	for {
		f := n.fence.Load()
		if f != nil && f.lease != oldLease {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node did not rejoin under a new lease")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := produceUntilLed(t, c, *topic, recbatchtest.Build(recbatchtest.Values(3, "rejoined"))); r.ErrorCode != 0 {
		t.Fatalf("produce after rejoining: %+v", r)
	}
}

// TestNoAckAfterEpochMoved bumps the partition's leader epoch in etcd (as a
// controller does) and checks the node does not acknowledge a write under
// the old epoch, then leads again at the new one.
func TestNoAckAfterEpochMoved(t *testing.T) {
	e := metatest.Start(t)
	n := startNode(t, e, t.TempDir())
	store := meta.NewStore(e.Client, "")
	topic := &meta.Topic{Name: "m", Partitions: 1}
	if _, err := store.CreateTopic(context.Background(), topic, []meta.LogNode{{ID: n.ID(), Addr: n.Addr()}}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, n.Addr())
	produceUntilLed(t, c, *topic, recbatchtest.Build(recbatchtest.Values(1, "a")))
	p, kerrCode := n.parts.Lookup("m", nil, 0)
	if kerrCode != nil {
		t.Fatal(kerrCode)
	}
	old, _ := n.cache.Partition("m", 0)
	moved := old
	moved.Leader, moved.LeaderEpoch = "someone-else", old.LeaderEpoch+1
	if applied, err := store.UpdatePartitions(context.Background(), []meta.PartitionUpdate{{Old: old, New: moved}}); err != nil || applied != 1 {
		t.Fatalf("bump: %d %v", applied, err)
	}
	// Produce straight into the partition object the node held before it
	// noticed: the ack must still be refused.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := p.Produce(ctx, recbatchtest.Build(recbatchtest.Values(2, "stale")))
	if res.Err != kerr.NotLeaderForPartition || !(strings.Contains(res.Message, "epoch") || strings.Contains(res.Message, "no longer led")) {
		t.Fatalf("stale-epoch write: %+v", res)
	}
}

// TestFencerAfterMembershipEnded: checks in flight or made after the
// fencer's membership ended (lease lost, node rejoining or stopping) are
// refused at once, saying the lease ended, not with a bare "context
// canceled" or by waiting for the request's timeout.
func TestFencerAfterMembershipEnded(t *testing.T) {
	e := metatest.Start(t)
	f := newFencer(e.Client, "/fencer-test/node", 0)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { defer close(runDone); f.run(ctx) }()
	if _, err := f.check(context.Background()); err == nil || !strings.Contains(err.Error(), "registration is gone") {
		t.Fatalf("check without a registration = %v, want its registration gone", err)
	}
	cancel()
	<-runDone
	for i := range 3 {
		start := time.Now()
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := f.check(cctx)
		ccancel()
		if !errors.Is(err, ErrFenced) || !strings.Contains(err.Error(), "lease ended") {
			t.Fatalf("check %d after the membership ended = %v, want ErrFenced saying the lease ended", i, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("check took %v", d)
		}
	}
}
