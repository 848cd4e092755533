package logsvc

import (
	"context"
	"testing"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"

	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
)

// TestProduceStreamKeepsStreamOrder sends many requests for one partition
// on one stream without waiting for answers: each must be appended in
// stream order (offsets increase with the request id), and every request
// is answered exactly once with its own id.
func TestProduceStreamKeepsStreamOrder(t *testing.T) {
	e := metatest.Start(t)
	n := startNode(t, e, t.TempDir())
	store := meta.NewStore(e.Client, "")
	topic := &meta.Topic{Name: "s", Partitions: 1}
	if _, err := store.CreateTopic(context.Background(), topic, []meta.LogNode{{ID: n.ID(), Addr: n.Addr()}}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, n.Addr())
	produceUntilLed(t, c, *topic, recbatchtest.Build(recbatchtest.Values(1, "first")))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const count = 200
	for id := uint64(1); id <= count; id++ {
		s := recbatchtest.Values(int64(id), "a", "b")
		s.ProducerID, s.ProducerEpoch, s.BaseSequence = 42, 0, int32(2*(id-1))
		req := &logv1.ProduceRequest{Acks: -1, TimeoutMs: 10000, Partitions: []*logv1.ProducePartition{
			{Topic: "s", TopicId: topic.ID[:], Partition: 0, Records: recbatchtest.Build(s)},
		}}
		if err := stream.Send(&logv1.ProduceStreamRequest{Id: id, Request: req}); err != nil {
			t.Fatal(err)
		}
	}
	offsets := map[uint64]int64{}
	for len(offsets) < count {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		r := resp.GetResponse().GetPartitions()[0]
		if r.ErrorCode != 0 {
			t.Fatalf("request %d: error %d %s", resp.Id, r.ErrorCode, r.ErrorMessage)
		}
		if _, dup := offsets[resp.Id]; dup {
			t.Fatalf("request %d answered twice", resp.Id)
		}
		offsets[resp.Id] = r.BaseOffset
	}
	// The idempotent sequences would be OUT_OF_ORDER if the node had
	// appended them in another order; check offsets too.
	for id := uint64(1); id <= count; id++ {
		if want := int64(1 + 2*(id-1)); offsets[id] != want {
			t.Fatalf("request %d at offset %d, want %d", id, offsets[id], want)
		}
	}
}
