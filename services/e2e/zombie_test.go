package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/grpc"

	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
	"github.com/streamline-dev/streamline/shared/rpc"
)

// TestZombieLogsvcIsFenced freezes a log-service node with SIGSTOP until
// its lease expires and the controller fences its partitions at a new
// epoch, sends it a write while it is frozen, and resumes it: the write
// must not be acknowledged (the node confirms its lease and epoch in etcd
// before any ack); the node then rejoins and leads again at a new epoch.
func TestZombieLogsvcIsFenced(t *testing.T) {
	c := startTestCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, cache := watchMeta(t, c)
	const topic, zombie = "zombie", "logsvc-3"
	createTopic(ctx, t, c, topic, 3)
	await(t, cache, 10*time.Second, "partitions visible", func() bool { return len(cache.Partitions(topic)) == 3 })
	var part int32 = -1
	var epoch int32
	for _, p := range cache.Partitions(topic) {
		if p.Home == zombie {
			part, epoch = p.Partition, p.LeaderEpoch
		}
	}
	if part < 0 {
		t.Fatalf("%s homes no partition", zombie)
	}
	tp, _ := cache.Topic(topic)

	conn, err := grpc.NewClient(c.Addr(zombie), rpc.DialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	logs := logv1.NewLogServiceClient(conn)
	produce := func(value string) (*logv1.ProducePartitionResult, error) {
		resp, err := logs.Produce(ctx, &logv1.ProduceRequest{Acks: -1, TimeoutMs: 30000, Partitions: []*logv1.ProducePartition{
			{Topic: topic, TopicId: tp.ID[:], Partition: part, Records: recbatchtest.Build(recbatchtest.Values(time.Now().UnixMilli(), value))},
		}})
		if err != nil {
			return nil, err
		}
		return resp.Partitions[0], nil
	}
	// While it leads, writes are acknowledged (retry until it opened the partition).
	for i := 0; ; i++ {
		r, err := produce("while leading")
		if err == nil && r.ErrorCode == 0 {
			break
		}
		if i == 100 {
			t.Fatalf("no ack while leading: %v %+v", err, r)
		}
		time.Sleep(50 * time.Millisecond)
	}

	c.Stop(zombie)
	took := await(t, cache, clusterTTL+5*time.Second, "frozen node's partition fenced", func() bool {
		p, _ := cache.Partition(topic, part)
		return p.LeaderEpoch > epoch && !p.Online()
	})
	t.Logf("partition %d fenced at a new epoch %v after SIGSTOP", part, took)

	type result struct {
		r   *logv1.ProducePartitionResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := produce("from a zombie")
		done <- result{r, err}
	}()
	time.Sleep(200 * time.Millisecond) // let the request reach the frozen process's socket
	c.Cont(zombie)
	select {
	case res := <-done:
		switch {
		case res.err != nil:
			t.Fatalf("zombie write failed at the transport, want a fenced answer: %v", res.err)
		case res.r.ErrorCode == 0:
			t.Fatalf("a fenced zombie acknowledged a write at offset %d", res.r.BaseOffset)
		case res.r.ErrorCode != int32(kerr.NotLeaderForPartition.Code):
			t.Fatalf("zombie write: error %d %q, want NOT_LEADER_OR_FOLLOWER", res.r.ErrorCode, res.r.ErrorMessage)
		case !strings.Contains(res.r.ErrorMessage, "lease") && !strings.Contains(res.r.ErrorMessage, "epoch") && !strings.Contains(res.r.ErrorMessage, "no longer led") && !strings.Contains(res.r.ErrorMessage, "does not lead"):
			t.Fatalf("zombie refused for an unexpected reason: %q", res.r.ErrorMessage)
		default:
			t.Logf("zombie refused the write: %s", res.r.ErrorMessage)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("no answer from the resumed node")
	}
	// Having lost its lease, the node rejoins under a new one by itself and
	// the controller gives the partition back at a newer epoch.
	await(t, cache, 20*time.Second, "partition back on its home", func() bool {
		p, _ := cache.Partition(topic, part)
		return p.Leader == zombie && p.LeaderEpoch > epoch+1
	})
}
