package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/services/cluster"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

// TestBadInput sends what a broken or hostile client might, and checks each
// gets the Kafka error a real client expects (or a closed connection for
// garbage) while the server keeps serving everyone else.
func TestBadInput(t *testing.T) {
	s := cluster.StartAllInOne(t, cluster.WithoutAutoCreate())
	addr := s.KafkaAddr()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A healthy client, checked after every abuse.
	healthy := newClient(t, addr)
	stillServing := func(what string) {
		t.Helper()
		req := kmsg.NewPtrApiVersionsRequest()
		if _, err := req.RequestWith(ctx, healthy); err != nil {
			t.Fatalf("after %s the server stopped serving others: %v", what, err)
		}
	}

	t.Run("garbage frame", func(t *testing.T) {
		r := dialRaw(t, addr)
		_ = r.writeRaw([]byte{0, 0, 0, 3, 1, 2, 3})
		r.expectClosed()
		stillServing("garbage")
	})
	t.Run("negative frame size", func(t *testing.T) {
		r := dialRaw(t, addr)
		_ = r.writeRaw(binary.BigEndian.AppendUint32(nil, 0xfffffff0))
		r.expectClosed()
		stillServing("negative size")
	})
	t.Run("oversized frame", func(t *testing.T) {
		r := dialRaw(t, addr)
		_ = r.writeRaw(binary.BigEndian.AppendUint32(nil, 1<<30))
		r.expectClosed()
		stillServing("oversized frame")
	})
	t.Run("unknown api key", func(t *testing.T) {
		r := dialRaw(t, addr)
		_ = r.frame(9999, 0, false, nil)
		r.expectClosed()
		stillServing("unknown key")
	})
	t.Run("unsupported ApiVersions version", func(t *testing.T) {
		r := dialRaw(t, addr)
		_ = r.frame(18, 99, false, nil)
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.SetVersion(0)
		if err := r.recv(resp); err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) == 0 {
			t.Fatalf("error %d with %d keys, want UNSUPPORTED_VERSION and the supported list", resp.ErrorCode, len(resp.ApiKeys))
		}
	})
	t.Run("unsupported produce version", func(t *testing.T) {
		r := dialRaw(t, addr)
		_ = r.frame(0, 99, false, nil)
		r.expectClosed()
		stillServing("unsupported version")
	})
	t.Run("invalid topic name", func(t *testing.T) {
		r := dialRaw(t, addr)
		req := kmsg.NewPtrCreateTopicsRequest()
		req.SetVersion(5)
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "bad/name", 1, 1
		req.Topics = append(req.Topics, rt)
		resp := r.roundTrip(req).(*kmsg.CreateTopicsResponse)
		if got := resp.Topics[0].ErrorCode; got != kerr.InvalidTopicException.Code {
			t.Fatalf("error %d, want INVALID_TOPIC_EXCEPTION (%d)", got, kerr.InvalidTopicException.Code)
		}
	})

	// A real topic for the produce and fetch cases.
	r := dialRaw(t, addr)
	create := kmsg.NewPtrCreateTopicsRequest()
	create.SetVersion(5)
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "bad-input", 1, 1
	create.Topics = append(create.Topics, ct)
	if resp := r.roundTrip(create).(*kmsg.CreateTopicsResponse); resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create: %d", resp.Topics[0].ErrorCode)
	}
	waitForServing(ctx, t, healthy, "bad-input")

	produce := func(topic string, batch []byte) int16 {
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(7)
		req.Acks, req.TimeoutMillis = -1, 10000
		pt := kmsg.NewProduceRequestTopic()
		pt.Topic = topic
		pp := kmsg.NewProduceRequestTopicPartition()
		pp.Records = batch
		pt.Partitions = append(pt.Partitions, pp)
		req.Topics = append(req.Topics, pt)
		for attempt := 0; ; attempt++ {
			resp := r.roundTrip(req).(*kmsg.ProduceResponse)
			code := resp.Topics[0].Partitions[0].ErrorCode
			// The log service opens a new partition moments after etcd
			// records it; until then the answer is retriable.
			if code != kerr.NotLeaderForPartition.Code || attempt == 100 {
				return code
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	good := recbatchtest.Build(recbatchtest.Values(time.Now().UnixMilli(), "a", "b"))

	t.Run("produce to missing topic with auto-create off", func(t *testing.T) {
		if got := produce("no-such-topic", good); got != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("error %d, want UNKNOWN_TOPIC_OR_PARTITION", got)
		}
		md := kmsg.NewPtrMetadataRequest()
		md.SetVersion(9)
		mt := kmsg.NewMetadataRequestTopic()
		name := "no-such-topic"
		mt.Topic = &name
		md.Topics = append(md.Topics, mt)
		md.AllowAutoTopicCreation = true
		resp := r.roundTrip(md).(*kmsg.MetadataResponse)
		if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("metadata with auto-create off: %+v", resp.Topics)
		}
	})
	t.Run("corrupt batch", func(t *testing.T) {
		bad := append([]byte(nil), good...)
		bad[len(bad)-1] ^= 0xff
		if got := produce("bad-input", bad); got != kerr.CorruptMessage.Code {
			t.Fatalf("error %d, want CORRUPT_MESSAGE", got)
		}
	})
	t.Run("batch larger than max.message.bytes", func(t *testing.T) {
		big := recbatchtest.Values(1, string(make([]byte, 1100000)))
		if got := produce("bad-input", recbatchtest.Build(big)); got != kerr.MessageTooLarge.Code {
			t.Fatalf("error %d, want MESSAGE_TOO_LARGE", got)
		}
	})
	t.Run("fetch out of range", func(t *testing.T) {
		if got := produce("bad-input", good); got != 0 {
			t.Fatalf("valid produce failed: %d", got)
		}
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(11)
		req.MaxWaitMillis, req.MaxBytes, req.MinBytes = 100, 1<<20, 1
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = "bad-input"
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = 1000, 1<<20, -1
		ft.Partitions = append(ft.Partitions, fp)
		req.Topics = append(req.Topics, ft)
		resp := r.roundTrip(req).(*kmsg.FetchResponse)
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != kerr.OffsetOutOfRange.Code || p.HighWatermark != 2 {
			t.Fatalf("error %d hwm %d, want OFFSET_OUT_OF_RANGE and hwm 2", p.ErrorCode, p.HighWatermark)
		}
	})
	stillServing("everything")
}

