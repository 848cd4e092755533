package handlers

import (
	"context"
	"time"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteRecords: v0-2
//
// Behaviour:
// * Each partition's log start offset moves up to Offset (-1: the high
//   watermark), as Kafka's DeleteRecords does on the leader: records below
//   it can no longer be fetched (OFFSET_OUT_OF_RANGE, so consumers apply
//   their auto.offset.reset), ListOffsets earliest answers it, and storage
//   wholly below it is freed (local: whole segments; diskless: manifest
//   entries, whose objects the garbage collector then removes). The new
//   start may lie inside a batch; a fetch there returns the whole batch,
//   and clients skip the records below their offset. LowWatermark is the
//   log start afterwards. The start is durable before the answer (local: a
//   checkpoint file in the partition directory; diskless: etcd), so it
//   survives restarts and leader changes.
// * Offset above the high watermark, or negative other than -1, is
//   OFFSET_OUT_OF_RANGE (the latter checked here without a call). An
//   offset at or below the current log start changes nothing and answers
//   the current start.
// * Partitions are grouped by leading log-service node and resolved with
//   one LogService.DeleteRecords per node, in parallel; routing errors as
//   in ListOffsets (UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC_EXCEPTION,
//   NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT). The node checks that it
//   still leads the partition before changing it. Failed partitions answer
//   LowWatermark -1.
// * TimeoutMillis bounds the calls (<= 0: deleteRecordsTimeout).
//
// Version notes:
// * v1: same as v0 (throttle after response); v2: flexible.

func init() { register(21, 0, 2, false, (*Handlers).handleDeleteRecords) }

const deleteRecordsTimeout = 30 * time.Second

type deleteRecordsCall = nodeCall[*logv1.DeleteRecordsRequest, *kmsg.DeleteRecordsResponseTopicPartition]

func (h *Handlers) handleDeleteRecords(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.DeleteRecordsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	calls := map[string]*deleteRecordsCall{}
	resp.Topics = make([]kmsg.DeleteRecordsResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		rt := &req.Topics[ti]
		st := &resp.Topics[ti]
		*st = kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		topic, exists := h.cache.Topic(rt.Topic)
		nameErr, _ := topicNameError(rt.Topic)
		st.Partitions = make([]kmsg.DeleteRecordsResponseTopicPartition, len(rt.Partitions))
		for pi := range rt.Partitions {
			rp := &rt.Partitions[pi]
			sp := &st.Partitions[pi]
			*sp = kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition, sp.LowWatermark = rp.Partition, -1
			switch {
			case nameErr != nil:
				sp.ErrorCode = nameErr.Code
				continue
			case !exists:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			case rp.Offset < -1:
				sp.ErrorCode = kerr.OffsetOutOfRange.Code
				continue
			}
			_, node, ke, _ := h.route(rt.Topic, rp.Partition)
			if ke != nil {
				sp.ErrorCode = ke.Code
				continue
			}
			c := calls[node.Addr]
			if c == nil {
				c = &deleteRecordsCall{addr: node.Addr, req: &logv1.DeleteRecordsRequest{}}
				calls[node.Addr] = c
			}
			c.req.Partitions = append(c.req.Partitions, &logv1.DeleteRecordsPartition{
				Topic: rt.Topic, TopicId: topic.ID[:], Partition: rp.Partition, Offset: rp.Offset,
			})
			c.dst = append(c.dst, sp)
		}
	}
	timeout := deleteRecordsTimeout
	if req.TimeoutMillis > 0 {
		timeout = time.Duration(req.TimeoutMillis) * time.Millisecond
	}
	rpcCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	forwardEach(rpcCtx, h, "delete records", calls,
		(*logv1.DeleteRecordsRequest).GetPartitions,
		func(ctx context.Context, cl logv1.LogServiceClient, r *logv1.DeleteRecordsRequest) ([]*logv1.DeleteRecordsPartitionResult, error) {
			resp, err := cl.DeleteRecords(ctx, r)
			return resp.GetPartitions(), err
		},
		func(sp *kmsg.DeleteRecordsResponseTopicPartition, code int16) { sp.ErrorCode = code },
		func(sp *kmsg.DeleteRecordsResponseTopicPartition, r *logv1.DeleteRecordsPartitionResult) {
			sp.LowWatermark = r.GetLowWatermark()
		})
	return resp, nil
}
