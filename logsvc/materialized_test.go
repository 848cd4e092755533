package logsvc

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

// TestNeverOpenedPartitionStartsAfterFencing is a state the fault campaign
// found: a local topic is created while its home node is away, the
// controller fences the partition (epoch 1, then 2 when the node is back)
// before the node ever opened it, so no local log exists. The node must
// lead it, empty (it never had data), and record that it now has a log; a
// partition that has one must not be started empty again.
func TestNeverOpenedPartitionStartsAfterFencing(t *testing.T) {
	e := metatest.Start(t)
	dir := t.TempDir()
	store := meta.NewStore(e.Client, "")
	ctx := context.Background()
	// The topic exists (home: the node's id) before the node ever runs.
	n := startNode(t, e, dir)
	id, addr := n.ID(), n.Addr()
	n.Close()
	topic := &meta.Topic{Name: "fenced-early", Partitions: 1}
	if _, err := store.CreateTopic(ctx, topic, []meta.LogNode{{ID: id, Addr: addr}}); err != nil {
		t.Fatal(err)
	}
	pa := partitionRecord(t, store, topic.Name)
	if pa.MayHaveLocalData() {
		t.Fatalf("a new local partition counts as having data: %+v", pa)
	}
	next := pa
	next.LeaderEpoch = 2 // fenced and handed back, never opened
	if n, err := store.UpdatePartitions(ctx, []meta.PartitionUpdate{{Old: pa, New: next}}); err != nil || n != 1 {
		t.Fatalf("bump epoch: %d %v", n, err)
	}

	n2 := startNode(t, e, dir)
	c := dial(t, n2.Addr())
	if r := produceUntilLed(t, c, *topic, recbatchtest.Build(recbatchtest.Values(1, "a"))); r.ErrorCode != 0 || r.BaseOffset != 0 {
		t.Fatalf("produce: %+v", r)
	}
	if pa := partitionRecord(t, store, topic.Name); !pa.MayHaveLocalData() {
		t.Fatalf("the opened partition is not recorded as having a local log: %+v", pa)
	}

	// Its data lost (the disk replaced): the node must refuse to start it
	// empty now.
	n2.Close()
	if err := os.RemoveAll(filepath.Join(dir, "partitions")); err != nil {
		t.Fatal(err)
	}
	n3 := startNode(t, e, dir)
	time.Sleep(2 * time.Second)
	for _, p := range n3.parts.Led() {
		if p.Topic().Name == topic.Name {
			t.Fatal("a partition with a local log elsewhere was started empty")
		}
	}
}

// partitionRecord reads partition 0 of topic through a fresh metadata
// cache (which fills in ModRevision for compare-and-swap).
func partitionRecord(t *testing.T, store *meta.Store, topic string) meta.Partition {
	t.Helper()
	c := meta.NewCache(store, nil)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ps := c.Partitions(topic)
	if len(ps) != 1 {
		t.Fatalf("partitions of %s: %v", topic, ps)
	}
	return ps[0]
}
