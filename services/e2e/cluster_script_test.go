package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// clusterNodes are the nodes deployments/local/cluster.sh starts.
var clusterNodes = []string{"etcd", "logsvc-1", "logsvc-2", "logsvc-3", "uploader-1", "gateway-1", "gateway-2"}

// TestClusterScript drives deployments/local/cluster.sh as a person would:
// `up` into a temp dir, then a franz-go client on the BOOTSTRAP list of
// cluster.env produces and consumes; `restart DIR logsvc-2` gives that
// node a new PID (updated in cluster.env) and its partitions stay readable
// and writable; `down` leaves none of the processes alive. `down` also runs
// at cleanup if the test fails half-way.
func TestClusterScript(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("cluster.sh picks ports with python3, which is not installed")
	}
	script, err := filepath.Abs("../../deployments/local/cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	begin := time.Now()
	downed := false
	t.Cleanup(func() {
		if !downed {
			out, err := runScript(t, 2*time.Minute, script, "down", dir)
			t.Logf("cleanup: cluster.sh down: %v\n%s", err, out)
		}
	})
	out, err := runScript(t, 5*time.Minute, script, "up", dir)
	if err != nil {
		t.Fatalf("cluster.sh up: %v\n%s", err, out)
	}
	t.Logf("cluster.sh up (build included) took %v", time.Since(begin).Round(time.Millisecond))
	env := clusterEnv(t, dir)
	pids := map[string]int{}
	for _, n := range clusterNodes {
		pid, err := strconv.Atoi(env[pidVar(n)])
		if err != nil || !processAlive(pid) {
			t.Fatalf("%s=%q in cluster.env: not a live process", pidVar(n), env[pidVar(n)])
		}
		pids[n] = pid
	}
	if out, err := runScript(t, time.Minute, script, "status", dir); err != nil || strings.Count(out, " running ") != len(clusterNodes) {
		t.Fatalf("cluster.sh status (want every node running, exit 0): %v\n%s", err, out)
	}
	checkNodesServeMetrics(t, env)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	seeds := strings.Split(env["BOOTSTRAP"], ",")
	if len(seeds) != 2 {
		t.Fatalf("BOOTSTRAP=%q: want the two gateways", env["BOOTSTRAP"])
	}
	adm := kadm.NewClient(newSeededClient(t, seeds))
	checkBrokers(ctx, t, adm, seeds)
	const topic, partitions = "script", 6
	if resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v %v", err, resp.Err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(env["ETCD_ENDPOINTS"], ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client on ETCD_ENDPOINTS=%q: %v", env["ETCD_ENDPOINTS"], err)
	}
	defer cli.Close()
	onRestarted := 0
	for _, l := range partitionLeaders(ctx, t, cli, topic) {
		if l == "logsvc-2" {
			onRestarted++
		}
	}
	if onRestarted == 0 {
		t.Fatalf("logsvc-2 leads none of the %d partitions; the restart would prove nothing", partitions)
	}

	mk := func(base int) func(i int) *kgo.Record {
		return func(i int) *kgo.Record {
			return &kgo.Record{Partition: int32(i % partitions), Key: []byte(strconv.Itoa(base + i)), Value: []byte(fmt.Sprintf("script-%06d", base+i))}
		}
	}
	prod := newSeededClient(t, seeds, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	acked := produceAll(ctx, t, prod, 600, mk(0))
	consumeAndCompare(ctx, t, seeds[0], topic, acked)
	// The gateways auto-create topics (cluster.sh turns it on).
	auto := produceAll(ctx, t, newSeededClient(t, seeds, kgo.DefaultProduceTopic("auto-created"), kgo.AllowAutoTopicCreation()), 10, mk(0))
	consumeAndCompare(ctx, t, seeds[1], "auto-created", auto)

	// The log-service nodes and the uploader share an object store (a
	// directory under DIR by default), so diskless topics work here too.
	if want := "file://" + dir + "/objects"; env["OBJECT_STORE"] != want {
		t.Fatalf("OBJECT_STORE=%q in cluster.env, want %q", env["OBJECT_STORE"], want)
	}
	const dl = "script-diskless"
	if resp, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"storage.mode": kadm.StringPtr("diskless")}, dl); err != nil || resp.Err != nil {
		t.Fatalf("create diskless topic: %v %v", err, resp.Err)
	}
	dlAcked := produceAll(ctx, t, newSeededClient(t, seeds, kgo.DefaultProduceTopic(dl), kgo.RecordPartitioner(kgo.ManualPartitioner())), 300,
		func(i int) *kgo.Record {
			return &kgo.Record{Partition: int32(i % 3), Value: []byte(fmt.Sprintf("diskless-%06d", i))}
		})
	consumeAndCompare(ctx, t, seeds[1], dl, dlAcked)
	if objs, err := filepath.Glob(filepath.Join(dir, "objects", "*")); err != nil || len(objs) == 0 {
		t.Fatalf("no objects under %s/objects after producing to a diskless topic (%v)", dir, err)
	}
	// And hybrid topics: replicated local tails, rolled segments uploaded
	// (16 KiB segments, 16 KiB kept locally), read back from offset 0.
	const hy = "script-hybrid"
	objectsBefore := dirBytes(t, filepath.Join(dir, "objects"), "")
	if resp, err := adm.CreateTopic(ctx, 3, 2, map[string]*string{"storage.mode": kadm.StringPtr("hybrid"),
		"segment.bytes": kadm.StringPtr("16384"), "local.retention.bytes": kadm.StringPtr("16384")}, hy); err != nil || resp.Err != nil {
		t.Fatalf("create hybrid topic: %v %v", err, resp.Err)
	}
	hyAcked := produceAll(ctx, t, newSeededClient(t, seeds, kgo.DefaultProduceTopic(hy), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(2048)), 900, // small batches: segments roll
		func(i int) *kgo.Record {
			return &kgo.Record{Partition: int32(i % 3), Value: []byte(fmt.Sprintf("hybrid-%06d-%0200d", i, 0))}
		})
	waitFor(ctx, t, func() bool { return dirBytes(t, filepath.Join(dir, "objects"), "") >= objectsBefore+100<<10 },
		"the hybrid topic's rolled segments in %s/objects", dir)
	consumeAndCompare(ctx, t, seeds[1], hy, hyAcked)

	// Transactions: whichever gateway coordinates the id, a committed
	// transaction is read by a read_committed consumer of the other
	// gateway, an aborted one is not.
	const tx = "script-txn"
	if resp, err := adm.CreateTopic(ctx, 3, 2, nil, tx); err != nil || resp.Err != nil {
		t.Fatalf("create transactional topic: %v %v", err, resp.Err)
	}
	txProd := newSeededClient(t, seeds, kgo.DefaultProduceTopic(tx), kgo.TransactionalID("script-txn"))
	for _, name := range []string{"script-abort", "script-commit"} {
		if err := txProd.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 30 {
			if err := txProd.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%s-%d", name, i)}).FirstErr(); err != nil {
				t.Fatalf("transactional produce: %v", err)
			}
		}
		if err := txProd.EndTransaction(ctx, kgo.TransactionEndTry(name == "script-commit")); err != nil {
			t.Fatalf("end %s: %v", name, err)
		}
	}
	checkCommittedOnly(t, "read_committed consumer", readUntil(ctx, t, seeds[1], tx, values(30, "script-commit"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted())), 30, "script-commit")

	begin = time.Now()
	if out, err := runScript(t, 2*time.Minute, script, "restart", dir, "logsvc-2"); err != nil {
		t.Fatalf("cluster.sh restart logsvc-2: %v\n%s", err, out)
	}
	t.Logf("cluster.sh restart logsvc-2 took %v", time.Since(begin).Round(time.Millisecond))
	env = clusterEnv(t, dir)
	for _, n := range clusterNodes {
		pid, _ := strconv.Atoi(env[pidVar(n)])
		switch {
		case n == "logsvc-2" && (pid == pids[n] || !processAlive(pid)):
			t.Fatalf("after restart %s=%q (was %d): want a new live process", pidVar(n), env[pidVar(n)], pids[n])
		case n == "logsvc-2" && processAlive(pids[n]):
			t.Fatalf("logsvc-2's old process %d still alive after restart", pids[n])
		case n != "logsvc-2" && pid != pids[n]:
			t.Fatalf("restarting logsvc-2 changed %s from %d to %q", pidVar(n), pids[n], env[pidVar(n)])
		}
		pids[n] = pid
	}
	// Everything is still there, including logsvc-2's partitions, and the
	// restarted node takes writes again.
	consumeAndCompare(ctx, t, seeds[1], topic, acked)
	consumeAndCompare(ctx, t, seeds[1], hy, hyAcked)
	more := produceAll(ctx, t, newSeededClient(t, seeds, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner())), 600, mk(100000))
	for p, m := range more {
		for o, r := range m {
			if _, dup := acked[p][o]; dup {
				t.Fatalf("offset %d/%d acknowledged twice", p, o)
			}
			acked[p][o] = r
		}
	}
	consumeAndCompare(ctx, t, seeds[0], topic, acked)

	// Replication as an operator runs it: wipe logsvc-3's disk and
	// restart it with cluster.sh; it rebuilds from the leaders and rejoins
	// every ISR; then, the other two nodes SIGKILLed, it alone serves
	// every acknowledged record of the replication factor 3 topic.
	const rtopic = "script-rf3"
	if resp, err := adm.CreateTopic(ctx, 3, 3, nil, rtopic); err != nil || resp.Err != nil {
		t.Fatalf("create topic %s: %v %v", rtopic, err, resp.Err)
	}
	rprod := newSeededClient(t, seeds, kgo.DefaultProduceTopic(rtopic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	racked := produceAll(ctx, t, rprod, 900, func(i int) *kgo.Record {
		return &kgo.Record{Partition: int32(i % 3), Value: []byte(fmt.Sprintf("rf3-%06d", i))}
	})
	if err := os.RemoveAll(filepath.Join(dir, "data", "logsvc-3")); err != nil {
		t.Fatal(err)
	}
	if out, err := runScript(t, 2*time.Minute, script, "restart", dir, "logsvc-3"); err != nil {
		t.Fatalf("cluster.sh restart logsvc-3 (wiped): %v\n%s", err, out)
	}
	waitRecords(ctx, t, cli, rtopic, "logsvc-3 back in every ISR", func(p partitionRecord) bool { return slices.Contains(p.ISR, "logsvc-3") })
	env = clusterEnv(t, dir)
	for _, n := range []string{"logsvc-1", "logsvc-2"} {
		pid, _ := strconv.Atoi(env[pidVar(n)])
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s: %v", n, err)
		}
	}
	waitRecords(ctx, t, cli, rtopic, "logsvc-3 leads every partition", func(p partitionRecord) bool { return p.Leader == "logsvc-3" })
	consumeAndCompare(ctx, t, seeds[0], rtopic, racked)
	for _, n := range []string{"logsvc-1", "logsvc-2"} {
		if out, err := runScript(t, 2*time.Minute, script, "restart", dir, n); err != nil {
			t.Fatalf("cluster.sh restart %s: %v\n%s", n, err, out)
		}
	}
	env = clusterEnv(t, dir)
	for _, n := range clusterNodes {
		pids[n], _ = strconv.Atoi(env[pidVar(n)])
	}

	begin = time.Now()
	out, err = runScript(t, 2*time.Minute, script, "down", dir)
	downed = true
	if err != nil {
		t.Fatalf("cluster.sh down: %v\n%s", err, out)
	}
	t.Logf("cluster.sh down took %v:\n%s", time.Since(begin).Round(time.Millisecond), out)
	for _, n := range clusterNodes {
		if processAlive(pids[n]) {
			t.Fatalf("%s (pid %d) still alive after down", n, pids[n])
		}
		if !strings.Contains(out, n+" (pid "+strconv.Itoa(pids[n])+")") {
			t.Fatalf("down did not report stopping %s (pid %d)", n, pids[n])
		}
	}
	if out, err := runScript(t, time.Minute, script, "status", dir); err == nil || strings.Contains(out, " running ") {
		t.Fatalf("cluster.sh status after down (want every node stopped, exit 1): %v\n%s", err, out)
	}
}

