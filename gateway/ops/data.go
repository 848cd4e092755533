package ops

import (
	"context"
	"sync"
	"time"

	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Data questions: offsets, sizes and DeleteRecords, answered by the
// log-service node leading each partition.

// Special timestamps of an OffsetQuery, as in Kafka's ListOffsets.
const (
	Latest   int64 = -1 // the high watermark (last stable offset for read_committed)
	Earliest int64 = -2 // the log start offset
)

// Default bounds of the data calls when the caller's context has none
// shorter (Kafka's default request.timeout.ms).
const dataCallTimeout = 30 * time.Second

// OffsetQuery asks for one partition's offset at Timestamp: Latest,
// Earliest, or the first offset whose timestamp is at least Timestamp.
type OffsetQuery struct {
	Topic              string
	Partition          int32
	Timestamp          int64
	CurrentLeaderEpoch int32 // -1: not checked
}

// ListedOffset answers an OffsetQuery: Offset, Timestamp and LeaderEpoch
// are -1 when Err is set.
type ListedOffset struct {
	Offset      int64
	Timestamp   int64
	LeaderEpoch int32
	Err         *kerr.Error
}

// RecordsDeletion moves one partition's log start up to Offset (-1: the
// high watermark).
type RecordsDeletion struct {
	Topic     string
	Partition int32
	Offset    int64
}

// DeletedRecords answers a RecordsDeletion: the log start afterwards, -1
// when Err is set.
type DeletedRecords struct {
	LowWatermark int64
	Err          *kerr.Error
}

// PartitionSize is one partition's stored size: local, its segment files;
// diskless, the byte lengths of its committed ranges in object storage.
// Size is -1 when Err is set (KAFKA_STORAGE_ERROR: its node is not live or
// did not answer; UNKNOWN_TOPIC_OR_PARTITION: deleted meanwhile).
type PartitionSize struct {
	Size int64
	Err  *kerr.Error
}

// nodeCall is the part of an operation bound for one log-service node:
// the LogService request and, in the same order as its partitions, the
// indexes of the answers its results fill.
type nodeCall[Req any] struct {
	addr string
	req  Req
	dst  []int
}

// enqueue adds answer i to the call for the node at addr, creating the
// call with newReq, and returns the call's request for the caller to add
// the partition to.
func enqueue[Req any](calls map[string]*nodeCall[Req], addr string, i int, newReq func() Req) Req {
	c := calls[addr]
	if c == nil {
		c = &nodeCall[Req]{addr: addr, req: newReq()}
		calls[addr] = c
	}
	c.dst = append(c.dst, i)
	return c.req
}

type sentPartition interface {
	GetTopic() string
	GetPartition() int32
}

type partitionResult interface {
	sentPartition
	GetErrorCode() int32
}

// forwardEach runs one unary LogService call per node in parallel and
// hands each node's results to apply, matched by position and checked by
// topic and partition (a mismatch is UNKNOWN_SERVER_ERROR). A failed call
// answers all its partitions with the Kafka error for the failure
// (RPCError); apply gets a nil result and that error.
func forwardEach[Req any, Sent sentPartition, Res partitionResult](
	ctx context.Context, o *Ops, what string, calls map[string]*nodeCall[Req],
	sent func(Req) []Sent,
	rpc func(context.Context, logv1.LogServiceClient, Req) ([]Res, error),
	apply func(i int, r Res, err *kerr.Error),
) {
	var wg sync.WaitGroup
	var mu sync.Mutex // apply writes the caller's answers
	for _, c := range calls {
		wg.Go(func() {
			cl, err := o.cfg.Logs.Client(c.addr)
			var results []Res
			if err == nil {
				results, err = rpc(ctx, cl, c.req)
			}
			mu.Lock()
			defer mu.Unlock()
			var zero Res
			if err != nil {
				o.log.Debug(what+" forward failed", "addr", c.addr, "err", err)
				for _, i := range c.dst {
					apply(i, zero, RPCError(err))
				}
				return
			}
			asked := sent(c.req)
			for k, i := range c.dst {
				if k >= len(results) || results[k].GetTopic() != asked[k].GetTopic() || results[k].GetPartition() != asked[k].GetPartition() {
					o.log.Error("log service answered "+what+" out of order", "addr", c.addr, "sent", len(c.dst), "got", len(results))
					apply(i, zero, kerr.UnknownServerError)
					continue
				}
				apply(i, results[k], codeError(results[k].GetErrorCode()))
			}
		})
	}
	wg.Wait()
}

// withDataTimeout bounds a data call by dataCallTimeout, or timeout when
// positive.
func withDataTimeout(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		timeout = dataCallTimeout
	}
	return context.WithTimeout(ctx, timeout)
}

