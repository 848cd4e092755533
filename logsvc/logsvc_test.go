package logsvc

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/grpc"

	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
	"github.com/streamline-dev/streamline/shared/rpc"
)

func startNode(t *testing.T, e *metatest.Etcd, dir string) *Node {
	t.Helper()
	n, err := New(Config{DataDir: dir, Etcd: e.Client, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func dial(t *testing.T, addr string) logv1.LogServiceClient {
	conn, err := grpc.NewClient(addr, rpc.DialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return logv1.NewLogServiceClient(conn)
}

// produceUntilLed retries while the node has not seen or opened the
// partition yet.
func produceUntilLed(t *testing.T, c logv1.LogServiceClient, topic meta.Topic, batch []byte) *logv1.ProducePartitionResult {
	t.Helper()
	for i := 0; i < 200; i++ {
		resp, err := c.Produce(context.Background(), &logv1.ProduceRequest{Acks: -1, TimeoutMs: 10000, Partitions: []*logv1.ProducePartition{
			{Topic: topic.Name, TopicId: topic.ID[:], Partition: 0, Records: batch},
		}})
		if err != nil {
			t.Fatal(err)
		}
		r := resp.Partitions[0]
		// Until the node's metadata watch has delivered the new topic and
		// the node has opened the partition, the answers are retriable.
		if r.ErrorCode != int32(kerr.NotLeaderForPartition.Code) && r.ErrorCode != int32(kerr.UnknownTopicOrPartition.Code) {
			return r
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("partition never led")
	return nil
}

func TestNodeServesAssignedPartitionsAcrossRestart(t *testing.T) {
	e := metatest.Start(t)
	dir := t.TempDir()
	n := startNode(t, e, dir)
	store := meta.NewStore(e.Client, "")
	topic := &meta.Topic{Name: "t", Partitions: 1}
	if _, err := store.CreateTopic(context.Background(), topic, []meta.LogNode{{ID: n.ID(), Addr: n.Addr()}}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, n.Addr())
	r := produceUntilLed(t, c, *topic, recbatchtest.Build(recbatchtest.Values(1, "a", "b")))
	if r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("produce: %+v", r)
	}
	// Wrong topic id: the topic was re-created under another id.
	resp, err := c.Produce(context.Background(), &logv1.ProduceRequest{Acks: 1, Partitions: []*logv1.ProducePartition{
		{Topic: "t", TopicId: make([]byte, 16), Partition: 0, Records: recbatchtest.Build(recbatchtest.Values(1, "x"))},
	}})
	if err != nil || resp.Partitions[0].ErrorCode != int32(kerr.UnknownTopicID.Code) {
		t.Fatalf("stale topic id: %v %+v", err, resp)
	}
	if _, err := c.Produce(context.Background(), &logv1.ProduceRequest{Acks: 7}); err == nil {
		t.Fatal("acks=7 accepted")
	}

	// A fetch at the end long-polls until data arrives.
	fetched := make(chan *logv1.FetchResponse, 1)
	go func() {
		resp, err := c.Fetch(context.Background(), &logv1.FetchRequest{MaxWaitMs: 10000, MinBytes: 1, MaxBytes: 1 << 20,
			Partitions: []*logv1.FetchPartition{{Topic: "t", Partition: 0, FetchOffset: 2, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1}}})
		if err != nil {
			t.Error(err)
		}
		fetched <- resp
	}()
	time.Sleep(100 * time.Millisecond)
	if r := produceUntilLed(t, c, *topic, recbatchtest.Build(recbatchtest.Values(2, "c"))); r.BaseOffset != 2 {
		t.Fatalf("second produce %+v", r)
	}
	select {
	case f := <-fetched:
		if p := f.Partitions[0]; p.ErrorCode != 0 || len(p.Records) == 0 || p.HighWatermark != 3 {
			t.Fatalf("long poll result %+v", p)
		}
	case <-time.After(9 * time.Second):
		t.Fatal("long poll did not wake on produce")
	}

	// Restart on the same data dir: same id, same data.
	id := n.ID()
	n.Close()
	n2 := startNode(t, e, dir)
	if n2.ID() != id {
		t.Fatalf("node id changed across restart: %s -> %s", id, n2.ID())
	}
	c2 := dial(t, n2.Addr())
	// BaseOffset may be past 3: while the restarted node gets its
	// partition handed back at a new epoch, a plain (not idempotent)
	// produce can be stored and then refused by the ack fence, and
	// produceUntilLed retries it (at-least-once without idempotence; see
	// ARCHITECTURE.md, Known limits).
	r = produceUntilLed(t, c2, *topic, recbatchtest.Build(recbatchtest.Values(3, "d")))
	if r.ErrorCode != 0 || r.BaseOffset < 3 {
		t.Fatalf("produce after restart: %+v", r)
	}
	lo, err := c2.ListOffsets(context.Background(), &logv1.ListOffsetsRequest{Partitions: []*logv1.ListOffsetsPartition{{Topic: "t", Partition: 0, Timestamp: -2, CurrentLeaderEpoch: -1}}})
	if err != nil || lo.Partitions[0].Offset != 0 {
		t.Fatalf("earliest: %v %+v", err, lo)
	}

	// A second process cannot open the same data directory.
	n3, err := New(Config{DataDir: dir, Etcd: e.Client, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n3.Start(context.Background()); err == nil {
		t.Fatal("two nodes opened one data dir")
	}

	// Deleting the topic deletes its data.
	if _, err := store.DeleteTopic(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c2.Produce(context.Background(), &logv1.ProduceRequest{Acks: 1, Partitions: []*logv1.ProducePartition{{Topic: "t", Partition: 0, Records: recbatchtest.Build(recbatchtest.Values(1, "x"))}}})
		if err == nil && resp.Partitions[0].ErrorCode == int32(kerr.UnknownTopicOrPartition.Code) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deleted topic still served: %v %+v", err, resp)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
