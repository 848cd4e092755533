package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestClusterHarness is the smoke test of cluster.StartCluster: the default
// cluster (etcd, 3 logsvc, 1 uploader, 2 gateways, each its own OS
// process) registers every node in etcd, spreads a 12-partition topic over
// all three logsvc nodes, takes 1200 records through both gateways and
// gives them back; SIGSTOP/SIGCONT freeze and resume a process; a gateway
// restarted cleanly and one restarted after SIGKILL both serve again on
// their old address, with every record still readable through them.
func TestClusterHarness(t *testing.T) {
	begin := time.Now()
	c := cluster.StartCluster(t, cluster.ClusterOptions{})
	t.Logf("cluster of %d processes serving after %v (binaries built or cached)", len(c.Names()), time.Since(begin).Round(time.Millisecond))

	wantNames := []string{"etcd", "logsvc-1", "logsvc-2", "logsvc-3", "uploader-1", "gateway-1", "gateway-2"}
	if got := c.Names(); !slices.Equal(got, wantNames) {
		t.Fatalf("node names %v, want %v", got, wantNames)
	}
	pids := map[int]string{}
	for _, name := range c.Names() {
		pid := c.Node(name).PID()
		if pid == 0 || pids[pid] != "" {
			t.Fatalf("%s: pid %d (also %q): every node must be its own process", name, pid, pids[pid])
		}
		pids[pid] = name
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	etcd := c.Etcd(t)
	for kind, want := range map[string]int{"logsvc": 3, "gateway": 2, "uploader": 1} {
		if got := registered(ctx, t, etcd, kind); len(got) != want {
			t.Fatalf("%d %s nodes registered in etcd (%v), want %d", len(got), kind, got, want)
		}
	}

	seeds := c.Bootstrap()
	if len(seeds) != 2 || seeds[0] != c.Addr("gateway-1") || seeds[1] != c.Addr("gateway-2") {
		t.Fatalf("bootstrap %v: want the two gateways' addresses", seeds)
	}
	adm := kadm.NewClient(newSeededClient(t, seeds))
	checkBrokers(ctx, t, adm, seeds)

	const topic, partitions, perPartition = "harness", 12, 100
	if resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v %v", err, resp.Err)
	}
	leaders := partitionLeaders(ctx, t, etcd, topic)
	if len(leaders) != partitions {
		t.Fatalf("%d partitions in etcd, want %d", len(leaders), partitions)
	}
	perNode := map[string]int{}
	for _, l := range leaders {
		perNode[l]++
	}
	for _, name := range c.NamesOf("logsvc") {
		if perNode[name] == 0 {
			t.Fatalf("%s leads none of the %d partitions (leaders per node: %v)", name, partitions, perNode)
		}
	}
	t.Logf("partition leaders per node: %v", perNode)

	prod := newSeededClient(t, seeds, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	mk := func(base int) func(i int) *kgo.Record {
		return func(i int) *kgo.Record {
			return &kgo.Record{Partition: int32(i % partitions), Key: []byte(strconv.Itoa(base + i)), Value: []byte(fmt.Sprintf("value-%05d", base+i))}
		}
	}
	acked := produceAll(ctx, t, prod, partitions*perPartition, mk(0))
	if len(acked) != partitions {
		t.Fatalf("records acknowledged in %d partitions, want %d", len(acked), partitions)
	}
	for p, m := range acked {
		for o := int64(0); o < perPartition; o++ {
			if _, ok := m[o]; !ok {
				t.Fatalf("partition %d: no record acknowledged at offset %d (%d acknowledged)", p, o, len(m))
			}
		}
	}
	// Read back through the other gateway than the first seed.
	consumeAndCompare(ctx, t, seeds[1], topic, acked)

	// SIGSTOP freezes a process, SIGCONT resumes it.
	up := c.Node("uploader-1")
	c.Stop("uploader-1")
	waitProcState(t, up.PID(), "T")
	c.Cont("uploader-1")
	waitProcState(t, up.PID(), "S", "R", "D")

	// A clean restart: new process, same address, registered again.
	oldPID := c.Node("gateway-1").PID()
	c.Restart("gateway-1")
	if pid := c.Node("gateway-1").PID(); pid == oldPID || pid == 0 {
		t.Fatalf("gateway-1 pid %d after restart, was %d", pid, oldPID)
	}
	if processAlive(oldPID) {
		t.Fatalf("gateway-1's old process %d still alive after restart", oldPID)
	}
	// A crash and restart: SIGKILL leaves the registration behind; the
	// restarted gateway (same id, same address) takes it over at once.
	oldPID = c.Node("gateway-2").PID()
	c.Kill("gateway-2")
	if !c.Node("gateway-2").Exited() || processAlive(oldPID) {
		t.Fatalf("gateway-2 (pid %d) still running after Kill", oldPID)
	}
	c.Restart("gateway-2")
	if got := registered(ctx, t, etcd, "gateway"); !slices.Equal(got, []string{"gateway-1", "gateway-2"}) {
		t.Fatalf("gateways registered after restarts: %v", got)
	}

	// Each restarted gateway alone bootstraps a client that sees both,
	// and everything produced before and after is readable.
	for i, addr := range seeds {
		checkBrokers(ctx, t, kadm.NewClient(newSeededClient(t, []string{addr})), seeds)
		more := produceAll(ctx, t, newSeededClient(t, []string{addr}, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner())),
			partitions*10, mk((i+1)*100000))
		for p, m := range more {
			for o, r := range m {
				if _, dup := acked[p][o]; dup {
					t.Fatalf("offset %d/%d acknowledged twice", p, o)
				}
				acked[p][o] = r
			}
		}
	}
	consumeAndCompare(ctx, t, seeds[0], topic, acked)
	total := 0
	for _, m := range acked {
		total += len(m)
	}
	t.Logf("%d records produced and read back; whole test %v", total, time.Since(begin).Round(time.Millisecond))
}