// partitionOf checks a data question's topic and partition: a bad name is
// INVALID_TOPIC_EXCEPTION, an unknown topic or partition
// UNKNOWN_TOPIC_OR_PARTITION, a leader that is not live
// NOT_LEADER_OR_FOLLOWER.
func (o *Ops) partitionOf(topic string, partition int32) (meta.Topic, meta.LogNode, *kerr.Error) {
	if meta.ValidateTopicName(topic) != nil {
		return meta.Topic{}, meta.LogNode{}, kerr.InvalidTopicException
	}
	t, ok := o.cache.Topic(topic)
	if !ok {
		return t, meta.LogNode{}, kerr.UnknownTopicOrPartition
	}
	_, node, e := o.Route(topic, partition)
	if e != nil {
		return t, node, e.Code
	}
	return t, node, nil
}

// ListOffsets answers each query, in order. Queries are grouped by leading
// log-service node, one LogService.ListOffsets per node, in parallel.
// isolation is Kafka's isolation level (0 read_uncommitted, 1
// read_committed). A timestamp below Earliest is INVALID_REQUEST.
func (o *Ops) ListOffsets(ctx context.Context, isolation int8, qs []OffsetQuery) []ListedOffset {
	out := make([]ListedOffset, len(qs))
	calls := map[string]*nodeCall[*logv1.ListOffsetsRequest]{}
	for i, q := range qs {
		out[i] = ListedOffset{Offset: -1, Timestamp: -1, LeaderEpoch: -1}
		if q.Timestamp < Earliest {
			out[i].Err = kerr.InvalidRequest
			continue
		}
		t, node, ke := o.partitionOf(q.Topic, q.Partition)
		if ke != nil {
			out[i].Err = ke
			continue
		}
		r := enqueue(calls, node.Addr, i, func() *logv1.ListOffsetsRequest { return &logv1.ListOffsetsRequest{IsolationLevel: int32(isolation)} })
		r.Partitions = append(r.Partitions, &logv1.ListOffsetsPartition{
			Topic: q.Topic, TopicId: t.ID[:], Partition: q.Partition,
			Timestamp: q.Timestamp, CurrentLeaderEpoch: q.CurrentLeaderEpoch,
		})
	}
	ctx, cancel := withDataTimeout(ctx, 0)
	defer cancel()
	forwardEach(ctx, o, "list offsets", calls,
		(*logv1.ListOffsetsRequest).GetPartitions,
		func(ctx context.Context, cl logv1.LogServiceClient, r *logv1.ListOffsetsRequest) ([]*logv1.ListOffsetsPartitionResult, error) {
			resp, err := cl.ListOffsets(ctx, r)
			return resp.GetPartitions(), err
		},
		func(i int, r *logv1.ListOffsetsPartitionResult, err *kerr.Error) {
			if out[i].Err = err; err == nil {
				out[i].Offset, out[i].Timestamp, out[i].LeaderEpoch = r.GetOffset(), r.GetTimestamp(), r.GetLeaderEpoch()
			}
		})
	return out
}

// DeleteRecords moves each partition's log start offset up, as Kafka's
// DeleteRecords does on the leader (see handlers/21_delete_records.go for
// the semantics). An offset below -1 is OFFSET_OUT_OF_RANGE. timeout <= 0
// uses 30 s.
func (o *Ops) DeleteRecords(ctx context.Context, timeout time.Duration, ds []RecordsDeletion) []DeletedRecords {
	out := make([]DeletedRecords, len(ds))
	calls := map[string]*nodeCall[*logv1.DeleteRecordsRequest]{}
	for i, d := range ds {
		out[i].LowWatermark = -1
		t, node, ke := o.partitionOf(d.Topic, d.Partition)
		switch {
		case ke == kerr.InvalidTopicException, ke == kerr.UnknownTopicOrPartition:
			out[i].Err = ke
			continue
		case d.Offset < -1:
			out[i].Err = kerr.OffsetOutOfRange
			continue
		case ke != nil:
			out[i].Err = ke
			continue
		}
		r := enqueue(calls, node.Addr, i, func() *logv1.DeleteRecordsRequest { return &logv1.DeleteRecordsRequest{} })
		r.Partitions = append(r.Partitions, &logv1.DeleteRecordsPartition{
			Topic: d.Topic, TopicId: t.ID[:], Partition: d.Partition, Offset: d.Offset,
		})
	}
	ctx, cancel := withDataTimeout(ctx, timeout)
	defer cancel()
	forwardEach(ctx, o, "delete records", calls,
		(*logv1.DeleteRecordsRequest).GetPartitions,
		func(ctx context.Context, cl logv1.LogServiceClient, r *logv1.DeleteRecordsRequest) ([]*logv1.DeleteRecordsPartitionResult, error) {
			resp, err := cl.DeleteRecords(ctx, r)
			return resp.GetPartitions(), err
		},
		func(i int, r *logv1.DeleteRecordsPartitionResult, err *kerr.Error) {
			if out[i].Err = err; err == nil {
				out[i].LowWatermark = r.GetLowWatermark()
			}
		})
	return out
}

