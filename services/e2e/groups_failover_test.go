package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestConsumerGroupSurvivesCoordinatorKill SIGKILLs the gateway that
// coordinates a 3-member group mid-stream (separate processes: etcd, 3
// logsvc, 2 gateways). The other gateway takes the group's shard once the
// dead one's lease expires, resumes the group from etcd and the members
// carry on from their committed offsets: nothing is lost, and records
// are processed twice only within the uncommitted window (at most one
// poll per member, as members commit after every poll).
func TestConsumerGroupSurvivesCoordinatorKill(t *testing.T) {
	c := startTestCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	seeds := kgo.SeedBrokers(c.Bootstrap()...)
	const topic, group, pollMax = "failover-groups", "failover-group", 200
	adm := kadm.NewClient(newClient(t, c.Bootstrap()[0], seeds))
	if resp, err := adm.CreateTopic(ctx, 12, 1, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v %v", err, resp.Err)
	}
	prod := startBackgroundProducer(t, c.Bootstrap()[0], topic, seeds)
	got := newSeen()
	var members []*groupMember
	for range 3 {
		members = append(members, runGroupMember(t, c.Bootstrap()[0], group, topic, got, true, seeds, kgo.Balancers(kgo.CooperativeStickyBalancer())))
	}
	waitGroupStable(ctx, t, adm, group, 3)
	got.waitDistinct(ctx, t, 1000)

	coord := coordinatorOf(ctx, t, adm, group)
	victim := fmt.Sprintf("gateway-%d", coord)
	t.Logf("killing %s, the coordinator of %s, after %d records", victim, group, got.distinct())
	c.Kill(victim)
	killedAt := time.Now()

	// The other gateway coordinates the group once the lease expires.
	for coordinatorOf(ctx, t, adm, group) == coord {
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("group coordinator moved to node %d after %v", coordinatorOf(ctx, t, adm, group), time.Since(killedAt).Round(100*time.Millisecond))
	// A fresh admin client: franz-go keeps a cached coordinator until an
	// error code says otherwise, and a dead address only gives dial errors.
	adm = kadm.NewClient(newClient(t, c.Bootstrap()[0], seeds))
	waitGroupStable(ctx, t, adm, group, 3)
	got.waitDistinct(ctx, t, got.distinct()+1000)
	total := prod.stop(ctx, t)
	got.waitDistinct(ctx, t, total)

	dups := got.duplicates()
	if len(dups) > len(members)*pollMax {
		t.Fatalf("%d records processed twice; the uncommitted window is at most %d: %v", len(dups), len(members)*pollMax, dups[:10])
	}
	for _, m := range members {
		if err := m.cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("final commit: %v", err)
		}
	}
	lag, err := adm.Lag(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if l := lag[group]; l.Error() != nil || l.Lag.Total() != 0 {
		t.Fatalf("after the failover: lag %d, err %v; want 0", l.Lag.Total(), l.Error())
	}
	for _, m := range members {
		m.leave()
	}
	t.Logf("%d records, none lost, %d processed twice across the coordinator kill", total, len(dups))
}

// coordinatorOf is the Kafka node id coordinating group now (retrying
// while no gateway holds the group's shard).
func coordinatorOf(ctx context.Context, t testing.TB, adm *kadm.Client, group string) int32 {
	t.Helper()
	for {
		resp := adm.FindGroupCoordinators(ctx, group)
		if r, ok := resp[group]; ok && r.Err == nil {
			return r.NodeID
		}
		if ctx.Err() != nil {
			t.Fatalf("no coordinator for %s: %v", group, resp)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
