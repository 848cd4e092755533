package handlers

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
)

// ListPartitionReassignments: v0
//
// Behaviour:
// * The reassignments in progress (ops.Reassignments) of the named
//   partitions, or of all when Topics is null: the full replica list
//   (target first, then the replicas being removed), the adding and the
//   removing replicas, by broker id. Partitions without one are left out,
//   as Kafka does.

func init() { register(46, 0, 0, false, (*Handlers).handleListPartitionReassignments) }

func (h *Handlers) handleListPartitionReassignments(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.ListPartitionReassignmentsRequest)
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	var want map[string][]int32
	if req.Topics != nil {
		want = map[string][]int32{}
		for _, rt := range req.Topics {
			want[rt.Topic] = append(want[rt.Topic], rt.Partitions...)
		}
	}
	byTopic := map[string]*kmsg.ListPartitionReassignmentsResponseTopic{}
	var names []string
	for _, r := range h.ops.Reassignments(want) {
		st := byTopic[r.Topic]
		if st == nil {
			t := kmsg.NewListPartitionReassignmentsResponseTopic()
			t.Topic = r.Topic
			st = &t
			byTopic[r.Topic] = st
			names = append(names, r.Topic)
		}
		sp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		sp.Partition, sp.Replicas, sp.AddingReplicas, sp.RemovingReplicas = r.Partition, r.Replicas, r.Adding, r.Removing
		st.Partitions = append(st.Partitions, sp)
	}
	sort.Strings(names)
	for _, n := range names {
		st := byTopic[n]
		sort.Slice(st.Partitions, func(i, j int) bool { return st.Partitions[i].Partition < st.Partitions[j].Partition })
		resp.Topics = append(resp.Topics, *st)
	}
	return resp, nil
}
