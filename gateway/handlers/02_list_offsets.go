package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/ops"
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
//   30 s (Kafka's default request.timeout.ms). The work is in ops.ListOffsets.
//
// Version notes:
// * v2: IsolationLevel; v4: CurrentLeaderEpoch (checked by logsvc),
//   LeaderEpoch in the answer; v6: flexible

func init() { register(2, 1, 6, false, (*Handlers).handleListOffsets) }

func (h *Handlers) handleListOffsets(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	var qs []ops.OffsetQuery
	var slots []*kmsg.ListOffsetsResponseTopicPartition
	resp.Topics = make([]kmsg.ListOffsetsResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		rt := &req.Topics[ti]
		st := &resp.Topics[ti]
		*st = kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.ListOffsetsResponseTopicPartition, len(rt.Partitions))
		for pi, rp := range rt.Partitions {
			sp := &st.Partitions[pi]
			*sp = kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			qs = append(qs, ops.OffsetQuery{Topic: rt.Topic, Partition: rp.Partition, Timestamp: rp.Timestamp, CurrentLeaderEpoch: rp.CurrentLeaderEpoch})
			slots = append(slots, sp)
		}
	}
	for i, r := range h.ops.ListOffsets(ctx, req.IsolationLevel, qs) {
		sp := slots[i]
		sp.ErrorCode, sp.Timestamp, sp.Offset, sp.LeaderEpoch = code(r.Err), r.Timestamp, r.Offset, r.LeaderEpoch
	}
	return resp, nil
}
