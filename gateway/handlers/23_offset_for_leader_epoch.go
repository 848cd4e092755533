package handlers

import (
	"context"
	"sync"
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

type offsetForLeaderEpochCall struct {
	addr string
	req  *logv1.OffsetForLeaderEpochRequest
	dst  []*kmsg.OffsetForLeaderEpochResponseTopicPartition
}

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
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Go(func() { h.forwardOffsetForLeaderEpoch(rpcCtx, c) })
	}
	wg.Wait()
	return resp, nil
}

func (h *Handlers) forwardOffsetForLeaderEpoch(ctx context.Context, c *offsetForLeaderEpochCall) {
	cl, err := h.cfg.Logs.Client(c.addr)
	var resp *logv1.OffsetForLeaderEpochResponse
	if err == nil {
		resp, err = cl.OffsetForLeaderEpoch(ctx, c.req)
	}
	if err != nil {
		h.log.Debug("offset for leader epoch forward failed", "addr", c.addr, "err", err)
		ke := rpcError(err)
		for _, sp := range c.dst {
			sp.ErrorCode = ke.Code
		}
		return
	}
	results := resp.GetPartitions()
	for i, sp := range c.dst {
		sent := c.req.Partitions[i]
		if i >= len(results) || results[i].GetTopic() != sent.Topic || results[i].GetPartition() != sent.Partition {
			h.log.Error("log service answered offset for leader epoch out of order", "addr", c.addr, "sent", len(c.dst), "got", len(results))
			sp.ErrorCode = kerr.UnknownServerError.Code
			continue
		}
		r := results[i]
		sp.ErrorCode = int16(r.GetErrorCode())
		if sp.ErrorCode == 0 {
			sp.LeaderEpoch, sp.EndOffset = r.GetLeaderEpoch(), r.GetEndOffset()
		}
	}
}
