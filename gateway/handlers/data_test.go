package handlers_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/gateway/internal/kafkatest"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The data path's own decisions, with no log service running: routing
// errors, batch shape checks, fetch-session answers. The log-service node
// "log-1" is registered but nothing listens at its address, so forwarded
// calls fail the way they do when a node dies. Successful produce and fetch
// are covered end to end in services/ with a real logsvc.
func TestDataPathWithoutLogService(t *testing.T) {
	c := startCluster(t)
	c.mustCreate(c.auto, "data", 2)
	t.Run("Produce", c.testProduceErrors)
	t.Run("ProduceAcksZero", c.testProduceAcksZero)
	t.Run("FetchSessions", c.testFetchSessions)
	t.Run("Fetch", c.testFetchErrors)
	t.Run("ListOffsets", c.testListOffsetsErrors)
	t.Run("OffsetForLeaderEpoch", c.testOffsetForLeaderEpochErrors)
}

func produceReq(version, acks int16, topic string, partition int32, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = version, acks, 5000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: partition, Records: records}}}}
	return req
}

func (c *cluster) produce(req *kmsg.ProduceRequest) kmsg.ProduceResponseTopicPartition {
	c.t.Helper()
	return c.raw(c.auto, req).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
}

func (c *cluster) testProduceErrors(t *testing.T) {
	batch := recbatchtest.Build(recbatchtest.Values(time.Now().UnixMilli(), "a", "b"))

	// Produce never auto-creates, even on a gateway that auto-creates on Metadata.
	wantCode(t, "missing topic", c.produce(produceReq(11, -1, "produce-missing", 0, batch)).ErrorCode, kerr.UnknownTopicOrPartition)
	if _, err := c.store.GetTopic(context.Background(), "produce-missing"); !errors.Is(err, meta.ErrTopicNotFound) {
		t.Fatalf("produce created the topic: %v", err)
	}
	wantCode(t, "missing partition", c.produce(produceReq(11, -1, "data", 7, batch)).ErrorCode, kerr.UnknownTopicOrPartition)
	wantCode(t, "bad name", c.produce(produceReq(11, -1, "da ta", 0, batch)).ErrorCode, kerr.InvalidTopicException)
	wantCode(t, "acks 2", c.produce(produceReq(11, 2, "data", 0, batch)).ErrorCode, kerr.InvalidRequiredAcks)

	// Batch shape.
	wantCode(t, "garbage", c.produce(produceReq(11, -1, "data", 0, []byte("not a batch"))).ErrorCode, kerr.CorruptMessage)
	wantCode(t, "no records", c.produce(produceReq(11, -1, "data", 0, nil)).ErrorCode, kerr.InvalidRecord)
	two := append(append([]byte{}, batch...), batch...)
	wantCode(t, "two batches", c.produce(produceReq(11, -1, "data", 0, two)).ErrorCode, kerr.InvalidRecord)
	magic1 := append([]byte{}, batch...)
	magic1[16] = 1
	wantCode(t, "magic 1", c.produce(produceReq(11, -1, "data", 0, magic1)).ErrorCode, kerr.InvalidRecord)
	zstd := append([]byte{}, batch...)
	binary.BigEndian.PutUint16(zstd[21:], 4) // attributes: zstd
	txn := append([]byte{}, batch...)
	binary.BigEndian.PutUint16(txn[21:], 0x10) // attributes: transactional
	wantCode(t, "transactional batch without a transactional id", c.produce(produceReq(11, -1, "data", 0, txn)).ErrorCode, kerr.InvalidRecord)
	txnID := produceReq(11, -1, "data", 0, txn)
	txnID.TransactionID = kmsg.StringPtr("t1")
	wantCode(t, "unknown transactional id", c.produce(txnID).ErrorCode, kerr.InvalidProducerIDMapping)
	wantCode(t, "zstd before v7", c.produce(produceReq(6, -1, "data", 0, zstd)).ErrorCode, kerr.UnsupportedCompressionType)

	// A well-formed batch for a live-registered but unreachable leader.
	start := time.Now()
	sp := c.produce(produceReq(11, -1, "data", 1, batch))
	wantCode(t, "dead leader", sp.ErrorCode, kerr.NotLeaderForPartition)
	if sp.BaseOffset != -1 || !strings.Contains(deref(sp.ErrorMessage), c.deadLogAddr) {
		t.Fatalf("dead leader: base offset %d, message %q", sp.BaseOffset, deref(sp.ErrorMessage))
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("dead leader answered after %v; a refused connection should fail fast", d)
	}
}

