package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/streamline-dev/streamline/services/cluster"
	"github.com/streamline-dev/streamline/shared/meta"
)

// clusterTTL is the lease TTL of the test clusters: handoffs must happen
// within it plus a controller pass (the tests allow 5 s more).
const clusterTTL = 3 * time.Second

func startTestCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	return cluster.StartCluster(t, cluster.ClusterOptions{
		SessionTTL: clusterTTL,
		ExtraArgs:  map[string][]string{"gateway": {"--session-ttl", clusterTTL.String()}},
	})
}

// watchMeta returns a metadata cache of the cluster's etcd.
func watchMeta(t *testing.T, c *cluster.Cluster) (*meta.Store, *meta.Cache) {
	t.Helper()
	store := meta.NewStore(c.Etcd(t), "")
	cache := meta.NewCache(store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := cache.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	return store, cache
}

// await polls cond on every metadata change until it holds or d passes.
func await(t *testing.T, cache *meta.Cache, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.After(d)
	for {
		ch := cache.Changed()
		if cond() {
			return time.Since(start)
		}
		select {
		case <-ch:
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}

func createTopic(ctx context.Context, t *testing.T, c *cluster.Cluster, name string, partitions int32) {
	t.Helper()
	adm := kadm.NewClient(bootstrapClient(t, c))
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, name)
	if err != nil || resp.Err != nil {
		t.Fatalf("create %s: %v %v", name, err, resp.Err)
	}
}

// createTopicWhenReady creates a topic, retrying for up to 10 s while
// the cluster catches up: a process restarted just before registers in
// etcd a moment after it reports ready, and until the gateway sees it a
// hybrid or diskless topic is INVALID_CONFIG (no uploader with an object
// store) and a replicated one INVALID_REPLICATION_FACTOR. A retry that
// finds the topic created by an attempt whose answer was lost is done.
func createTopicWhenReady(ctx context.Context, t *testing.T, adm *kadm.Client, partitions int32, rf int16, configs map[string]*string, topic string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		resp, err := adm.CreateTopic(ctx, partitions, rf, configs, topic)
		if err == nil {
			err = resp.Err
		}
		if err == nil || (i > 0 && errors.Is(err, kerr.TopicAlreadyExists)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("create topic %s: %v", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func bootstrapClient(t *testing.T, c *cluster.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Bootstrap()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestClusterSpreadsPartitions: a 12-partition topic over 3 log-service
// nodes puts no more than 5 on any node, and both gateways are brokers that
// share the partitions' "leadership" in Metadata.
func TestClusterSpreadsPartitions(t *testing.T) {
	c := startTestCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, cache := watchMeta(t, c)
	createTopic(ctx, t, c, "spread", 12)
	await(t, cache, 10*time.Second, "12 partitions visible", func() bool { return len(cache.Partitions("spread")) == 12 })
	per := map[string]int{}
	for _, p := range cache.Partitions("spread") {
		per[p.Leader]++
	}
	if len(per) != 3 {
		t.Fatalf("partitions on %d nodes: %v", len(per), per)
	}
	for node, n := range per {
		if n > 5 {
			t.Fatalf("node %s leads %d of 12 partitions (%v)", node, n, per)
		}
	}
	adm := kadm.NewClient(bootstrapClient(t, c))
	md, err := adm.Metadata(ctx, "spread")
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 2 {
		t.Fatalf("brokers %v", md.Brokers)
	}
	leaders := map[int32]int{}
	for _, p := range md.Topics["spread"].Partitions {
		leaders[p.Leader]++
	}
	if len(leaders) != 2 {
		t.Fatalf("Metadata leaders %v: both gateways should lead some partitions", leaders)
	}
}

// TestLogsvcKillFencesAndRestartRecovers SIGKILLs a log-service node: within
// the lease TTL + 5 s each of its partitions has a new leader epoch in etcd
// (offline: local data cannot move); after a restart they come back at a
// newer epoch with every acknowledged record at its offset.
func TestLogsvcKillFencesAndRestartRecovers(t *testing.T) {
	c := startTestCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, cache := watchMeta(t, c)
	const topic = "failover"
	createTopic(ctx, t, c, topic, 6)
	prod := bootstrapClient(t, c, kgo.DefaultProduceTopic(topic))
	acked := produceAll(ctx, t, prod, 3000, func(i int) *kgo.Record {
		return &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("v%d", i))}
	})

	// The test's own cache follows etcd like every process does.
	seen := await(t, cache, 15*time.Second, "topic in the test's cache", func() bool { return len(cache.Partitions(topic)) == 6 })
	t.Logf("the test's metadata cache saw the topic %v after the produce", seen)
	victim := "logsvc-2"
	before := map[int32]int32{}
	for _, p := range cache.Partitions(topic) {
		if p.Home == victim {
			before[p.Partition] = p.LeaderEpoch
		}
	}
	if len(before) == 0 {
		t.Fatalf("%s homes no partition of %s", victim, topic)
	}
	c.Kill(victim)
	took := await(t, cache, clusterTTL+5*time.Second, "dead node's partitions fenced", func() bool {
		for _, p := range cache.Partitions(topic) {
			if e, ok := before[p.Partition]; ok && (p.LeaderEpoch <= e || p.Online()) {
				return false
			}
		}
		return true
	})
	t.Logf("%d partitions of %s fenced %v after SIGKILL (lease TTL %v)", len(before), victim, took, clusterTTL)

	c.Restart(victim)
	await(t, cache, 20*time.Second, "partitions back on their home", func() bool {
		for _, p := range cache.Partitions(topic) {
			if e, ok := before[p.Partition]; ok && (p.Leader != victim || p.LeaderEpoch < e+2) {
				return false
			}
		}
		return true
	})
	consumeAndCompare(ctx, t, c.Bootstrap()[0], topic, acked)
}

// TestGatewayKillDuringProduce SIGKILLs a gateway in the middle of a
// produce load; the client moves to the other gateway and every
// acknowledged record is readable.
func TestGatewayKillDuringProduce(t *testing.T) {
	c := startTestCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic = "gw-kill"
	createTopic(ctx, t, c, topic, 4)
	prod := bootstrapClient(t, c, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Millisecond))
	var (
		mu    sync.Mutex
		acked = map[int32]map[int64]produced{}
		wg    sync.WaitGroup
		fails int
	)
	const n = 6000
	for i := 0; i < n; i++ {
		if i == n/3 {
			c.Kill("gateway-1")
		}
		wg.Add(1)
		prod.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("r%05d", i))}, func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fails++
				return
			}
			if acked[r.Partition] == nil {
				acked[r.Partition] = map[int64]produced{}
			}
			acked[r.Partition][r.Offset] = produced{value: r.Value, offset: r.Offset}
		})
		if i%500 == 0 {
			time.Sleep(50 * time.Millisecond) // spread the load over the kill
		}
	}
	wg.Wait()
	total := 0
	for _, m := range acked {
		total += len(m)
	}
	t.Logf("%d of %d acknowledged after killing gateway-1 (%d failed)", total, n, fails)
	if total != n {
		t.Fatalf("%d records were not acknowledged despite a live gateway", n-total)
	}
	consumeAndCompare(ctx, t, c.Bootstrap()[1], topic, acked)
}

