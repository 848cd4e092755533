package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/gateway/txns"
	"github.com/streamline-dev/streamline/services/cluster"
)

// TestTransactionCoordinatorKilledAtEachStep SIGKILLs the gateway
// coordinating a transactional id while it ends a commit: before
// PrepareCommit is persisted (the producer's retried EndTxn reaches the
// other gateway, which finds the transaction Ongoing and commits it),
// right after PrepareCommit is persisted (no marker written) and right
// after every marker is written (CompleteCommit not persisted). The other
// gateway takes the id's shard over and completes the commit; whatever the
// producer's EndTransaction answered, a read_committed consumer sees every
// record of the transaction exactly once, and the id goes on to commit a
// second transaction.
func TestTransactionCoordinatorKilledAtEachStep(t *testing.T) {
	for _, step := range []string{txns.FailBeforePrepare, txns.FailAfterPrepare, txns.FailAfterMarkers} {
		t.Run(step, func(t *testing.T) { txnCoordinatorKilledAt(t, step) })
	}
}

func txnCoordinatorKilledAt(t *testing.T, step string) {
	const victim, victimNode, topic, n = "gateway-1", int32(1), "txn-crash", 60
	c := cluster.StartCluster(t, cluster.ClusterOptions{Uploaders: -1,
		ExtraArgs: map[string][]string{"gateway": {"--session-ttl", "3s"}}})
	proc := c.Node(victim)
	proc.Env = []string{"STREAMLINE_FAILPOINT=" + step}
	c.Restart(victim)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	seeds := c.Bootstrap()
	admCl := newSeededClient(t, seeds)
	adm := kadm.NewClient(admCl)
	createTopicWhenReady(ctx, t, adm, 3, 3, nil, topic)
	id := txnIDCoordinatedBy(ctx, t, newSeededClient(t, seeds), victimNode, "crash-"+step)

	prod := newSeededClient(t, seeds, kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic),
		kgo.TransactionTimeout(time.Minute), kgo.RetryTimeout(time.Minute))
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "first-%d", i)}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	began := time.Now()
	endErr := prod.EndTransaction(ctx, kgo.TryCommit)
	if !proc.Exited() {
		t.Fatalf("%s coordinates %s but is still running after EndTransaction (%v): failpoint %s never reached", victim, id, endErr, step)
	}
	if b, _ := os.ReadFile(proc.LogPath()); !strings.Contains(string(b), "failpoint "+step) {
		t.Fatalf("%s exited, but not at failpoint %s", victim, step)
	}
	t.Logf("%s killed at %s; EndTransaction answered %v after %v", victim, step, endErr, time.Since(began).Round(time.Millisecond))

	// Killed before PrepareCommit was persisted, the commit is decided
	// only if the client's EndTxn reached the next coordinator (franz-go
	// retries it there while the shard moves, for a while). If it gave up
	// (a dial error), the outcome is unknown to the client and the
	// transaction stays open: the next producer instance's InitProducerId
	// aborts it. Otherwise the decision (commit) is persisted, and the
	// other gateway completes it.
	undecided := step == txns.FailBeforePrepare && endErr != nil
	first := []string{"first"}
	if !undecided {
		seen := readUntil(ctx, t, seeds[1], topic, values(n, "first"), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		checkCommittedOnly(t, "read_committed consumer after the coordinator's crash", seen, n, "first")
		var last string
		waitFor(ctx, t, func() bool {
			d, err := adm.DescribeTransactions(ctx, id)
			if now := fmt.Sprintf("%v %+v", err, d[id]); now != last {
				last = now
				t.Logf("DescribeTransactions %s after %v: %s", id, time.Since(began).Round(time.Millisecond), now)
			}
			if err != nil {
				// franz-go keeps a coordinator it cannot dial while its
				// metadata still lists the broker (up to the 5-minute
				// metadata max age): refresh it as a long-lived client
				// eventually would.
				admCl.ForceMetadataRefresh()
			}
			return err == nil && d[id].State == "CompleteCommit"
		}, "transaction %s in CompleteCommit on the surviving gateway", id)
		t.Logf("commit completed and read %v after the kill", time.Since(began).Round(time.Millisecond))
	} else {
		first = nil
		t.Logf("the client gave up on EndTxn before the shard moved; the next instance of the producer aborts the transaction")
	}

	// The id keeps working: a new producer instance commits another one.
	prod.Close()
	prod2 := newSeededClient(t, seeds, kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic), kgo.RetryTimeout(time.Minute))
	if err := prod2.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := prod2.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "second-%d", i)}).FirstErr(); err != nil {
			t.Fatalf("second transaction: produce: %v", err)
		}
	}
	if err := prod2.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("second transaction: commit: %v", err)
	}
	t.Logf("second transaction committed %v after the kill", time.Since(began).Round(time.Millisecond))
	seen := readUntil(ctx, t, seeds[1], topic, values(n, append(first, "second")...), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if undecided && seen["first-0"] > 0 {
		first = []string{"first"} // committed after all: then all of it, once
	}
	checkCommittedOnly(t, "read_committed consumer after the second transaction", seen, n, append(first, "second")...)
}

