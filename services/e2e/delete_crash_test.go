package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamline-dev/streamline/services/cluster"
)

// localTopicDirs counts the partition directories of topic under root (a
// data directory; the all-in-one keeps the log service's below it).
func localTopicDirs(t *testing.T, root, topic string) int {
	t.Helper()
	descs, _ := filepath.Glob(filepath.Join(root, "*", "partitions", "*", "partition.json"))
	more, _ := filepath.Glob(filepath.Join(root, "partitions", "*", "partition.json"))
	n := 0
	for _, d := range append(descs, more...) {
		b, err := os.ReadFile(d)
		if err != nil {
			continue // being deleted
		}
		var desc struct{ Topic string }
		if json.Unmarshal(b, &desc) == nil && desc.Topic == topic {
			n++
		}
	}
	return n
}

// produceTo produces n keyed records to topic and returns the acknowledged
// ones per partition and offset (fails the test on any error).
func produceTo(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, n int) map[int32]map[int64]produced {
	t.Helper()
	return produceAll(ctx, t, cl, n, func(i int) *kgo.Record {
		return &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i % 5)), Value: []byte(fmt.Sprintf("%s-%05d", topic, i))}
	})
}

// TestDeleteTopicThenKill9AllInOne is issue 10's report: records are
// produced to two local topics, one is deleted, and the all-in-one is
// SIGKILLed right after the log service removed the deleted topic's data
// but while the WAL still holds its records (the checkpoint that prunes
// the WAL runs every 10 s). The restart must come up (it used to panic in
// WAL replay and never start again), with every acknowledged record of the
// other topic at its offset, the deleted topic gone, and produce working.
func TestDeleteTopicThenKill9AllInOne(t *testing.T) {
	bin := cluster.Binary(t, "./services/cmd/streamline")
	dataDir := t.TempDir()
	addr, args := allInOneArgs(t, dataDir)
	proc := cluster.StartProcess(t, bin, readyMarker, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	cl := newClient(t, addr, kgo.RequiredAcks(kgo.AllISRAcks()))
	adm := kadm.NewClient(cl)
	for _, topic := range []string{"doomed", "kept"} {
		if resp, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil || resp.Err != nil {
			t.Fatalf("create %s: %v %v", topic, err, resp.Err)
		}
	}
	produceTo(ctx, t, cl, "doomed", 600)
	kept := produceTo(ctx, t, cl, "kept", 600)
	if n := localTopicDirs(t, dataDir, "doomed"); n != 3 {
		t.Fatalf("doomed has %d partition directories, want 3", n)
	}
	if _, err := adm.DeleteTopic(ctx, "doomed"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for localTopicDirs(t, dataDir, "doomed") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the deleted topic's partition directories are still there after 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	proc.Signal(syscall.SIGKILL)
	if err := proc.Wait(30 * time.Second); err == nil {
		t.Fatal("process exited cleanly after SIGKILL?")
	}
	proc.Restart(readyMarker) // fails the test if it exits (panics) first

	cl2 := newClient(t, addr, kgo.RequiredAcks(kgo.AllISRAcks()))
	consumeAndCompare(ctx, t, addr, "kept", kept)
	topics, err := kadm.NewClient(cl2).ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if topics.Has("doomed") {
		t.Fatal("the deleted topic is back after the restart")
	}
	if r := cl2.ProduceSync(ctx, &kgo.Record{Topic: "kept", Value: []byte("after")}); r.FirstErr() != nil {
		t.Fatalf("produce after restart: %v", r.FirstErr())
	}
}

// TestDeleteTopicThenKill9Logsvc is the same on a log-service node of a
// multi-process cluster: its partitions come back at a new epoch with
// every acknowledged record of the topic that was not deleted.
func TestDeleteTopicThenKill9Logsvc(t *testing.T) {
	c := cluster.StartCluster(t, cluster.ClusterOptions{SessionTTL: clusterTTL,
		ExtraArgs: map[string][]string{"gateway": {"--session-ttl", clusterTTL.String()}}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := bootstrapClient(t, c, kgo.RequiredAcks(kgo.AllISRAcks()))
	adm := kadm.NewClient(cl)
	for _, topic := range []string{"doomed", "kept"} {
		if resp, err := adm.CreateTopic(ctx, 6, 1, nil, topic); err != nil || resp.Err != nil {
			t.Fatalf("create %s: %v %v", topic, err, resp.Err)
		}
	}
	produceTo(ctx, t, cl, "doomed", 600)
	acked := map[string]produced{}
	for p, offs := range produceTo(ctx, t, cl, "kept", 600) {
		for off, r := range offs {
			acked[string(r.value)] = produced{value: r.value, offset: off, key: []byte(fmt.Sprint(p))}
		}
	}
	const victim = "logsvc-1"
	dir := c.DataDir(victim)
	if localTopicDirs(t, dir, "doomed") == 0 {
		t.Fatalf("%s holds no partition of the topic to delete", victim)
	}
	if _, err := adm.DeleteTopic(ctx, "doomed"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for localTopicDirs(t, dir, "doomed") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the deleted topic's partition directories are still there after 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Kill(victim)
	c.Restart(victim) // fails the test if it exits (panics) before it serves
	readBackExactlyOnce(ctx, t, c, "kept", acked)
}
