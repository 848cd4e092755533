package partition

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

// TestWaitAllChecksLeadershipAtOnce: the leadership checks of one
// request's partitions run at the same time (so they can share one etcd
// read), not one after another. Each check here returns only once all
// three are running; checks in turn would time out.
func TestWaitAllChecksLeadershipAtOnce(t *testing.T) {
	const n = 3
	var (
		mu      sync.Mutex
		running int
		all     = make(chan struct{})
	)
	fence := func(ctx context.Context) error {
		mu.Lock()
		running++
		if running == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
			return nil
		case <-time.After(5 * time.Second):
			return errors.New("the other partitions' checks did not start")
		}
	}
	var pending []*Pending
	for range n {
		f := newFixture(t)
		f.p.cfg.Fence = fence
		pending = append(pending, f.p.SubmitAcks(context.Background(), recbatchtest.Build(recbatchtest.Values(time.Now().UnixMilli(), "a")), AcksLeader))
	}
	pending = append(pending, nil) // a partition answered at submit
	res := WaitAll(context.Background(), pending)
	if len(res) != n+1 {
		t.Fatalf("%d results for %d pending", len(res), n+1)
	}
	for i, r := range res[:n] {
		if r.Err != nil {
			t.Fatalf("partition %d: %v %s", i, r.Err, r.Message)
		}
	}
}

// TestAcksLeaderIsFenced: with acks=1 too, a batch durable on a node that
// lost the partition is answered NOT_LEADER_OR_FOLLOWER, not acknowledged.
func TestAcksLeaderIsFenced(t *testing.T) {
	for _, acks := range []int32{AcksLeader, AcksAll} {
		f := newFixture(t)
		f.p.cfg.Fence = func(context.Context) error { return errors.New("lease lost") }
		r := f.p.SubmitAcks(context.Background(), recbatchtest.Build(recbatchtest.Values(time.Now().UnixMilli(), "a")), acks).Wait(context.Background())
		if r.Err != kerr.NotLeaderForPartition {
			t.Fatalf("acks=%d: %v %s, want NOT_LEADER_OR_FOLLOWER", acks, r.Err, r.Message)
		}
	}
}