// runScript runs cluster.sh with args and returns its combined output.
func runScript(t testing.TB, timeout time.Duration, script string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	// If a child kept the output pipe open, Wait would hang: the script
	// must redirect every process it leaves running.
	cmd.WaitDelay = 10 * time.Second
	b, err := cmd.CombinedOutput()
	if errors.Is(err, exec.ErrWaitDelay) {
		t.Errorf("cluster.sh %s: a process it started kept its output open", args[0])
	}
	return string(b), err
}

// clusterEnv sources DIR/cluster.env in bash and returns the variables the
// test reads.
func clusterEnv(t testing.TB, dir string) map[string]string {
	t.Helper()
	names := []string{"BOOTSTRAP", "ETCD_ENDPOINTS", "OBJECT_STORE"}
	for _, n := range clusterNodes {
		names = append(names, pidVar(n))
		if n != "etcd" {
			names = append(names, httpVar(n))
		}
	}
	const src = `set -eu; . "$1"; shift; for v in "$@"; do printf '%s=%s\n' "$v" "${!v}"; done`
	out, err := exec.Command("bash", append([]string{"-c", src, "_", filepath.Join(dir, "cluster.env")}, names...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("sourcing cluster.env: %v\n%s", err, out)
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	return env
}

// pidVar is the cluster.env variable holding a node's PID (PID_LOGSVC_2).
func pidVar(node string) string {
	return "PID_" + strings.ToUpper(strings.ReplaceAll(node, "-", "_"))
}

// partitionRecord is the part of an etcd partition record the script test
// reads.
type partitionRecord struct {
	Leader string   `json:"leader"`
	ISR    []string `json:"isr"`
}

// waitRecords polls etcd until every partition record of topic satisfies
// cond (at most two minutes).
func waitRecords(ctx context.Context, t testing.TB, cli *clientv3.Client, topic, what string, cond func(partitionRecord) bool) {
	t.Helper()
	prefix := "/streamline/partitions/" + topic + "/"
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			t.Fatalf("etcd get %s: %v", prefix, err)
		}
		ok := len(resp.Kvs) > 0
		for _, kv := range resp.Kvs {
			var p partitionRecord
			if err := json.Unmarshal(kv.Value, &p); err != nil {
				t.Fatalf("%s: %v", kv.Key, err)
			}
			ok = ok && cond(p)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 2 minutes", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
