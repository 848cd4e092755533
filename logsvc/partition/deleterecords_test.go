package partition

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

func TestDeleteRecordsKafkaSemantics(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 3; i++ {
		if r := f.produce(recbatchtest.Build(recbatchtest.Values(time.Now().UnixMilli(), "a", "b"))); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	ctx := context.Background()
	for _, off := range []int64{7, -2} {
		if low, e, _ := f.p.DeleteRecords(ctx, off); e != kerr.OffsetOutOfRange || low != -1 {
			t.Fatalf("delete below %d: low %d, %v; want OFFSET_OUT_OF_RANGE", off, low, e)
		}
	}
	if low, e, msg := f.p.DeleteRecords(ctx, 3); e != nil || low != 3 {
		t.Fatalf("delete below 3: low %d, %v %s", low, e, msg)
	}
	if rr := f.p.Read(2, 1<<20, true); rr.Err != kerr.OffsetOutOfRange || rr.LogStartOffset != 3 {
		t.Fatalf("fetch below the start: %v, log start %d", rr.Err, rr.LogStartOffset)
	}
	if off, _, e, _ := f.p.ListOffset(EarliestTimestamp); e != nil || off != 3 {
		t.Fatalf("earliest: %d %v", off, e)
	}
	// Lower than the start: nothing changes, the answer is the start.
	if low, e, _ := f.p.DeleteRecords(ctx, 1); e != nil || low != 3 {
		t.Fatalf("delete below 1: low %d, %v", low, e)
	}
	// The start and the produce answers' log start survive a reopen.
	f.reopen()
	if r := f.produce(recbatchtest.Build(recbatchtest.Values(time.Now().UnixMilli(), "c"))); r.Err != nil || r.BaseOffset != 6 || r.LogStartOffset != 3 {
		t.Fatalf("produce after reopen: %+v", r)
	}
	// -1 is the high watermark.
	if low, e, _ := f.p.DeleteRecords(ctx, -1); e != nil || low != 7 {
		t.Fatalf("delete to the high watermark: low %d, %v", low, e)
	}
	if rr := f.p.Read(7, 1<<20, true); rr.Err != nil || len(rr.Records) != 0 || rr.HighWatermark != 7 {
		t.Fatalf("fetch at the end after deleting all: %+v", rr)
	}

	// A partition that stopped leading refuses.
	f.p.Close()
	if _, e, _ := f.p.DeleteRecords(ctx, 7); e != kerr.NotLeaderForPartition {
		t.Fatalf("closed partition: %v", e)
	}
}

func TestDeleteRecordsIsFenced(t *testing.T) {
	f := newFixture(t)
	if r := f.produce(recbatchtest.Build(recbatchtest.Values(time.Now().UnixMilli(), "a", "b"))); r.Err != nil {
		t.Fatal(r.Err)
	}
	f.p.cfg.Fence = func(context.Context) error { return errors.New("lease lost") }
	if _, e, _ := f.p.DeleteRecords(context.Background(), 1); e != kerr.NotLeaderForPartition {
		t.Fatalf("fenced: %v", e)
	}
	if f.p.LogStartOffset() != 0 {
		t.Fatalf("a fenced delete moved the start to %d", f.p.LogStartOffset())
	}
}

func TestReconfigureAppliesMaxMessageBytes(t *testing.T) {
	f := newFixture(t)
	big := recbatchtest.Build(recbatchtest.Values(time.Now().UnixMilli(), string(make([]byte, 2000))))
	if r := f.produce(big); r.Err != nil {
		t.Fatal(r.Err)
	}
	changed := f.spec.Topic
	changed.Configs = map[string]string{meta.ConfigMaxMessageBytes: "1000", meta.ConfigRetentionBytes: "0"}
	f.p.Reconfigure(changed)
	if r := f.produce(big); r.Err != kerr.MessageTooLarge {
		t.Fatalf("after lowering max.message.bytes: %v", r.Err)
	}
	if f.p.Topic().Configs[meta.ConfigRetentionBytes] != "0" {
		t.Fatalf("topic not updated: %+v", f.p.Topic())
	}
	// The changed retention.bytes applies at the next retention pass.
	if err := f.p.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	if f.p.LogStartOffset() != 1 {
		t.Fatalf("retention.bytes=0 kept the start at %d", f.p.LogStartOffset())
	}
	// Another topic's definition (a re-created topic) is ignored.
	other := changed
	other.ID = meta.NewTopicID()
	other.Configs = nil
	f.p.Reconfigure(other)
	if f.p.Topic().ID != f.spec.Topic.ID {
		t.Fatal("reconfigured with another topic id")
	}
}