func newSeededClient(t testing.TB, seeds []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// checkBrokers asserts the cluster's Metadata lists exactly the gateways at
// addrs, with node ids 1..n in that order.
func checkBrokers(ctx context.Context, t testing.TB, adm *kadm.Client, addrs []string) {
	t.Helper()
	bs, err := adm.ListBrokers(ctx)
	if err != nil {
		t.Fatalf("list brokers: %v", err)
	}
	var got []string
	for _, b := range bs {
		got = append(got, fmt.Sprintf("%d@%s:%d", b.NodeID, b.Host, b.Port))
	}
	slices.Sort(got)
	var want []string
	for i, a := range addrs {
		want = append(want, fmt.Sprintf("%d@%s", i+1, a))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("brokers %v, want %v", got, want)
	}
}

// registered lists the ids registered under nodes/<kind>/ in etcd.
func registered(ctx context.Context, t testing.TB, cli *clientv3.Client, kind string) []string {
	t.Helper()
	prefix := "/streamline/nodes/" + kind + "/"
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatalf("etcd get %s: %v", prefix, err)
	}
	var ids []string
	for _, kv := range resp.Kvs {
		ids = append(ids, strings.TrimPrefix(string(kv.Key), prefix))
	}
	slices.Sort(ids)
	return ids
}

// partitionLeaders reads each partition's leading logsvc node from etcd.
func partitionLeaders(ctx context.Context, t testing.TB, cli *clientv3.Client, topic string) map[string]string {
	t.Helper()
	prefix := "/streamline/partitions/" + topic + "/"
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("etcd get %s: %v", prefix, err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		var p struct {
			Leader string `json:"leader"`
		}
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			t.Fatalf("%s: %v", kv.Key, err)
		}
		out[strings.TrimPrefix(string(kv.Key), prefix)] = p.Leader
	}
	return out
}

// procState is a process's state letter from /proc (R, S, D, T, Z...),
// "" if there is no such process.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// processAlive: the process exists and is not a zombie.
func processAlive(pid int) bool {
	st := procState(pid)
	return st != "" && st != "Z" && st != "X"
}

func waitProcState(t testing.TB, pid int, states ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := procState(pid)
		if slices.Contains(states, st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d in state %q, want one of %v", pid, st, states)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