// TxnMarker ends one producer's transaction on one partition (an entry of
// Kafka's WriteTxnMarkers, which the transaction coordinator sends).
type TxnMarker struct {
	Topic            string
	Partition        int32
	ProducerID       int64
	ProducerEpoch    int16
	Commit           bool // false: abort
	CoordinatorEpoch int32
	// TransactionVersion is the transaction's (2: the producer epoch was
	// bumped to end it; see logv1.TxnMarker).
	TransactionVersion int16
}

// WriteTxnMarkers writes each marker through the log-service node leading
// its partition (LogService.WriteTxnMarkers, one call per node, in
// parallel) and answers each marker's error, in order: nil once the
// marker is durable. The topic is routed by name, with the id it has now
// (as Kafka's coordinator resolves a partition's leader when it sends). A
// bad name is INVALID_TOPIC_EXCEPTION, an unknown topic or partition
// UNKNOWN_TOPIC_OR_PARTITION, a leader that is not live or a failed call
// NOT_LEADER_OR_FOLLOWER, a deadline REQUEST_TIMED_OUT; the node's own
// errors (INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED,
// NOT_ENOUGH_REPLICAS, ...) pass through. timeout <= 0 uses 30 s.
func (o *Ops) WriteTxnMarkers(ctx context.Context, timeout time.Duration, ms []TxnMarker) []*kerr.Error {
	out := make([]*kerr.Error, len(ms))
	if timeout <= 0 {
		timeout = dataCallTimeout
	}
	calls := map[string]*nodeCall[*logv1.WriteTxnMarkersRequest]{}
	for i, m := range ms {
		t, node, ke := o.partitionOf(m.Topic, m.Partition)
		if ke != nil {
			out[i] = ke
			continue
		}
		r := enqueue(calls, node.Addr, i, func() *logv1.WriteTxnMarkersRequest {
			return &logv1.WriteTxnMarkersRequest{TimeoutMs: int32(timeout / time.Millisecond)}
		})
		r.Markers = append(r.Markers, &logv1.TxnMarker{
			Topic: m.Topic, TopicId: t.ID[:], Partition: m.Partition,
			ProducerId: m.ProducerID, ProducerEpoch: int32(m.ProducerEpoch),
			Commit: m.Commit, CoordinatorEpoch: m.CoordinatorEpoch, TransactionVersion: int32(m.TransactionVersion),
		})
	}
	// The node waits up to timeout for durability; the call may take a
	// little longer to answer that it timed out.
	ctx, cancel := withDataTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	forwardEach(ctx, o, "write txn markers", calls,
		(*logv1.WriteTxnMarkersRequest).GetMarkers,
		func(ctx context.Context, cl logv1.LogServiceClient, r *logv1.WriteTxnMarkersRequest) ([]*logv1.TxnMarkerResult, error) {
			resp, err := cl.WriteTxnMarkers(ctx, r)
			return resp.GetResults(), err
		},
		func(i int, _ *logv1.TxnMarkerResult, err *kerr.Error) { out[i] = err })
	return out
}

