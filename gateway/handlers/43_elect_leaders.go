package handlers

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/ops"
)

// ElectLeaders: v0-2
//
// Behaviour:
// * Preferred election (v0, and type 0): the first replica of each named
//   local partition leads at a new epoch if it is live and in the ISR
//   (PREFERRED_LEADER_NOT_AVAILABLE otherwise, ELECTION_NOT_NEEDED if it
//   already leads). The controller does the same by itself every
//   --leader-rebalance-interval.
// * Unclean election (type 1): a partition without a live leader gets the
//   first live ISR member, or else the first live replica with the ISR
//   reset to it (acknowledged records may be lost, as in Kafka);
//   ELECTION_NOT_NEEDED with a live leader, ELIGIBLE_LEADERS_NOT_AVAILABLE
//   with no live replica.
// * Null topics: every local partition. Diskless partitions are
//   INVALID_REPLICA_ASSIGNMENT (one logical copy, led by any node).
//
// Version notes:
// * v1: ElectionType and a top-level error code; v2: flexible.

func init() { register(43, 0, 2, false, (*Handlers).handleElectLeaders) }

func (h *Handlers) handleElectLeaders(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.ElectLeadersRequest)
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	topics := map[string][]int32{}
	if req.Topics == nil {
		for _, p := range h.cache.AllPartitions() {
			if t, ok := h.cache.Topic(p.Topic); ok && t.StorageMode.KeepsLocalData() {
				topics[p.Topic] = append(topics[p.Topic], p.Partition)
			}
		}
	}
	for _, rt := range req.Topics {
		topics[rt.Topic] = append(topics[rt.Topic], rt.Partitions...)
	}
	names := make([]string, 0, len(topics))
	for n := range topics {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		st := kmsg.NewElectLeadersResponseTopic()
		st.Topic = name
		for _, p := range topics[name] {
			sp := kmsg.NewElectLeadersResponseTopicPartition()
			sp.Partition = p
			if e := h.ops.ElectLeader(ctx, name, p, ops.ElectionType(req.ElectionType)); e != nil {
				sp.ErrorCode, sp.ErrorMessage = e.Code.Code, msgp(e.Msg)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
