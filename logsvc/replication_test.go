package logsvc

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/logsvc/storage/localstore"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

// replicaNode starts a node that leaves followers out of the ISR quickly.
func replicaNode(t *testing.T, e *metatest.Etcd, dir string) *Node {
	t.Helper()
	n, err := New(Config{DataDir: dir, Etcd: e.Client, SessionTTL: 2 * time.Second, ReplicaLagTime: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// metric sums the samples of a node's metric family whose labels include
// match.
func metric(t *testing.T, n *Node, name string, match map[string]string) float64 {
	t.Helper()
	mfs, err := n.cfg.Metrics.(*prometheus.Registry).Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range match {
				if labels[k] != v {
					continue next
				}
			}
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return sum
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

	if out := metric(t, leader, "streamline_logsvc_replication_bytes_total", map[string]string{"direction": "out", "storage_mode": "local"}); out < float64(2*len(leaderBytes)) {
		t.Fatalf("leader sent %v replication bytes, want at least %d", out, 2*len(leaderBytes))
	}
	if in := metric(t, nodes[followerIDs[0]], "streamline_logsvc_replication_bytes_total", map[string]string{"direction": "in"}); in < float64(len(leaderBytes)) {
		t.Fatalf("follower wrote %v replication bytes, want at least %d", in, len(leaderBytes))
	}
	if u := metric(t, leader, "streamline_logsvc_under_replicated_partitions", nil); u != 0 {
		t.Fatalf("under-replicated partitions %v with every replica in sync", u)
	}

	// One follower stops: it leaves the ISR; acks=all goes on with two.
	stopped := followerIDs[0]
	nodes[stopped].Close()
	waitUntil(t, "the stopped follower leaves the ISR", func() bool { return !slices.Contains(isr(), stopped) })
	waitUntil(t, "the leader counts the partition under-replicated", func() bool {
		return metric(t, leader, "streamline_logsvc_under_replicated_partitions", nil) == 1
	})
	if r := produce(-1, "two"); r.ErrorCode != 0 {
		t.Fatalf("acks=all with ISR of 2, min.insync.replicas 2: %+v", r)
	}
	// The other follower stops: the leader alone is below min.insync.replicas.
	nodes[followerIDs[1]].Close()
	waitUntil(t, "the ISR shrinks to the leader", func() bool { return slices.Equal(isr(), []string{rec.Leader}) })
	// ...as the leading partition itself sees it (its cache may lag the
	// test's by a moment: a produce then would be stored and refused,
	// NOT_ENOUGH_REPLICAS_AFTER_APPEND, shifting the offsets below).
	waitUntil(t, "the leader applies the shrunk ISR", func() bool {
		leader.parts.mu.RLock()
		e, ok := leader.parts.m[partKey{"r", 0}]
		leader.parts.mu.RUnlock()
		return ok && slices.Equal(e.p.ISR(), []string{rec.Leader})
	})
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
	// The leader counts the expansion after its etcd commit returns, which
	// the test's cache may see first.
	waitUntil(t, "the leader counts the ISR expansion", func() bool {
		return metric(t, leader, "streamline_logsvc_isr_changes_total", map[string]string{"change": "expand"}) >= 1
	})
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

// TestFailoverElectsFromISRAndTruncatesDeposedLeader: the leader of a
// replication factor 3 partition dies holding a batch its followers never
// fetched (written into its log while it was down, as a crash right after
// the local append leaves it); the controller elects the next ISR member,
// which takes acks=all writes at a new epoch; the old leader returns as a
// follower, truncates the batch nobody acknowledged (KIP-320's diverging
// epoch) and ends up with the new leader's log byte for byte. Then the new
// leader dies too and the third replica serves every acknowledged record.
func TestFailoverElectsFromISRAndTruncatesDeposedLeader(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes := map[string]*Node{}
	dirs := map[string]string{}
	var registered []meta.LogNode
	for range 3 {
		d := t.TempDir()
		n := replicaNode(t, e, d)
		nodes[n.ID()], dirs[n.ID()] = n, d
		registered = append(registered, meta.LogNode{ID: n.ID(), Addr: n.Addr()})
	}
	store := meta.NewStore(e.Client, "")
	topic := &meta.Topic{Name: "f", Partitions: 1, ReplicationFactor: 3, StorageMode: meta.StorageLocal}
	if _, err := store.CreateTopic(ctx, topic, registered); err != nil {
		t.Fatal(err)
	}
	var rec meta.Partition
	cache := meta.NewCache(store, nil) // the test's own view of etcd
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	current := func() meta.Partition {
		p, _ := cache.Partition("f", 0)
		return p
	}
	waitUntil(t, "every node sees the topic", func() bool {
		for _, n := range nodes {
			if _, ok := n.cache.Partition("f", 0); !ok {
				return false
			}
		}
		rec = current()
		return true
	})
	produceTo := func(n *Node, values ...string) int64 {
		t.Helper()
		c := dial(t, n.Addr())
		for range 400 {
			resp, err := c.Produce(ctx, &logv1.ProduceRequest{Acks: -1, TimeoutMs: 20000, Partitions: []*logv1.ProducePartition{
				{Topic: "f", TopicId: topic.ID[:], Partition: 0, Records: recbatchtest.Build(recbatchtest.Values(0, values...))},
			}})
			if err != nil {
				t.Fatal(err)
			}
			r := resp.Partitions[0]
			if r.ErrorCode == 0 {
				return r.BaseOffset
			}
			if r.ErrorCode != int32(kerr.NotLeaderForPartition.Code) && r.ErrorCode != int32(kerr.UnknownTopicOrPartition.Code) {
				t.Fatalf("produce: %+v", r)
			}
			time.Sleep(25 * time.Millisecond)
		}
		t.Fatal("partition never led")
		return 0
	}
	a := rec.Leader
	for i := range 10 {
		produceTo(nodes[a], "a", string(rune('0'+i)))
	}
	// 20 acknowledged records on every replica. A stops and, as if it
	// had crashed right after appending locally, holds one more batch of
	// its epoch that nobody fetched.
	nodes[a].Close()
	eng, err := localstore.Open(localstore.Options{DataDir: dirs[a], Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	lg, err := eng.Open(storage.PartitionSpec{Topic: *topic, Partition: 0})
	if err != nil {
		t.Fatal(err)
	}
	orphan := recbatchtest.Build(recbatchtest.Values(0, "never", "acknowledged"))
	recbatch.SetBaseOffset(orphan, lg.EndOffset())
	recbatch.SetPartitionLeaderEpoch(orphan, rec.LeaderEpoch)
	h, err := recbatch.Validate(orphan)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-lg.Append(orphan, h); err != nil {
		t.Fatal(err)
	}
	if lg.EndOffset() != 22 {
		t.Fatalf("old leader's log ends at %d", lg.EndOffset())
	}
	lg.Close()
	eng.Close()

	// A replica in the ISR takes over at a new epoch and takes writes.
	waitUntil(t, "a new leader from the ISR", func() bool {
		p := current()
		return p.Leader != "" && p.Leader != a && p.LeaderEpoch > rec.LeaderEpoch
	})
	b := current().Leader
	for i := range 5 {
		if off := produceTo(nodes[b], "b", string(rune('0'+i))); off != int64(20+2*i) {
			t.Fatalf("new leader wrote at %d, want %d", off, 20+2*i)
		}
	}
	// The old leader returns as a follower and drops its orphan batch.
	back := replicaNode(t, e, dirs[a])
	nodes[a] = back
	waitUntil(t, "the old leader back in the ISR", func() bool { return slices.Contains(current().ISR, a) })
	want, err := nodes[b].parts.m[partKey{"f", 0}].log.Read(0, 1<<30, 30, true)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	waitUntil(t, "the old leader's copy equals the new leader's log", func() bool {
		var end int64
		var ok bool
		got, end, ok = followedLog(back, "f")
		return ok && end == 30
	})
	if !bytes.Equal(got, want) {
		t.Fatalf("old leader's copy differs from the new leader's log (%d vs %d bytes)", len(got), len(want))
	}

	// The new leader dies as well: the third replica, or the old one,
	// leads with every acknowledged record.
	nodes[b].Close()
	waitUntil(t, "a third leader", func() bool {
		p := current()
		return p.Leader != "" && p.Leader != b
	})
	c := nodes[current().Leader]
	resp, err := dial(t, c.Addr()).Fetch(ctx, &logv1.FetchRequest{MaxBytes: 1 << 20, MaxWaitMs: 5000, MinBytes: 1, Partitions: []*logv1.FetchPartition{
		{Topic: "f", TopicId: topic.ID[:], Partition: 0, FetchOffset: 0, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Partitions[0]
	waitUntil(t, "the third leader's high watermark reaches 30", func() bool {
		resp, err = dial(t, c.Addr()).Fetch(ctx, &logv1.FetchRequest{MaxBytes: 1 << 20, Partitions: []*logv1.FetchPartition{
			{Topic: "f", TopicId: topic.ID[:], Partition: 0, FetchOffset: 0, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1}}})
		if err != nil {
			t.Fatal(err)
		}
		r = resp.Partitions[0]
		return r.ErrorCode == 0 && r.HighWatermark == 30
	})
	if !bytes.Equal(r.Records, want) {
		t.Fatalf("third leader serves %d bytes, want the %d acknowledged", len(r.Records), len(want))
	}
}

// TestWipedReplicaLeavesISRAtStart starts a node that etcd lists as
// leader and in the ISR of a replicated partition it has no log of (its
// disk was replaced and it came back before its lease expired): before
// serving anything it takes itself out of the ISR and the lead, so it
// can never be elected empty; the other member stays in sync.
func TestWipedReplicaLeavesISRAtStart(t *testing.T) {
	cache, _ := startOnEmptyDisk(t, &meta.Topic{Name: "w", Partitions: 1, ReplicationFactor: 2, StorageMode: meta.StorageLocal},
		"wiped", func(had *meta.Partition) {
			had.Leader, had.LeaderEpoch = "wiped", 3
			had.Replicas, had.ISR = []string{"wiped", "other"}, []string{"wiped", "other"}
		})
	waitUntil(t, "the wiped node out of the ISR and the lead", func() bool {
		p, _ := cache.Partition("w", 0)
		return slices.Equal(p.ISR, []string{"other"}) && p.Leader != "wiped" && p.LeaderEpoch > 3
	})
}

// startOnEmptyDisk creates topic (one partition), rewrites its record
// with set as a partition that had a life (materialized, leader epoch 3),
// and starts node self on an empty data directory. It returns the test's
// own view of etcd and the node.
func startOnEmptyDisk(t *testing.T, topic *meta.Topic, self string, set func(had *meta.Partition)) (*meta.Cache, *Node) {
	t.Helper()
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store := meta.NewStore(e.Client, "")
	if _, err := store.CreateTopic(ctx, topic, []meta.LogNode{{ID: self}, {ID: "other"}}); err != nil {
		t.Fatal(err)
	}
	cache := meta.NewCache(store, nil)
	if err := cache.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	rec, _ := cache.Partition(topic.Name, 0)
	had := rec
	*had.Materialized = true // it had data before the disk was replaced
	set(&had)
	if n, err := store.UpdatePartitions(ctx, []meta.PartitionUpdate{{Old: rec, New: had}}); err != nil || n != 1 {
		t.Fatalf("set up the record: %d %v", n, err)
	}
	n, err := New(Config{ID: self, DataDir: t.TempDir(), Etcd: e.Client, SessionTTL: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return cache, n
}

// TestUncleanLeaderStartsWithoutData: with unclean.leader.election.enable
// and no live ISR member, the controller elects the only live replica even
// though its disk is empty (it was replaced), and it takes writes from
// its empty log instead of refusing to lead (the ISR's data is gone with
// its members: the topic chose availability, as in Kafka).
func TestUncleanLeaderStartsWithoutData(t *testing.T) {
	topic := &meta.Topic{Name: "u", Partitions: 1, ReplicationFactor: 2, StorageMode: meta.StorageLocal,
		Configs: map[string]string{meta.ConfigUncleanLeaderElection: "true"}}
	cache, n := startOnEmptyDisk(t, topic, "empty", func(had *meta.Partition) {
		// Offline since "other", its only ISR member, died: nothing to follow.
		had.Leader, had.LeaderEpoch = "", 3
		had.Replicas, had.ISR = []string{"other", "empty"}, []string{"other"}
	})
	waitUntil(t, "the empty replica elected uncleanly", func() bool {
		p, _ := cache.Partition("u", 0)
		return p.Leader == "empty" && p.UncleanLeader && slices.Equal(p.ISR, []string{"empty"}) && p.LeaderEpoch > 3
	})
	r := produceUntilLed(t, dial(t, n.Addr()), *topic, recbatchtest.Build(recbatchtest.Values(0, "after")))
	if r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("produce to the unclean leader: code %d (%s) offset %d; want 0 at offset 0", r.ErrorCode, r.ErrorMessage, r.BaseOffset)
	}
}

// TestRebuildIsThrottled brings an empty follower up against a leader
// holding 4 MiB with --replica-rebuild-throttle at 1 MiB/s: it catches up
// and joins the ISR, and not faster than the throttle allows (a lower
// bound, which a slow machine only makes longer).
func TestRebuildIsThrottled(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader := replicaNode(t, e, t.TempDir())
	store := meta.NewStore(e.Client, "")
	topic := &meta.Topic{Name: "big", Partitions: 1, ReplicationFactor: 2, StorageMode: meta.StorageLocal}
	if _, err := store.CreateTopic(ctx, topic, []meta.LogNode{{ID: leader.ID()}, {ID: "late"}}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, leader.Addr())
	value := string(bytes.Repeat([]byte("x"), 64<<10))
	produceUntilLed(t, c, *topic, recbatchtest.Build(recbatchtest.Values(0, value)))
	for range 63 { // 4 MiB in all
		resp, err := c.Produce(ctx, &logv1.ProduceRequest{Acks: 1, TimeoutMs: 10000, Partitions: []*logv1.ProducePartition{
			{Topic: "big", TopicId: topic.ID[:], Partition: 0, Records: recbatchtest.Build(recbatchtest.Values(0, value))}}})
		if err != nil || resp.Partitions[0].ErrorCode != 0 {
			t.Fatalf("produce: %v %+v", err, resp)
		}
	}
	const throttle = 1 << 20
	start := time.Now()
	late, err := New(Config{ID: "late", DataDir: t.TempDir(), Etcd: e.Client, SessionTTL: 2 * time.Second, RebuildThrottle: throttle,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := late.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	waitUntil(t, "the late follower joins the ISR", func() bool {
		p, _ := leader.cache.Partition("big", 0)
		return slices.Contains(p.ISR, "late")
	})
	took := time.Since(start)
	// 4 MiB at 1 MiB/s after a 1 MiB burst: at least 3 s.
	if took < 2500*time.Millisecond {
		t.Fatalf("rebuilt 4 MiB in %v with a %d B/s throttle", took, throttle)
	}
	t.Logf("rebuilt 4 MiB in %v at %d B/s", took, throttle)
}