// PartitionSizes asks the log-service nodes leading parts for their sizes,
// one LogService.DescribeSizes per node, in parallel. A partition whose
// topic was deleted or re-created meanwhile is UNKNOWN_TOPIC_OR_PARTITION;
// one whose leader is not live, or whose node does not answer, is
// KAFKA_STORAGE_ERROR (Kafka's answer for an offline log dir).
func (o *Ops) PartitionSizes(ctx context.Context, parts []meta.Partition) []PartitionSize {
	out := make([]PartitionSize, len(parts))
	calls := map[string]*nodeCall[*logv1.DescribeSizesRequest]{}
	for i, p := range parts {
		out[i].Size = -1
		t, ok := o.cache.Topic(p.Topic)
		if !ok || t.ID != p.TopicID {
			out[i].Err = kerr.UnknownTopicOrPartition
			continue
		}
		node, live := o.cache.LogNode(p.Leader)
		if p.Leader == "" || !live {
			out[i].Err = kerr.KafkaStorageError
			continue
		}
		r := enqueue(calls, node.Addr, i, func() *logv1.DescribeSizesRequest { return &logv1.DescribeSizesRequest{} })
		r.Partitions = append(r.Partitions, &logv1.DescribeSizesPartition{Topic: p.Topic, TopicId: t.ID[:], Partition: p.Partition})
	}
	ctx, cancel := withDataTimeout(ctx, 0)
	defer cancel()
	forwardEach(ctx, o, "describe sizes", calls,
		(*logv1.DescribeSizesRequest).GetPartitions,
		func(ctx context.Context, cl logv1.LogServiceClient, r *logv1.DescribeSizesRequest) ([]*logv1.DescribeSizesPartitionResult, error) {
			resp, err := cl.DescribeSizes(ctx, r)
			return resp.GetPartitions(), err
		},
		func(i int, r *logv1.DescribeSizesPartitionResult, err *kerr.Error) {
			switch {
			case err == nil:
				out[i].Size = r.GetSizeBytes()
			case err == kerr.UnknownTopicOrPartition, err == kerr.UnknownTopicID:
				out[i].Err = kerr.UnknownTopicOrPartition
			default:
				out[i].Err = kerr.KafkaStorageError
			}
		})
	return out
}

// codeError is the Kafka error with code c, nil for 0; a code kerr does
// not know is UNKNOWN_SERVER_ERROR.
func codeError(c int32) *kerr.Error {
	if c == 0 {
		return nil
	}
	if ke, ok := kerr.ErrorForCode(int16(c)).(*kerr.Error); ok {
		return ke
	}
	return kerr.UnknownServerError
}

// EpochQuery asks where the records of LeaderEpoch end in one partition
// (Kafka's OffsetForLeaderEpoch).
type EpochQuery struct {
	Topic              string
	Partition          int32
	CurrentLeaderEpoch int32 // -1: not checked
	LeaderEpoch        int32
}

// EpochEnd answers an EpochQuery: -1 and -1 when Err is set.
type EpochEnd struct {
	LeaderEpoch int32
	EndOffset   int64
	Err         *kerr.Error
}

// OffsetsForLeaderEpochs answers each query, in order, from the leading
// nodes' leader-epoch histories, one call per node, in parallel.
func (o *Ops) OffsetsForLeaderEpochs(ctx context.Context, qs []EpochQuery) []EpochEnd {
	out := make([]EpochEnd, len(qs))
	calls := map[string]*nodeCall[*logv1.OffsetForLeaderEpochRequest]{}
	for i, q := range qs {
		out[i] = EpochEnd{LeaderEpoch: -1, EndOffset: -1}
		t, node, ke := o.partitionOf(q.Topic, q.Partition)
		if ke != nil {
			out[i].Err = ke
			continue
		}
		r := enqueue(calls, node.Addr, i, func() *logv1.OffsetForLeaderEpochRequest { return &logv1.OffsetForLeaderEpochRequest{} })
		r.Partitions = append(r.Partitions, &logv1.OffsetForLeaderEpochPartition{
			Topic: q.Topic, TopicId: t.ID[:], Partition: q.Partition,
			CurrentLeaderEpoch: q.CurrentLeaderEpoch, LeaderEpoch: q.LeaderEpoch,
		})
	}
	ctx, cancel := withDataTimeout(ctx, 0)
	defer cancel()
	forwardEach(ctx, o, "offset for leader epoch", calls,
		(*logv1.OffsetForLeaderEpochRequest).GetPartitions,
		func(ctx context.Context, cl logv1.LogServiceClient, r *logv1.OffsetForLeaderEpochRequest) ([]*logv1.OffsetForLeaderEpochPartitionResult, error) {
			resp, err := cl.OffsetForLeaderEpoch(ctx, r)
			return resp.GetPartitions(), err
		},
		func(i int, r *logv1.OffsetForLeaderEpochPartitionResult, err *kerr.Error) {
			if out[i].Err = err; err == nil {
				out[i].LeaderEpoch, out[i].EndOffset = r.GetLeaderEpoch(), r.GetEndOffset()
			}
		})
	return out
}