func (c *cluster) testProduceAcksZero(t *testing.T) {
	batch := recbatchtest.Build(recbatchtest.Values(time.Now().UnixMilli(), "x"))
	conn := kafkatest.Dial(t, c.auto.Addr().String())
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 12
	ids := conn.Send(produceReq(11, 0, "data", 0, batch), md)
	if corr, _ := conn.Read(md); corr != ids[1] {
		t.Fatalf("first response has correlation id %d; acks=0 produce %d must not be answered", corr, ids[0])
	}
}

func fetchReq(version int16, sessionEpoch int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = version, -1, 5000, 1, 1<<20
	req.SessionEpoch = sessionEpoch
	return req
}

func fetchTopic(name string, id [16]byte, partition int32) kmsg.FetchRequestTopic {
	p := kmsg.NewFetchRequestTopicPartition()
	p.Partition, p.PartitionMaxBytes = partition, 1<<20
	return kmsg.FetchRequestTopic{Topic: name, TopicID: id, Partitions: []kmsg.FetchRequestTopicPartition{p}}
}

func (c *cluster) testFetchSessions(t *testing.T) {
	incremental := fetchReq(12, 1)
	incremental.SessionID = 12345
	incremental.Topics = []kmsg.FetchRequestTopic{fetchTopic("data", [16]byte{}, 0)}
	resp := c.raw(c.auto, incremental).(*kmsg.FetchResponse)
	wantCode(t, "incremental fetch", resp.ErrorCode, kerr.FetchSessionIDNotFound)
	if len(resp.Topics) != 0 {
		t.Fatal("session error carries partitions")
	}
	wantCode(t, "epoch -2", c.raw(c.auto, fetchReq(12, -2)).(*kmsg.FetchResponse).ErrorCode, kerr.InvalidFetchSessionEpoch)
	// Asking for a new session (epoch 0) gets a full, sessionless answer.
	newSession := fetchReq(12, 0)
	newSession.Topics = []kmsg.FetchRequestTopic{fetchTopic("fetch-missing", [16]byte{}, 0)}
	resp = c.raw(c.auto, newSession).(*kmsg.FetchResponse)
	wantCode(t, "new session", resp.ErrorCode, nil)
	if resp.SessionID != 0 || len(resp.Topics) != 1 {
		t.Fatalf("session id %d, %d topics; want 0 and the full answer", resp.SessionID, len(resp.Topics))
	}
}

func (c *cluster) testFetchErrors(t *testing.T) {
	id := c.metadata(c.auto, []string{"data"}).Topics[0].TopicID
	byName := fetchReq(12, -1)
	byName.Topics = []kmsg.FetchRequestTopic{fetchTopic("fetch-missing", [16]byte{}, 0), fetchTopic("data", [16]byte{}, 9), fetchTopic("data", [16]byte{}, 0)}
	start := time.Now()
	resp := c.raw(c.auto, byName).(*kmsg.FetchResponse)
	wantCode(t, "missing topic", resp.Topics[0].Partitions[0].ErrorCode, kerr.UnknownTopicOrPartition)
	wantCode(t, "missing partition", resp.Topics[1].Partitions[0].ErrorCode, kerr.UnknownTopicOrPartition)
	wantCode(t, "dead leader", resp.Topics[2].Partitions[0].ErrorCode, kerr.NotLeaderForPartition)
	if p := resp.Topics[2].Partitions[0]; p.HighWatermark != -1 || p.RecordBatches == nil {
		t.Fatalf("failed partition: hwm %d, records %v", p.HighWatermark, p.RecordBatches)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("fetch with errors took %v; errors must complete a fetch at once", d)
	}

	byID := fetchReq(13, -1)
	byID.Topics = []kmsg.FetchRequestTopic{fetchTopic("", [16]byte{9, 9}, 0), fetchTopic("", id, 1)}
	resp = c.raw(c.auto, byID).(*kmsg.FetchResponse)
	wantCode(t, "unknown topic id", resp.Topics[0].Partitions[0].ErrorCode, kerr.UnknownTopicID)
	if resp.Topics[1].TopicID != id {
		t.Fatalf("v13 answer lost the topic id")
	}
	wantCode(t, "known id, dead leader", resp.Topics[1].Partitions[0].ErrorCode, kerr.NotLeaderForPartition)
}