// TestTransactionPartitionLeaderKilled SIGKILLs the log-service node
// leading one partition of an open transaction (replication factor 3), then
// commits: the markers wait for the partition's new leader, the commit
// completes, and a read_committed consumer sees every record once.
func TestTransactionPartitionLeaderKilled(t *testing.T) {
	const topic, n = "txn-leader-crash", 90
	c := cluster.StartCluster(t, cluster.ClusterOptions{Uploaders: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	seeds := c.Bootstrap()
	adm := kadm.NewClient(newSeededClient(t, seeds))
	if resp, err := adm.CreateTopic(ctx, 3, 3, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v %v", err, resp.Err)
	}
	prod := newSeededClient(t, seeds, kgo.TransactionalID("leader-crash"), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RetryTimeout(time.Minute))
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		r := &kgo.Record{Partition: int32(i % 3), Value: fmt.Appendf(nil, "rec-%d", i)}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	var victim string // the leader of one of the partitions
	for _, l := range partitionLeaders(ctx, t, c.Etcd(t), topic) {
		victim = max(victim, l)
	}
	if victim == "" {
		t.Fatalf("no leader of %s in etcd", topic)
	}
	c.Kill(victim)
	began := time.Now()
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit after %s (a partition leader) was killed: %v", victim, err)
	}
	t.Logf("%s (a partition leader) killed with the transaction open; commit took %v", victim, time.Since(began).Round(time.Millisecond))
	seen := readUntil(ctx, t, seeds[0], topic, values(n, "rec"), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	checkCommittedOnly(t, "read_committed consumer", seen, n, "rec")
	c.Restart(victim)
	seen = readUntil(ctx, t, seeds[1], topic, values(n, "rec"), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	checkCommittedOnly(t, "read_committed consumer after the node's restart", seen, n, "rec")
}

// txnIDCoordinatedBy returns a transactional id starting with prefix whose
// coordinator (FindCoordinator, key type 1) is the gateway with Kafka node
// id node, asked until the answer holds twice in a row (shards settle after
// a gateway restarts).
func txnIDCoordinatedBy(ctx context.Context, t *testing.T, cl *kgo.Client, node int32, prefix string) string {
	t.Helper()
	find := func(id string) (int32, error) {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorType, req.CoordinatorKeys = 1, []string{id}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return -1, err
		}
		if len(resp.Coordinators) != 1 || resp.Coordinators[0].ErrorCode != 0 {
			return -1, errors.New("no coordinator yet")
		}
		return resp.Coordinators[0].NodeID, nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		id := fmt.Sprintf("%s-%d", prefix, i%64)
		if got, err := find(id); err == nil && got == node {
			time.Sleep(200 * time.Millisecond)
			if again, err := find(id); err == nil && again == node {
				return id
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no transactional id %s-* coordinated by node %d within 30 s", prefix, node)
	return ""
}
