package handlers

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
)

// AlterPartitionReassignments: v0-1
//
// Behaviour:
// * Moves local partitions to the replicas named by broker id (the ids
//   Metadata lists as replicas: log-service nodes, 1000 and up), or
//   cancels a reassignment in progress (null replicas;
//   NO_REASSIGNMENT_IN_PROGRESS if none): ops.Reassign. New replicas
//   follow the leader; once all are in the ISR the controller switches the
//   partition to the target, electing a leader in it if the current one
//   leaves. Unknown or dead broker ids and duplicates are
//   INVALID_REPLICA_ASSIGNMENT; diskless partitions (one logical copy in
//   object storage) too.
// * The answer comes once the reassignment is recorded, not completed:
//   ListPartitionReassignments shows it until it is.
//
// Version notes:
// * v1: AllowReplicationFactorChange; false refuses a target of another
//   length than the current replica list (INVALID_REPLICATION_FACTOR).

func init() { register(45, 0, 1, false, (*Handlers).handleAlterPartitionReassignments) }

func (h *Handlers) handleAlterPartitionReassignments(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.AlterPartitionAssignmentsRequest)
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	resp.AllowReplicationFactorChange = req.AllowReplicationFactorChange
	for _, rt := range req.Topics {
		st := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			sp.Partition = rp.Partition
			if req.Version >= 1 && !req.AllowReplicationFactorChange && rp.Replicas != nil {
				if cur, ok := h.cache.Partition(rt.Topic, rp.Partition); ok && len(cur.ReplicaSet())-len(cur.AddingReplicas) != len(rp.Replicas) {
					sp.ErrorCode, sp.ErrorMessage = kerr.InvalidReplicationFactor.Code, msgp("the target changes the replication factor and AllowReplicationFactorChange is false")
					st.Partitions = append(st.Partitions, sp)
					continue
				}
			}
			if e := h.ops.Reassign(ctx, rt.Topic, rp.Partition, rp.Replicas); e != nil {
				sp.ErrorCode, sp.ErrorMessage = e.Code.Code, msgp(e.Msg)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
