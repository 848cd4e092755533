package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/ops"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetForLeaderEpoch: v0-4
//
// Behaviour:
// * Consumers ask where the records of the leader epoch they last consumed
//   end, to detect log truncation after a leader change (KIP-101,
//   KIP-320). Each partition is answered by its leading log-service node
//   from the partition's leader-epoch history: the current epoch ends at
//   the high watermark; an older one gives the largest epoch at or below
//   it that wrote records and the first offset of the next epoch; an epoch
//   older than the retained history gives itself and the history's first
//   offset; a negative or future epoch gives -1/-1 (UNDEFINED).
// * CurrentLeaderEpoch (v2+) is fenced by logsvc as in Fetch: ahead of the
//   leader is UNKNOWN_LEADER_EPOCH, behind FENCED_LEADER_EPOCH, -1 skips.
// * Partitions are grouped by leading log-service node and resolved with
//   one LogService.OffsetForLeaderEpoch per node, in parallel; routing
//   errors as in ListOffsets (UNKNOWN_TOPIC_OR_PARTITION,
//   NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT). Failed partitions answer
//   epoch -1 and end offset -1.
// * There are no followers: a request from a replica (ReplicaID >= 0, v3+)
//   gets INVALID_REQUEST on every partition (non-retriable, so a
//   misdirected broker fails fast). Consumers send -1.
// * The request has no timeout field, so the call is bounded by
//   30 s (Kafka's default request.timeout.ms). The work is in
//   ops.OffsetsForLeaderEpochs.
//
// Version notes:
// * v1: LeaderEpoch in the answer; v2: CurrentLeaderEpoch (KIP-320);
//   v3: ReplicaID (KIP-392); v4: flexible

func init() { register(23, 0, 4, false, (*Handlers).handleOffsetForLeaderEpoch) }

func (h *Handlers) handleOffsetForLeaderEpoch(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	fromReplica := req.Version >= 3 && req.ReplicaID >= 0
	var qs []ops.EpochQuery
	var slots []*kmsg.OffsetForLeaderEpochResponseTopicPartition
	resp.Topics = make([]kmsg.OffsetForLeaderEpochResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		rt := &req.Topics[ti]
		st := &resp.Topics[ti]
		*st = kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.OffsetForLeaderEpochResponseTopicPartition, len(rt.Partitions))
		for pi, rp := range rt.Partitions {
			sp := &st.Partitions[pi]
			*sp = kmsg.NewOffsetForLeaderEpochResponseTopicPartition() // epoch and end offset -1
			sp.Partition = rp.Partition
			if fromReplica {
				sp.ErrorCode = kerr.InvalidRequest.Code
				continue
			}
			qs = append(qs, ops.EpochQuery{Topic: rt.Topic, Partition: rp.Partition, CurrentLeaderEpoch: rp.CurrentLeaderEpoch, LeaderEpoch: rp.LeaderEpoch})
			slots = append(slots, sp)
		}
	}
	for i, r := range h.ops.OffsetsForLeaderEpochs(ctx, qs) {
		slots[i].ErrorCode, slots[i].LeaderEpoch, slots[i].EndOffset = code(r.Err), r.LeaderEpoch, r.EndOffset
	}
	return resp, nil
}
