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

type listOffsetsCall struct {
	addr string
	req  *logv1.ListOffsetsRequest
	dst  []*kmsg.ListOffsetsResponseTopicPartition
}

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
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Go(func() { h.forwardListOffsets(rpcCtx, c) })
	}
	wg.Wait()
	return resp, nil
}

func (h *Handlers) forwardListOffsets(ctx context.Context, c *listOffsetsCall) {
	cl, err := h.cfg.Logs.Client(c.addr)
	var resp *logv1.ListOffsetsResponse
	if err == nil {
		resp, err = cl.ListOffsets(ctx, c.req)
	}
	if err != nil {
		h.log.Debug("list offsets forward failed", "addr", c.addr, "err", err)
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
			h.log.Error("log service answered list offsets out of order", "addr", c.addr, "sent", len(c.dst), "got", len(results))
			sp.ErrorCode = kerr.UnknownServerError.Code
			continue
		}
		r := results[i]
		sp.ErrorCode = int16(r.GetErrorCode())
		if sp.ErrorCode == 0 {
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = r.GetTimestamp(), r.GetOffset(), r.GetLeaderEpoch()
		}
	}
}
