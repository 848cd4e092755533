package handlers

import (
	"context"
	"time"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListOffsets: v1-6
//
// Behaviour:
// * Timestamp -1 is the latest offset (high watermark, or last stable
//   offset for read_committed), -2 the earliest, >= 0 the first offset
//   whose timestamp is at least that. Other negative values (-3, max
//   timestamp, needs v7) are INVALID_REQUEST: not retriable, so a client
//   does not spin on a lookup that can never succeed.
// * Partitions are grouped by leading log-service node and resolved with
//   one LogService.ListOffsets per node, in parallel; routing errors as in
//   Produce (UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER,
//   REQUEST_TIMED_OUT).
// * The request has no timeout field before v10, so the call is bounded by
//   listOffsetsTimeout (Kafka's default request.timeout.ms).
//
// Version notes:
// * v2: IsolationLevel; v4: CurrentLeaderEpoch (checked by logsvc),
//   LeaderEpoch in the answer; v6: flexible

func init() { register(2, 1, 6, false, (*Handlers).handleListOffsets) }

const listOffsetsTimeout = 30 * time.Second

type listOffsetsCall = nodeCall[*logv1.ListOffsetsRequest, *kmsg.ListOffsetsResponseTopicPartition]

func (h *Handlers) handleListOffsets(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	calls := map[string]*listOffsetsCall{}
	resp.Topics = make([]kmsg.ListOffsetsResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		rt := &req.Topics[ti]
		st := &resp.Topics[ti]
		*st = kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		topic, exists := h.cache.Topic(rt.Topic)
		nameErr, _ := topicNameError(rt.Topic)
		st.Partitions = make([]kmsg.ListOffsetsResponseTopicPartition, len(rt.Partitions))
		for pi := range rt.Partitions {
			rp := &rt.Partitions[pi]
			sp := &st.Partitions[pi]
			*sp = kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			switch {
			case nameErr != nil:
				sp.ErrorCode = nameErr.Code
				continue
			case !exists:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			case rp.Timestamp < -2:
				sp.ErrorCode = kerr.InvalidRequest.Code
				continue
			}
			_, node, ke, _ := h.route(rt.Topic, rp.Partition)
			if ke != nil {
				sp.ErrorCode = ke.Code
				continue
			}
			c := calls[node.Addr]
			if c == nil {
				c = &listOffsetsCall{addr: node.Addr, req: &logv1.ListOffsetsRequest{IsolationLevel: int32(req.IsolationLevel)}}
				calls[node.Addr] = c
			}
			c.req.Partitions = append(c.req.Partitions, &logv1.ListOffsetsPartition{
				Topic: rt.Topic, TopicId: topic.ID[:], Partition: rp.Partition,
				Timestamp: rp.Timestamp, CurrentLeaderEpoch: rp.CurrentLeaderEpoch,
			})
			c.dst = append(c.dst, sp)
		}
	}
	rpcCtx, cancel := context.WithTimeout(ctx, listOffsetsTimeout)
	defer cancel()
	forwardEach(rpcCtx, h, "list offsets", calls,
		(*logv1.ListOffsetsRequest).GetPartitions,
		func(ctx context.Context, cl logv1.LogServiceClient, r *logv1.ListOffsetsRequest) ([]*logv1.ListOffsetsPartitionResult, error) {
			resp, err := cl.ListOffsets(ctx, r)
			return resp.GetPartitions(), err
		},
		func(sp *kmsg.ListOffsetsResponseTopicPartition, code int16) { sp.ErrorCode = code },
		func(sp *kmsg.ListOffsetsResponseTopicPartition, r *logv1.ListOffsetsPartitionResult) {
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = r.GetTimestamp(), r.GetOffset(), r.GetLeaderEpoch()
		})
	return resp, nil
}
