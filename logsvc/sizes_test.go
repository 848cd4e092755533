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

// TestDescribeSizes: LogService.DescribeSizes over real gRPC answers a
// local partition's segment bytes (exactly the batches written), 0 for an
// empty partition, Kafka errors for partitions it cannot answer, every led
// partition for an empty request, and a smaller size once DeleteRecords
// freed a whole segment.
func TestDescribeSizes(t *testing.T) {
	e := metatest.Start(t)
	n := startNode(t, e, t.TempDir())
	ctx := context.Background()
	store := meta.NewStore(e.Client, "")
	// One batch per segment, so DeleteRecords frees whole batches.
	topic := &meta.Topic{Name: "sz", Partitions: 2, Configs: map[string]string{meta.ConfigSegmentBytes: "1"}}
	if _, err := store.CreateTopic(ctx, topic, []meta.LogNode{{ID: n.ID(), Addr: n.Addr()}}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, n.Addr())
	var lens []int64
	for _, v := range []string{"first", "second-value"} {
		b := recbatchtest.Build(recbatchtest.Values(time.Now().UnixMilli(), v))
		lens = append(lens, int64(len(b)))
		if r := produceUntilLed(t, c, *topic, b); r.ErrorCode != 0 {
			t.Fatalf("produce: %+v", r)
		}
	}
	sizes := func(parts ...*logv1.DescribeSizesPartition) []*logv1.DescribeSizesPartitionResult {
		t.Helper()
		resp, err := c.DescribeSizes(ctx, &logv1.DescribeSizesRequest{Partitions: parts})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetPartitions()
	}
	other := meta.NewTopicID()
	got := sizes(
		&logv1.DescribeSizesPartition{Topic: "sz", TopicId: topic.ID[:], Partition: 0},
		&logv1.DescribeSizesPartition{Topic: "sz", Partition: 1},
		&logv1.DescribeSizesPartition{Topic: "sz", Partition: 5},
		&logv1.DescribeSizesPartition{Topic: "sz", TopicId: other[:], Partition: 0},
		&logv1.DescribeSizesPartition{Topic: "missing", Partition: 0},
	)
	want := []struct {
		part int32
		code *kerr.Error
		size int64
	}{{0, nil, lens[0] + lens[1]}, {1, nil, 0}, {5, kerr.UnknownTopicOrPartition, -1}, {0, kerr.UnknownTopicID, -1}, {0, kerr.UnknownTopicOrPartition, -1}}
	if len(got) != len(want) {
		t.Fatalf("%d results for %d partitions: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		r := got[i]
		if r.Partition != w.part || r.ErrorCode != int32(code(w.code)) || r.SizeBytes != w.size {
			t.Fatalf("result %d: %+v, want partition %d error %v size %d", i, r, w.part, w.code, w.size)
		}
		if w.code == nil && r.StorageMode != string(meta.StorageLocal) {
			t.Fatalf("result %d: storage mode %q", i, r.StorageMode)
		}
	}
	// Empty: every led partition, sorted. Partition 1 may still be opening.
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := sizes()
		if len(all) == 2 && all[0].Partition == 0 && all[1].Partition == 1 &&
			all[0].SizeBytes == lens[0]+lens[1] && all[1].SizeBytes == 0 && all[0].Topic == "sz" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("all led partitions: %+v", all)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The first batch's segment goes.
	dr, err := c.DeleteRecords(ctx, &logv1.DeleteRecordsRequest{Partitions: []*logv1.DeleteRecordsPartition{{Topic: "sz", Partition: 0, Offset: 1}}})
	if err != nil || dr.Partitions[0].ErrorCode != 0 {
		t.Fatalf("delete records: %v %+v", err, dr)
	}
	if r := sizes(&logv1.DescribeSizesPartition{Topic: "sz", Partition: 0})[0]; r.SizeBytes != lens[1] {
		t.Fatalf("after DeleteRecords: %+v, want size %d", r, lens[1])
	}
}

func code(e *kerr.Error) int16 {
	if e == nil {
		return 0
	}
	return e.Code
}