func (c *cluster) testListOffsetsErrors(t *testing.T) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.Version, req.ReplicaID = 6, -1
	part := func(p int32, ts int64) kmsg.ListOffsetsRequestTopicPartition {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, ts
		return rp
	}
	req.Topics = []kmsg.ListOffsetsRequestTopic{
		{Topic: "data", Partitions: []kmsg.ListOffsetsRequestTopicPartition{part(0, -1), part(1, -3), part(5, -2)}},
		{Topic: "offsets-missing", Partitions: []kmsg.ListOffsetsRequestTopicPartition{part(0, -1)}},
	}
	resp := c.raw(c.auto, req).(*kmsg.ListOffsetsResponse)
	wantCode(t, "dead leader", resp.Topics[0].Partitions[0].ErrorCode, kerr.NotLeaderForPartition)
	wantCode(t, "timestamp -3 before v7", resp.Topics[0].Partitions[1].ErrorCode, kerr.InvalidRequest)
	wantCode(t, "missing partition", resp.Topics[0].Partitions[2].ErrorCode, kerr.UnknownTopicOrPartition)
	wantCode(t, "missing topic", resp.Topics[1].Partitions[0].ErrorCode, kerr.UnknownTopicOrPartition)
	if p := resp.Topics[0].Partitions[0]; p.Offset != -1 || p.Timestamp != -1 {
		t.Fatalf("failed lookup answered offset %d timestamp %d", p.Offset, p.Timestamp)
	}
}

func epochReq(version int16, replicaID int32, topics ...kmsg.OffsetForLeaderEpochRequestTopic) *kmsg.OffsetForLeaderEpochRequest {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.Version, req.ReplicaID, req.Topics = version, replicaID, topics
	return req
}

func epochTopic(name string, partitions ...int32) kmsg.OffsetForLeaderEpochRequestTopic {
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = name
	for _, p := range partitions {
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = p, 0, 0
		rt.Partitions = append(rt.Partitions, rp)
	}
	return rt
}

func (c *cluster) testOffsetForLeaderEpochErrors(t *testing.T) {
	for v := int16(0); v <= 4; v++ {
		what := func(s string) string { return fmt.Sprintf("v%d %s", v, s) }
		resp := c.raw(c.auto, epochReq(v, -1,
			epochTopic("data", 0, 9), epochTopic("epoch-missing", 0), epochTopic("da ta", 0),
		)).(*kmsg.OffsetForLeaderEpochResponse)
		if len(resp.Topics) != 3 || len(resp.Topics[0].Partitions) != 2 || resp.Topics[0].Topic != "data" || resp.Topics[0].Partitions[1].Partition != 9 {
			t.Fatalf("v%d: answer does not mirror the request: %+v", v, resp.Topics)
		}
		wantCode(t, what("dead leader"), resp.Topics[0].Partitions[0].ErrorCode, kerr.NotLeaderForPartition)
		wantCode(t, what("missing partition"), resp.Topics[0].Partitions[1].ErrorCode, kerr.UnknownTopicOrPartition)
		wantCode(t, what("missing topic"), resp.Topics[1].Partitions[0].ErrorCode, kerr.UnknownTopicOrPartition)
		wantCode(t, what("bad name"), resp.Topics[2].Partitions[0].ErrorCode, kerr.InvalidTopicException)
		for _, st := range resp.Topics {
			for _, sp := range st.Partitions {
				if sp.LeaderEpoch != -1 || sp.EndOffset != -1 {
					t.Fatalf("v%d: failed partition %s/%d answered epoch %d end %d", v, st.Topic, sp.Partition, sp.LeaderEpoch, sp.EndOffset)
				}
			}
		}
	}
	// Never auto-creates, even on a gateway that auto-creates on Metadata.
	if _, err := c.store.GetTopic(context.Background(), "epoch-missing"); !errors.Is(err, meta.ErrTopicNotFound) {
		t.Fatalf("offset for leader epoch created the topic: %v", err)
	}

	// A follower's request is refused whole; the replica id exists only
	// from v3, so an older request carrying one is a consumer's.
	resp := c.raw(c.auto, epochReq(4, 1, epochTopic("data", 0), epochTopic("epoch-missing", 0))).(*kmsg.OffsetForLeaderEpochResponse)
	wantCode(t, "follower, dead leader", resp.Topics[0].Partitions[0].ErrorCode, kerr.InvalidRequest)
	wantCode(t, "follower, missing topic", resp.Topics[1].Partitions[0].ErrorCode, kerr.InvalidRequest)
	resp = c.raw(c.auto, epochReq(2, 1, epochTopic("data", 0))).(*kmsg.OffsetForLeaderEpochResponse)
	wantCode(t, "v2 ignores replica id", resp.Topics[0].Partitions[0].ErrorCode, kerr.NotLeaderForPartition)
}