// waitForServing polls until every partition of topic has a leader in
// Metadata and that leader's log service answers for it. The gateway's
// metadata cache and the log service's are fed by separate etcd watches,
// so the log service may still call a just-created topic unknown
// (UNKNOWN_TOPIC_OR_PARTITION, which clients retry) after Metadata lists
// it; a raw request sent then would fail for that reason rather than the
// one under test.
func waitForServing(ctx context.Context, t testing.TB, cl *kgo.Client, topic string) {
	t.Helper()
	for {
		err := servesAll(ctx, cl, topic)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("topic %s is not served: %v", topic, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// servesAll is nil once Metadata gives every partition of topic a leader
// and ListOffsets answers every one without error.
func servesAll(ctx context.Context, cl *kgo.Client, topic string) error {
	req := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = &topic
	req.Topics = append(req.Topics, mt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if len(resp.Topics) != 1 {
		return fmt.Errorf("metadata answered %d topics", len(resp.Topics))
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		return err
	}
	lo := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 0 || p.Leader < 0 {
			return fmt.Errorf("partition %d: error %d, leader %d", p.Partition, p.ErrorCode, p.Leader)
		}
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition, lp.Timestamp = p.Partition, -1
		lt.Partitions = append(lt.Partitions, lp)
	}
	lo.Topics = append(lo.Topics, lt)
	offs, err := lo.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, rt := range offs.Topics {
		for _, p := range rt.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("partition %d: %w", p.Partition, err)
			}
		}
	}
	return nil
}
