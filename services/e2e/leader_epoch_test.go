package e2e

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestOffsetForLeaderEpoch checks KIP-101/KIP-320 end to end: the leader
// epoch Metadata reports is the one stamped on stored batches, raw
// OffsetForLeaderEpoch lookups answer from the partition's epoch history
// through the gateway and logsvc, and a franz-go consumer that believes it
// read past the log end of its epoch detects the truncation and resumes
// at the real end.
func TestOffsetForLeaderEpoch(t *testing.T) {
	s := cluster.StartAllInOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const topic, n = "leader-epoch", 7
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	if resp, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	prod := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(topic))
	for i := range n {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	raw := dialRaw(t, s.KafkaAddr())
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 12
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr(topic)}}
	mresp := raw.roundTrip(md).(*kmsg.MetadataResponse)
	if len(mresp.Topics) != 1 || len(mresp.Topics[0].Partitions) != 1 || mresp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("metadata: %+v", mresp.Topics)
	}
	epoch := mresp.Topics[0].Partitions[0].LeaderEpoch
	if epoch < 0 {
		t.Fatalf("metadata v12 reports leader epoch %d", epoch)
	}

	// The stored batches carry the epoch Metadata reports.
	cons := newClient(t, s.KafkaAddr(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}))
	for got := 0; got < n; {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.LeaderEpoch != epoch || r.Offset != int64(got) {
				t.Fatalf("record at offset %d has leader epoch %d; want offset %d, epoch %d (metadata)", r.Offset, r.LeaderEpoch, got, epoch)
			}
			got++
		})
	}
	cons.Close()

	type lookup struct {
		name             string
		current, request int32
		wantErr          *kerr.Error
		wantEpoch        int32
		wantEnd          int64
	}
	// The all-in-one partition has only ever had one leader epoch, so the
	// one before it (-1 for the initial epoch 0) is unknown; were a
	// controller to have started it at a later epoch, the earlier one
	// would end where the history begins (KIP-101: offset 0).
	older := lookup{"older epoch", epoch, epoch - 1, nil, -1, -1}
	if epoch > 0 {
		older.wantEpoch, older.wantEnd = epoch-1, 0
	}
	lookups := []lookup{
		{"current epoch", epoch, epoch, nil, epoch, n},
		{"current epoch unfenced", -1, epoch, nil, epoch, n},
		older,
		{"future epoch", epoch, epoch + 1, nil, -1, -1},
		{"client ahead of the leader", epoch + 1, epoch, kerr.UnknownLeaderEpoch, -1, -1},
	}
	if epoch > 0 {
		lookups = append(lookups, lookup{"client behind the leader", epoch - 1, epoch - 1, kerr.FencedLeaderEpoch, -1, -1})
	}
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.Version, req.ReplicaID = 4, -1
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = topic
	for _, l := range lookups {
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = 0, l.current, l.request
		rt.Partitions = append(rt.Partitions, rp)
	}
	missing := kmsg.NewOffsetForLeaderEpochRequestTopic()
	missing.Topic = "leader-epoch-missing"
	missing.Partitions = []kmsg.OffsetForLeaderEpochRequestTopicPartition{rt.Partitions[0]}
	req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{rt, missing}
	resp := raw.roundTrip(req).(*kmsg.OffsetForLeaderEpochResponse)
	if len(resp.Topics) != 2 || resp.Topics[0].Topic != topic || len(resp.Topics[0].Partitions) != len(lookups) {
		t.Fatalf("answer does not mirror the request: %+v", resp.Topics)
	}
	for i, l := range lookups {
		p := resp.Topics[0].Partitions[i]
		var wantCode int16
		if l.wantErr != nil {
			wantCode = l.wantErr.Code
		}
		if p.Partition != 0 || p.ErrorCode != wantCode || p.LeaderEpoch != l.wantEpoch || p.EndOffset != l.wantEnd {
			t.Errorf("%s (current %d, epoch %d): error %v epoch %d end %d; want %v %d %d", l.name, l.current, l.request,
				kerr.ErrorForCode(p.ErrorCode), p.LeaderEpoch, p.EndOffset, l.wantErr, l.wantEpoch, l.wantEnd)
		}
	}
	if p := resp.Topics[1].Partitions[0]; p.ErrorCode != kerr.UnknownTopicOrPartition.Code || p.EndOffset != -1 {
		t.Errorf("missing topic: error %v end %d", kerr.ErrorForCode(p.ErrorCode), p.EndOffset)
	}
	// v0 has neither epochs in the answer nor fencing.
	req.Version = 0
	req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: topic, Partitions: rt.Partitions[:1]}}
	if p := raw.roundTrip(req).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.EndOffset != n {
		t.Errorf("v0: error %v end %d, want %d", kerr.ErrorForCode(p.ErrorCode), p.EndOffset, n)
	}

	// A consumer that believes it read to offset n+2 in this epoch (as one
	// would after a leader change that lost records) validates its position
	// with OffsetForLeaderEpoch, reports the loss and resumes at the end.
	trunc := newClient(t, s.KafkaAddr(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		topic: {0: kgo.NewOffset().At(n + 2).WithEpoch(epoch)},
	}))
	var loss *kgo.ErrDataLoss
	for loss == nil {
		fs := trunc.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no data loss reported")
		}
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.As(err, &loss) {
				t.Fatalf("consume: %v", err)
			}
		})
		if fs.NumRecords() > 0 {
			t.Fatalf("%d records (first at offset %d) before the data loss was reported", fs.NumRecords(), fs.Records()[0].Offset)
		}
	}
	if loss.ConsumedTo != n+2 || loss.ResetTo != n || loss.ResetToEpoch != epoch {
		t.Fatalf("data loss %+v; want consumed to %d, reset to %d in epoch %d", *loss, n+2, n, epoch)
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for {
		fs := trunc.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume after the loss: %v", err)
		}
		if recs := fs.Records(); len(recs) > 0 {
			if r := recs[0]; r.Offset != n || string(r.Value) != "after" {
				t.Fatalf("resumed at offset %d (%q), want %d (\"after\")", r.Offset, r.Value, n)
			}
			break
		}
	}
}