// controllerOf returns the node currently holding the controller election
// (the oldest key of the election prefix).
func controllerOf(ctx context.Context, cli *clientv3.Client, store *meta.Store) string {
	resp, err := cli.Get(ctx, store.Prefix()+"controller", clientv3.WithFirstCreate()...)
	if err != nil || len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// TestControllerFailover kills the node holding the controller election; a
// new controller takes over and still fences a later node death.
func TestControllerFailover(t *testing.T) {
	c := startTestCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	store, cache := watchMeta(t, c)
	cli := c.Etcd(t)
	createTopic(ctx, t, c, "ctl", 6)
	await(t, cache, 10*time.Second, "partitions visible", func() bool { return len(cache.Partitions("ctl")) == 6 })

	first := ""
	await(t, cache, 10*time.Second, "a controller elected", func() bool { first = controllerOf(ctx, cli, store); return first != "" })
	c.Kill(first)
	second := ""
	await(t, cache, clusterTTL+10*time.Second, "a new controller", func() bool {
		second = controllerOf(ctx, cli, store)
		return second != "" && second != first
	})
	t.Logf("controller moved from %s to %s", first, second)

	// Another node dies: the new controller fences it too.
	var victim string
	names := c.NamesOf("logsvc")
	sort.Strings(names)
	for _, n := range names {
		if n != first && n != second {
			victim = n
		}
	}
	epochs := map[int32]int32{}
	for _, p := range cache.Partitions("ctl") {
		if p.Home == victim {
			epochs[p.Partition] = p.LeaderEpoch
		}
	}
	c.Kill(victim)
	await(t, cache, clusterTTL+5*time.Second, "later death handled by the new controller", func() bool {
		for _, p := range cache.Partitions("ctl") {
			if e, ok := epochs[p.Partition]; ok && (p.LeaderEpoch <= e || p.Online()) {
				return false
			}
		}
		return true
	})
}
