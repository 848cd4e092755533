package logsvc

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

// replicaNode starts a node that leaves followers out of the ISR quickly.
func replicaNode(t *testing.T, e *metatest.Etcd, dir string) *Node {
	t.Helper()
	n, err := New(Config{DataDir: dir, Etcd: e.Client, SessionTTL: 2 * time.Second, ReplicaLagTime: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// followedLog reads a follower's whole copy of partition 0.
func followedLog(n *Node, topic string) (data []byte, end int64, ok bool) {
	n.follow.mu.Lock()
	f := n.follow.m[partKey{topic, 0}]
	n.follow.mu.Unlock()
	if f == nil {
		return nil, 0, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.retired {
		return nil, 0, false
	}
	end = f.log.EndOffset()
	b, err := f.log.Read(f.log.StartOffset(), 1<<30, end, true)
	return b, end, err == nil
}

// TestReplicationKeepsISRAndAcks runs a replication factor 3 partition
// with min.insync.replicas=2 on three nodes: acks=all waits for the
// followers, which hold the leader's batches byte for byte; a stopped
// follower leaves the ISR and acks=all goes on with two; with the leader
// alone it is NOT_ENOUGH_REPLICAS while acks=1 is still served; a
// returning follower catches up, rejoins the ISR, and acks=all works again.
func TestReplicationKeepsISRAndAcks(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	nodes := map[string]*Node{}
	var registered []meta.LogNode
	for _, d := range dirs {
		n := replicaNode(t, e, d)
		nodes[n.ID()] = n
		registered = append(registered, meta.LogNode{ID: n.ID(), Addr: n.Addr()})
	}
	store := meta.NewStore(e.Client, "")
	topic := &meta.Topic{Name: "r", Partitions: 1, ReplicationFactor: 3, StorageMode: meta.StorageLocal,
		Configs: map[string]string{meta.ConfigMinInsyncReplicas: "2"}}
	if _, err := store.CreateTopic(ctx, topic, registered); err != nil {
		t.Fatal(err)
	}
	var rec meta.Partition
	waitUntil(t, "every node sees the topic", func() bool {
		for _, n := range nodes {
			p, ok := n.cache.Partition("r", 0)
			if !ok {
				return false
			}
			rec = p
		}
		return true
	})
	leader := nodes[rec.Leader]
	var followerIDs []string
	for _, id := range rec.Replicas[1:] {
		followerIDs = append(followerIDs, id)
	}
	c := dial(t, leader.Addr())
	produce := func(acks int32, values ...string) *logv1.ProducePartitionResult {
		t.Helper()
		resp, err := c.Produce(ctx, &logv1.ProduceRequest{Acks: acks, TimeoutMs: 20000, Partitions: []*logv1.ProducePartition{
			{Topic: "r", TopicId: topic.ID[:], Partition: 0, Records: recbatchtest.Build(recbatchtest.Values(0, values...))},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Partitions[0]
	}
	isr := func() []string {
		p, _ := leader.cache.Partition("r", 0)
		return p.ISR
	}
	if r := produceUntilLed(t, c, *topic, recbatchtest.Build(recbatchtest.Values(0, "a", "b"))); r.ErrorCode != 0 {
		t.Fatalf("first produce: %+v", r)
	}
	for i := range 20 {
		if r := produce(-1, "x", string(rune('a'+i))); r.ErrorCode != 0 || r.BaseOffset != int64(2+2*i) {
			t.Fatalf("acks=all produce %d: %+v", i, r)
		}
	}
	leaderBytes, err := leader.parts.m[partKey{"r", 0}].log.Read(0, 1<<30, 42, true)
	if err != nil {
		t.Fatal(err)
	}
	// An acks=all answer means every ISR member has the batch.
	for _, id := range followerIDs {
		got, end, ok := followedLog(nodes[id], "r")
		if !ok || end != 42 || !bytes.Equal(got, leaderBytes) {
			t.Fatalf("follower %s holds %d bytes up to %d (ok %v); leader %d bytes up to 42", id, len(got), end, ok, len(leaderBytes))
		}
	}
	if got := isr(); len(got) != 3 {
		t.Fatalf("ISR %v", got)
	}

	// One follower stops: it leaves the ISR; acks=all goes on with two.
	stopped := followerIDs[0]
	nodes[stopped].Close()
	waitUntil(t, "the stopped follower leaves the ISR", func() bool { return !slices.Contains(isr(), stopped) })
	if r := produce(-1, "two"); r.ErrorCode != 0 {
		t.Fatalf("acks=all with ISR of 2, min.insync.replicas 2: %+v", r)
	}
	// The other follower stops: the leader alone is below min.insync.replicas.
	nodes[followerIDs[1]].Close()
	waitUntil(t, "the ISR shrinks to the leader", func() bool { return slices.Equal(isr(), []string{rec.Leader}) })
	if r := produce(-1, "refused"); r.ErrorCode != int32(kerr.NotEnoughReplicas.Code) {
		t.Fatalf("acks=all with the leader alone: %+v", r)
	}
	if r := produce(1, "leader-only"); r.ErrorCode != 0 {
		t.Fatalf("acks=1 with the leader alone: %+v", r)
	}
	fetched, err := c.Fetch(ctx, &logv1.FetchRequest{MaxBytes: 1 << 20, Partitions: []*logv1.FetchPartition{
		{Topic: "r", TopicId: topic.ID[:], Partition: 0, FetchOffset: 0, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	if hwm := fetched.Partitions[0].HighWatermark; hwm != 44 {
		t.Fatalf("high watermark %d, want 44 (the refused batch must not be stored)", hwm)
	}

	// The first follower returns: it catches up and rejoins the ISR.
	back := replicaNode(t, e, dirs[slices.IndexFunc(dirs, func(d string) bool { return nodes[stopped].cfg.DataDir == d })])
	waitUntil(t, "the returning follower rejoins the ISR", func() bool { return slices.Contains(isr(), back.ID()) })
	if r := produce(-1, "again"); r.ErrorCode != 0 {
		t.Fatalf("acks=all after the follower rejoined: %+v", r)
	}
	want, err := leader.parts.m[partKey{"r", 0}].log.Read(0, 1<<30, 45, true)
	if err != nil {
		t.Fatal(err)
	}
	got, end, ok := followedLog(back, "r")
	if !ok || end != 45 || !bytes.Equal(got, want) {
		t.Fatalf("returned follower holds %d bytes up to %d (ok %v); leader %d up to 45", len(got), end, ok, len(want))
	}
}
