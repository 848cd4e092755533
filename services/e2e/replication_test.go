package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	adminv1 "github.com/streamline-dev/streamline/proto/gen/streamline/admin/v1"
	"github.com/streamline-dev/streamline/services/cluster"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

// TestReplicatedTopicOverKafka drives replication through Kafka clients on
// a 3-node process cluster: CreateTopics with the default factor gets 3
// replicas (4 is INVALID_REPLICATION_FACTOR); Metadata shows 3 replicas
// and 3 in sync; with min.insync.replicas=2, acks=all goes on when one
// follower dies and is NOT_ENOUGH_REPLICAS when both have (acks=1 still
// served); a follower whose disk was wiped rebuilds from the leader and
// rejoins the ISR and, the other two nodes killed, alone serves every
// acknowledged record, read back exactly once.
func TestReplicatedTopicOverKafka(t *testing.T) {
	c := cluster.StartCluster(t, cluster.ClusterOptions{
		SessionTTL: clusterTTL,
		ExtraArgs: map[string][]string{
			"gateway": {"--session-ttl", clusterTTL.String()},
			"logsvc":  {"--replica-lag-time-max", "2s"},
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	_, cache := watchMeta(t, c)
	adm := kadm.NewClient(bootstrapClient(t, c))

	const topic = "replicated"
	resp, err := adm.CreateTopic(ctx, 2, -1, map[string]*string{meta.ConfigMinInsyncReplicas: kadm.StringPtr("2")}, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 4, nil, "too-many-replicas"); !errors.Is(err, kerr.InvalidReplicationFactor) {
		t.Fatalf("replication factor 4 on 3 nodes: %v", err)
	}
	isrOf := func(p int32) []string {
		pa, _ := cache.Partition(topic, p)
		return pa.ISR
	}
	await(t, cache, 10*time.Second, "topic visible", func() bool { return len(cache.Partitions(topic)) == 2 })
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range md.Topics[topic].Partitions {
		if len(p.Replicas) != 3 || len(p.ISR) != 3 || len(p.OfflineReplicas) != 0 {
			t.Fatalf("Metadata partition %d: replicas %v isr %v offline %v", p.Partition, p.Replicas, p.ISR, p.OfflineReplicas)
		}
	}

	prod := bootstrapClient(t, c, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	n := 0
	produce := func(count int) map[int32]map[int64]produced {
		first := n
		n += count
		return produceAll(ctx, t, prod, count, func(i int) *kgo.Record {
			return &kgo.Record{Value: []byte(fmt.Sprintf("r%d", first+i)), Partition: 0}
		})
	}
	acked := produce(500)

	// Partition 0's followers: kill one, then the other.
	p0, _ := cache.Partition(topic, 0)
	leader, followers := p0.Leader, slices.Clone(p0.Replicas[1:])
	c.Kill(followers[0])
	await(t, cache, clusterTTL+10*time.Second, "dead follower out of the ISR", func() bool { return !slices.Contains(isrOf(0), followers[0]) })
	mergeAcked(acked, produce(300))
	// The gateways follow etcd through their own caches: poll.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		md, err = adm.Metadata(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		p := md.Topics[topic].Partitions[0]
		if len(p.Replicas) == 3 && len(p.ISR) == 2 && len(p.OfflineReplicas) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Metadata after a follower died: replicas %v isr %v offline %v", p.Replicas, p.ISR, p.OfflineReplicas)
		}
	}
	c.Kill(followers[1])
	await(t, cache, clusterTTL+10*time.Second, "ISR down to the leader", func() bool { return slices.Equal(isrOf(0), []string{leader}) })
	// kgo sends raw produce requests with the client's acks.
	all := bootstrapClient(t, c, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite())
	one := bootstrapClient(t, c, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	// Until the leader has applied the shrunk ISR (its own cache, a few
	// ms behind the test's) the batch is stored and then refused:
	// NOT_ENOUGH_REPLICAS_AFTER_APPEND, never an acknowledgement.
	next := int64(800)
	for {
		err := produceRaw(ctx, t, all, topic)
		if errors.Is(err, kerr.NotEnoughReplicas) {
			break
		}
		if !errors.Is(err, kerr.NotEnoughReplicasAfterAppend) {
			t.Fatalf("acks=all with the leader alone in the ISR: %v", err)
		}
		acked[0][next] = produced{value: []byte("raw"), offset: next} // stored, not acknowledged
		next++
		time.Sleep(50 * time.Millisecond)
	}
	if err := produceRaw(ctx, t, one, topic); err != nil {
		t.Fatalf("acks=1 with the leader alone in the ISR: %v", err)
	}
	acked[0][next] = produced{value: []byte("raw"), offset: next}
	n = int(next) + 1

	// One follower returns with an empty disk: it rebuilds from the
	// leader and rejoins; acks=all works again.
	if err := os.RemoveAll(c.DataDir(followers[0])); err != nil {
		t.Fatal(err)
	}
	c.Restart(followers[0])
	await(t, cache, 30*time.Second, "rebuilt follower back in the ISR", func() bool { return slices.Contains(isrOf(0), followers[0]) })
	mergeAcked(acked, produce(200))
	c.Restart(followers[1])
	await(t, cache, 30*time.Second, "every replica in sync", func() bool { return len(isrOf(0)) == 3 && len(isrOf(1)) == 3 })
	consumeAndCompare(ctx, t, c.Bootstrap()[0], topic, acked)

	// The rebuilt replica alone: kill the other two; it leads both
	// partitions and serves every acknowledged record.
	rebuilt := followers[0]
	for _, name := range c.NamesOf("logsvc") {
		if name != rebuilt {
			c.Kill(name)
		}
	}
	await(t, cache, clusterTTL+10*time.Second, "the rebuilt replica leads", func() bool {
		for _, p := range cache.Partitions(topic) {
			if p.Leader != rebuilt {
				return false
			}
		}
		return true
	})
	consumeAndCompare(ctx, t, c.Bootstrap()[0], topic, acked)
}

func mergeAcked(into, from map[int32]map[int64]produced) {
	for p, m := range from {
		if into[p] == nil {
			into[p] = map[int64]produced{}
		}
		for o, r := range m {
			into[p][o] = r
		}
	}
}

// produceRaw sends one batch of one record ("raw") to partition 0 with the
// client's acks and returns the partition's error (nil: acknowledged).
func produceRaw(ctx context.Context, t *testing.T, cl *kgo.Client, topic string) error {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 10000 // kgo sets the client's acks
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = 0, recbatchtest.Build(recbatchtest.Values(time.Now().UnixMilli(), "raw"))
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	// Partition 0's Kafka leader is a gateway; any gateway forwards.
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	return kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
}

// TestLeaderKillUnderAcksAllLoad SIGKILLs the log-service node leading
// partitions of a replication factor 3 topic (min.insync.replicas=2) while
// an idempotent acks=all producer writes to every partition: each of its
// partitions gets a new leader from the ISR, every partition takes writes
// while the node stays down, and every acknowledged record is read back
// exactly once, at its offset.
func TestLeaderKillUnderAcksAllLoad(t *testing.T) {
	c := cluster.StartCluster(t, cluster.ClusterOptions{
		SessionTTL: clusterTTL,
		ExtraArgs:  map[string][]string{"gateway": {"--session-ttl", clusterTTL.String()}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	_, cache := watchMeta(t, c)
	const topic = "ha"
	adm := kadm.NewClient(bootstrapClient(t, c))
	if _, err := adm.CreateTopic(ctx, 6, 3, map[string]*string{meta.ConfigMinInsyncReplicas: kadm.StringPtr("2")}, topic); err != nil {
		t.Fatal(err)
	}
	await(t, cache, 10*time.Second, "topic visible", func() bool { return len(cache.Partitions(topic)) == 6 })

	prod := bootstrapClient(t, c, kgo.DefaultProduceTopic(topic), kgo.RecordDeliveryTimeout(2*time.Minute),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	type ack struct {
		r   *kgo.Record
		err error
	}
	acks := make(chan ack, 1<<16)
	stop := make(chan struct{})
	sent := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			prod.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("ha-%d", i))}, func(r *kgo.Record, err error) { acks <- ack{r, err} })
			sent++
			time.Sleep(2 * time.Millisecond)
		}
	}()
	acked := map[int32]map[int64]produced{}
	lastAck := map[int32]time.Time{}
	collect := func(until time.Time) {
		for time.Now().Before(until) {
			select {
			case a := <-acks:
				if a.err != nil {
					t.Fatalf("produce: %v", a.err)
				}
				if acked[a.r.Partition] == nil {
					acked[a.r.Partition] = map[int64]produced{}
				}
				if _, dup := acked[a.r.Partition][a.r.Offset]; dup {
					t.Fatalf("two records acknowledged at %d/%d", a.r.Partition, a.r.Offset)
				}
				acked[a.r.Partition][a.r.Offset] = produced{value: a.r.Value, offset: a.r.Offset}
				lastAck[a.r.Partition] = time.Now()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	collect(time.Now().Add(3 * time.Second))

	victim := "logsvc-1"
	led := map[int32]int32{}
	for _, p := range cache.Partitions(topic) {
		if p.Leader == victim {
			led[p.Partition] = p.LeaderEpoch
		}
	}
	if len(led) == 0 {
		t.Fatalf("%s leads no partition of %s", victim, topic)
	}
	killed := time.Now()
	c.Kill(victim)
	took := await(t, cache, clusterTTL+10*time.Second, "new leaders from the ISR", func() bool {
		for _, p := range cache.Partitions(topic) {
			if e, ok := led[p.Partition]; ok && (p.Leader == "" || p.Leader == victim || p.LeaderEpoch <= e) {
				return false
			}
		}
		return true
	})
	t.Logf("%d partitions led by %s had new leaders %v after SIGKILL (lease TTL %v)", len(led), victim, took, clusterTTL)
	collect(time.Now().Add(8 * time.Second))
	for p := range int32(6) {
		if !lastAck[p].After(killed.Add(took)) {
			t.Fatalf("partition %d took no write after the new leaders were elected", p)
		}
	}
	close(stop)
	<-done
	for total := 0; ; {
		total = 0
		for _, m := range acked {
			total += len(m)
		}
		if total == sent {
			break
		}
		collect(time.Now().Add(time.Second))
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records acknowledged", total, sent)
		}
	}
	consumeAndCompare(ctx, t, c.Bootstrap()[0], topic, acked)
}

// TestReassignAndElectWithKadm moves a replication factor 3 partition
// with kadm (AlterPartitionReassignments by the broker ids Metadata
// lists): the new replica catches up before the switch, the removed one
// (the leader) steps down and deletes its copy, ListPartitionReassignments
// shows the move until it completes, and every acknowledged record is
// still there. ElectLeaders then hands the lead to the preferred replica.
func TestReassignAndElectWithKadm(t *testing.T) {
	c := cluster.StartCluster(t, cluster.ClusterOptions{
		LogServices: 4, SessionTTL: clusterTTL,
		ExtraArgs: map[string][]string{"gateway": {"--session-ttl", clusterTTL.String()}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, cache := watchMeta(t, c)
	adm := kadm.NewClient(bootstrapClient(t, c))
	const topic = "moving"
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, topic); err != nil {
		t.Fatal(err)
	}
	await(t, cache, 10*time.Second, "topic visible", func() bool { return len(cache.Partitions(topic)) == 1 })
	prod := bootstrapClient(t, c, kgo.DefaultProduceTopic(topic))
	acked := produceAll(ctx, t, prod, 2000, func(i int) *kgo.Record { return &kgo.Record{Value: []byte(fmt.Sprintf("m%d", i))} })

	before, _ := cache.Partition(topic, 0)
	idOf := func(node string) int32 {
		id, ok := cache.BrokerID(node)
		if !ok {
			t.Fatalf("no broker id for %s", node)
		}
		return id
	}
	var spare string
	for _, n := range c.NamesOf("logsvc") {
		if !before.IsReplica(n) {
			spare = n
		}
	}
	// Replace the leader (the preferred replica) by the spare node.
	target := []int32{idOf(spare), idOf(before.Replicas[1]), idOf(before.Replicas[2])}
	req := kadm.AlterPartitionAssignmentsReq{}
	req.Assign(topic, 0, target)
	resps, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r := resps[topic][0]; r.Err != nil {
		t.Fatalf("reassign: %v %s", r.Err, r.ErrMessage)
	}
	bad := kadm.AlterPartitionAssignmentsReq{}
	bad.Assign(topic, 0, []int32{idOf(spare), 4242})
	if resps, err := adm.AlterPartitionAssignments(ctx, bad); err != nil || !errors.Is(resps[topic][0].Err, kerr.InvalidReplicaAssignment) {
		t.Fatalf("unknown broker id: %v %v", err, resps[topic][0].Err)
	}
	await(t, cache, 60*time.Second, "the reassignment completes", func() bool {
		p, _ := cache.Partition(topic, 0)
		return !p.Reassigning() && slices.Equal(p.Replicas, []string{spare, before.Replicas[1], before.Replicas[2]}) &&
			len(p.ISR) == 3 && p.Leader != before.Leader && p.Leader != ""
	})
	if l, err := adm.ListPartitionReassignments(ctx, nil); err != nil || len(l[topic]) != 0 {
		t.Fatalf("reassignments still listed after completion: %v %v", l, err)
	}
	// The removed replica deletes its copy.
	old, _ := cache.Partition(topic, 0)
	dir := fmt.Sprintf("%s/partitions/%s-0", c.DataDir(before.Leader), old.TopicID)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("removed replica %s still has %s", before.Leader, dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mergeAcked(acked, produceAll(ctx, t, prod, 500, func(i int) *kgo.Record { return &kgo.Record{Value: []byte(fmt.Sprintf("n%d", i))} }))
	consumeAndCompare(ctx, t, c.Bootstrap()[0], topic, acked)

	// The preferred replica is now the spare node: elect it.
	res, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := res[topic][0]; r.Err != nil && !errors.Is(r.Err, kerr.ElectionNotNeeded) {
		t.Fatalf("preferred election: %v %s", r.Err, r.ErrMessage)
	}
	await(t, cache, 10*time.Second, "the preferred replica leads", func() bool {
		p, _ := cache.Partition(topic, 0)
		return p.Leader == spare
	})
	res, err = adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}}})
	if err != nil || !errors.Is(res[topic][0].Err, kerr.ElectionNotNeeded) {
		t.Fatalf("second preferred election: %v %v", err, res[topic][0].Err)
	}
	mergeAcked(acked, produceAll(ctx, t, prod, 200, func(i int) *kgo.Record { return &kgo.Record{Value: []byte(fmt.Sprintf("p%d", i))} }))
	consumeAndCompare(ctx, t, c.Bootstrap()[0], topic, acked)

	// Down to 2 replicas: the admin API reports the factor partition 0
	// has now, and CreatePartitions places the new partition with 2.
	shrink := kadm.AlterPartitionAssignmentsReq{}
	shrink.Assign(topic, 0, []int32{idOf(spare), idOf(before.Replicas[1])})
	if resps, err := adm.AlterPartitionAssignments(ctx, shrink); err != nil || resps[topic][0].Err != nil {
		t.Fatalf("shrink to 2 replicas: %v %v", err, resps[topic][0].Err)
	}
	await(t, cache, 60*time.Second, "the shrink completes", func() bool {
		p, _ := cache.Partition(topic, 0)
		return !p.Reassigning() && len(p.Replicas) == 2
	})
	admin, _ := adminClient(t, c.AdminAddrs()[0])
	if desc, err := admin.DescribeTopic(ctx, &adminv1.DescribeTopicRequest{Name: topic}); err != nil || desc.GetTopic().GetReplicationFactor() != 2 {
		t.Fatalf("DescribeTopic after the shrink: replication factor %d (%v), want 2", desc.GetTopic().GetReplicationFactor(), err)
	}
	if _, err := adm.CreatePartitions(ctx, 1, topic); err != nil {
		t.Fatal(err)
	}
	await(t, cache, 10*time.Second, "partition 1 placed", func() bool { return len(cache.Partitions(topic)) == 2 })
	if p1, _ := cache.Partition(topic, 1); len(p1.Replicas) != 2 {
		t.Fatalf("partition added after the shrink: replicas %v, want 2", p1.Replicas)
	}
}
