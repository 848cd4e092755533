package logrpc

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamline-dev/streamline/logsvc/partition"
	"github.com/streamline-dev/streamline/logsvc/storage/localstore"
	"github.com/streamline-dev/streamline/logsvc/storage/storagetest"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

// onePartition leads exactly one partition.
type onePartition struct{ p *partition.Partition }

func (o onePartition) Lookup(topic string, topicID []byte, n int32) (*partition.Partition, *kerr.Error) {
	t := o.p.Topic()
	if topic != t.Name || n != 0 {
		return nil, kerr.UnknownTopicOrPartition
	}
	if !TopicIDMatches(topicID, t) {
		return nil, kerr.UnknownTopicID
	}
	return o.p, nil
}

// ledAt opens a partition on a local engine at leader epoch 4 holding
// records 0-2.
func ledAt(t *testing.T) *partition.Partition {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := localstore.Open(localstore.Options{DataDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	spec := storagetest.Spec("t")
	lg, err := eng.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	p, err := partition.Open(partition.Config{Topic: spec.Topic, LeaderEpoch: 4, Log: lg, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r := p.Produce(ctx, recbatchtest.Build(recbatchtest.Values(1, "a", "b", "c"))); r.Err != nil {
		t.Fatal(r.Err)
	}
	return p
}

func TestOffsetForLeaderEpoch(t *testing.T) {
	p := ledAt(t)
	id := p.Topic().ID
	s := NewServer(onePartition{p})
	part := func(topic string, topicID []byte, n, current, epoch int32) *logv1.OffsetForLeaderEpochPartition {
		return &logv1.OffsetForLeaderEpochPartition{Topic: topic, TopicId: topicID, Partition: n, CurrentLeaderEpoch: current, LeaderEpoch: epoch}
	}
	other := meta.NewTopicID()
	cases := []struct {
		name      string
		req       *logv1.OffsetForLeaderEpochPartition
		wantErr   *kerr.Error
		epoch     int32
		endOffset int64
	}{
		{"current epoch", part("t", id[:], 0, 4, 4), nil, 4, 3},
		{"no fencing, current epoch", part("t", nil, 0, -1, 4), nil, 4, 3},
		{"older epoch than any written", part("t", id[:], 0, 4, 2), nil, 2, 0},
		{"newer than the leader", part("t", id[:], 0, -1, 5), nil, -1, -1},
		{"undefined epoch", part("t", id[:], 0, 4, -1), nil, -1, -1},
		{"client ahead", part("t", id[:], 0, 5, 4), kerr.UnknownLeaderEpoch, -1, -1},
		{"client behind", part("t", id[:], 0, 3, 3), kerr.FencedLeaderEpoch, -1, -1},
		{"unknown partition", part("t", id[:], 1, 4, 4), kerr.UnknownTopicOrPartition, -1, -1},
		{"other topic id", part("t", other[:], 0, 4, 4), kerr.UnknownTopicID, -1, -1},
	}
	req := &logv1.OffsetForLeaderEpochRequest{}
	for _, c := range cases {
		req.Partitions = append(req.Partitions, c.req)
	}
	resp, err := s.OffsetForLeaderEpoch(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetPartitions()) != len(cases) {
		t.Fatalf("%d results for %d partitions", len(resp.GetPartitions()), len(cases))
	}
	for i, c := range cases {
		r := resp.GetPartitions()[i]
		var want int32
		if c.wantErr != nil {
			want = int32(c.wantErr.Code)
		}
		if r.GetTopic() != c.req.GetTopic() || r.GetPartition() != c.req.GetPartition() {
			t.Errorf("%s: answered %s/%d", c.name, r.GetTopic(), r.GetPartition())
		}
		if r.GetErrorCode() != want || r.GetLeaderEpoch() != c.epoch || r.GetEndOffset() != c.endOffset {
			t.Errorf("%s: error %v epoch %d end %d (%q), want %v %d %d", c.name, kerr.ErrorForCode(int16(r.GetErrorCode())),
				r.GetLeaderEpoch(), r.GetEndOffset(), r.GetErrorMessage(), c.wantErr, c.epoch, c.endOffset)
		}
	}
}
