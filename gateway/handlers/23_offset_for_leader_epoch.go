package handlers

import (
	"context"
	"time"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
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
//   offsetForLeaderEpochTimeout (Kafka's default request.timeout.ms).
//
// Version notes:
// * v1: LeaderEpoch in the answer; v2: CurrentLeaderEpoch (KIP-320);
//   v3: ReplicaID (KIP-392); v4: flexible

func init() { register(23, 0, 4, false, (*Handlers).handleOffsetForLeaderEpoch) }

const offsetForLeaderEpochTimeout = 30 * time.Second

type offsetForLeaderEpochCall = nodeCall[*logv1.OffsetForLeaderEpochRequest, *kmsg.OffsetForLeaderEpochResponseTopicPartition]

func (h *Handlers) handleOffsetForLeaderEpoch(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	fromReplica := req.Version >= 3 && req.ReplicaID >= 0
	calls := map[string]*offsetForLeaderEpochCall{}
	resp.Topics = make([]kmsg.OffsetForLeaderEpochResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		rt := &req.Topics[ti]
		st := &resp.Topics[ti]
		*st = kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		topic, exists := h.cache.Topic(rt.Topic)
		nameErr, _ := topicNameError(rt.Topic)
		st.Partitions = make([]kmsg.OffsetForLeaderEpochResponseTopicPartition, len(rt.Partitions))
		for pi := range rt.Partitions {
			rp := &rt.Partitions[pi]
			sp := &st.Partitions[pi]
			*sp = kmsg.NewOffsetForLeaderEpochResponseTopicPartition() // epoch and end offset -1
			sp.Partition = rp.Partition
			switch {
			case fromReplica:
				sp.ErrorCode = kerr.InvalidRequest.Code
				continue
			case nameErr != nil:
				sp.ErrorCode = nameErr.Code
				continue
			case !exists:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			_, node, ke, _ := h.route(rt.Topic, rp.Partition)
			if ke != nil {
				sp.ErrorCode = ke.Code
				continue
			}
			c := calls[node.Addr]
			if c == nil {
				c = &offsetForLeaderEpochCall{addr: node.Addr, req: &logv1.OffsetForLeaderEpochRequest{}}
				calls[node.Addr] = c
			}
			c.req.Partitions = append(c.req.Partitions, &logv1.OffsetForLeaderEpochPartition{
				Topic: rt.Topic, TopicId: topic.ID[:], Partition: rp.Partition,
				CurrentLeaderEpoch: rp.CurrentLeaderEpoch, LeaderEpoch: rp.LeaderEpoch,
			})
			c.dst = append(c.dst, sp)
		}
	}
	rpcCtx, cancel := context.WithTimeout(ctx, offsetForLeaderEpochTimeout)
	defer cancel()
	forwardEach(rpcCtx, h, "offset for leader epoch", calls,
		(*logv1.OffsetForLeaderEpochRequest).GetPartitions,
		func(ctx context.Context, cl logv1.LogServiceClient, r *logv1.OffsetForLeaderEpochRequest) ([]*logv1.OffsetForLeaderEpochPartitionResult, error) {
			resp, err := cl.OffsetForLeaderEpoch(ctx, r)
			return resp.GetPartitions(), err
		},
		func(sp *kmsg.OffsetForLeaderEpochResponseTopicPartition, code int16) { sp.ErrorCode = code },
		func(sp *kmsg.OffsetForLeaderEpochResponseTopicPartition, r *logv1.OffsetForLeaderEpochPartitionResult) {
			sp.LeaderEpoch, sp.EndOffset = r.GetLeaderEpoch(), r.GetEndOffset()
		})
	return resp, nil
}
