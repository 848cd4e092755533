package logsvc

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

// TestDeleteRecordsAndConfigChanges: LogService.DeleteRecords moves a
// local partition's log start durably (a restarted node serves the same
// start), and a topic config changed in etcd reaches the running
// partition without reopening it: a lower max.message.bytes refuses the
// next batch, and a retention change is applied at once instead of at
// the next periodic pass.
func TestDeleteRecordsAndConfigChanges(t *testing.T) {
	e := metatest.Start(t)
	dir := t.TempDir()
	n := startNode(t, e, dir)
	ctx := context.Background()
	store := meta.NewStore(e.Client, "")
	topic := &meta.Topic{Name: "adm", Partitions: 1}
	if _, err := store.CreateTopic(ctx, topic, []meta.LogNode{{ID: n.ID(), Addr: n.Addr()}}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, n.Addr())
	// Old enough for the retention.ms set below.
	now := time.Now().Add(-time.Hour).UnixMilli()
	for i := 0; i < 4; i++ { // offsets 0-7
		if r := produceUntilLed(t, c, *topic, recbatchtest.Build(recbatchtest.Values(now, "a", "b"))); r.ErrorCode != 0 {
			t.Fatalf("produce: %+v", r)
		}
	}
	del := func(c logv1.LogServiceClient, offset int64) *logv1.DeleteRecordsPartitionResult {
		t.Helper()
		resp, err := c.DeleteRecords(ctx, &logv1.DeleteRecordsRequest{Partitions: []*logv1.DeleteRecordsPartition{
			{Topic: "adm", TopicId: topic.ID[:], Partition: 0, Offset: offset},
			{Topic: "adm", Partition: 5, Offset: 0},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.Partitions[1]; r.ErrorCode != int32(kerr.UnknownTopicOrPartition.Code) || r.LowWatermark != -1 {
			t.Fatalf("missing partition: %+v", r)
		}
		return resp.Partitions[0]
	}
	if r := del(c, 9); r.ErrorCode != int32(kerr.OffsetOutOfRange.Code) || r.LowWatermark != -1 {
		t.Fatalf("beyond the high watermark: %+v", r)
	}
	if r := del(c, 5); r.ErrorCode != 0 || r.LowWatermark != 5 {
		t.Fatalf("delete below 5: %+v", r)
	}
	earliest := func(c logv1.LogServiceClient) int64 {
		t.Helper()
		lo, err := c.ListOffsets(ctx, &logv1.ListOffsetsRequest{Partitions: []*logv1.ListOffsetsPartition{{Topic: "adm", Partition: 0, Timestamp: -2, CurrentLeaderEpoch: -1}}})
		if err != nil || lo.Partitions[0].ErrorCode != 0 {
			t.Fatalf("earliest: %v %+v", err, lo)
		}
		return lo.Partitions[0].Offset
	}
	if o := earliest(c); o != 5 {
		t.Fatalf("earliest %d after deleting below 5", o)
	}

	n.Close()
	n = startNode(t, e, dir)
	c = dial(t, n.Addr())
	// BaseOffset may be past 8: produceUntilLed retries a plain (not
	// idempotent) produce refused while the reopened node confirms its
	// leadership, and such a refused batch may already be stored.
	restartProduce := produceUntilLed(t, c, *topic, recbatchtest.Build(recbatchtest.Values(now, "c")))
	if r := restartProduce; r.ErrorCode != 0 || r.BaseOffset < 8 || r.LogStartOffset != 5 {
		t.Fatalf("produce after restart: %+v", r)
	}

	if o := earliest(c); o != 5 {
		t.Fatalf("earliest %d after restart", o)
	}
	fr, err := c.Fetch(ctx, &logv1.FetchRequest{MaxBytes: 1 << 20, Partitions: []*logv1.FetchPartition{
		{Topic: "adm", Partition: 0, FetchOffset: 4, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1}}})
	if err != nil || fr.Partitions[0].ErrorCode != int32(kerr.OffsetOutOfRange.Code) || fr.Partitions[0].LogStartOffset != 5 {
		t.Fatalf("fetch below the start: %v %+v", err, fr)
	}

	// Config changes reach the running partition.
	if _, _, err := store.UpdateTopic(ctx, "adm", func(t *meta.Topic) error {
		t.Configs = map[string]string{meta.ConfigMaxMessageBytes: "100", meta.ConfigRetentionMs: "1000"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	big := recbatchtest.Build(recbatchtest.Values(now, string(make([]byte, 200))))
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := produceUntilLed(t, c, *topic, big)
		if r.ErrorCode == int32(kerr.MessageTooLarge.Code) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("max.message.bytes=100 not applied: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// retention.ms=1000 and records an hour old: the retention pass a
	// change triggers (the periodic one is 5 minutes away) deletes them
	// all, rolling the active segment, so the start moves to the end. A
	// big batch sent before max.message.bytes applied may have been
	// stored after the pass the first change triggered: change the config
	// once more, now that nothing is in flight, for a pass that sees all.
	if _, _, err := store.UpdateTopic(ctx, "adm", func(t *meta.Topic) error {
		t.Configs[meta.ConfigRetentionMs] = "1001"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	// (The end is wherever the produces above left it: batches sent
	// before max.message.bytes applied were stored.)
	latest := func() int64 {
		t.Helper()
		lo, err := c.ListOffsets(ctx, &logv1.ListOffsetsRequest{Partitions: []*logv1.ListOffsetsPartition{{Topic: "adm", Partition: 0, Timestamp: -1, CurrentLeaderEpoch: -1}}})
		if err != nil || lo.Partitions[0].ErrorCode != 0 {
			t.Fatalf("latest: %v %+v", err, lo)
		}
		return lo.Partitions[0].Offset
	}
	for end := latest(); earliest(c) != end || end <= restartProduce.BaseOffset; end = latest() {
		if time.Now().After(deadline) {
			t.Fatalf("retention.ms=1000 not applied: earliest %d, end %d", earliest(c), end)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
