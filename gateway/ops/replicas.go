package ops

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamline-dev/streamline/shared/meta"
)

// Replica operations of local partitions, by broker id (ReplicaIDs):
// reassignment (Kafka's AlterPartitionReassignments and
// ListPartitionReassignments, KIP-455) and leader elections (ElectLeaders,
// KIP-460). Each is a compare-and-swap on the partition record, retried a
// few times against a concurrent change (the controller, the leader's ISR
// updates); the controller completes reassignments.

// ElectionType is Kafka's ElectLeaders election type.
type ElectionType int8

// Kafka's election types.
const (
	ElectPreferred ElectionType = 0
	ElectUnclean   ElectionType = 1
)

// casAttempts bounds the retries of one partition record change.
const casAttempts = 10

// changePartition applies change to the cached record of topic/partition
// with a compare-and-swap, re-reading on a conflict. change returns the new
// record, or nil with nothing to do.
func (o *Ops) changePartition(ctx context.Context, topic string, partition int32, change func(p meta.Partition) (*meta.Partition, *Error)) *Error {
	for attempt := 0; attempt < casAttempts; attempt++ {
		t, ok := o.cache.Topic(topic)
		p, pok := o.cache.Partition(topic, partition)
		if !ok || !pok || p.TopicID != t.ID {
			return fail(kerr.UnknownTopicOrPartition, "partition", "partition %s-%d does not exist", topic, partition)
		}
		if !t.StorageMode.KeepsLocalData() {
			return fail(kerr.InvalidReplicaAssignment, "partition",
				"partition %s-%d is %s: its data is in object storage, one logical copy led by any node; it has no replicas to move or elect", topic, partition, t.StorageMode)
		}
		next, e := change(p)
		if e != nil || next == nil {
			return e
		}
		n, err := o.store.UpdatePartitions(ctx, []meta.PartitionUpdate{{Old: p, New: *next}})
		if err != nil {
			return metaError("", err)
		}
		if n == 1 {
			return nil
		}
		select { // the cache is behind etcd: give it a moment
		case <-ctx.Done():
			return metaError("", ctx.Err())
		case <-time.After(time.Duration(20*(attempt+1)) * time.Millisecond):
		}
	}
	return fail(kerr.RequestTimedOut, "", "partition %s-%d kept changing; retry", topic, partition)
}

// nodesOf maps broker ids to live log-service nodes.
func (o *Ops) nodesOf(ids []int32) ([]string, *Error) {
	var out []string
	for _, id := range ids {
		node, ok := o.cache.NodeByBrokerID(id)
		if !ok {
			return nil, fail(kerr.InvalidReplicaAssignment, "replicas", "no log-service node has broker id %d", id)
		}
		if _, live := o.cache.LogNode(node); !live {
			return nil, fail(kerr.InvalidReplicaAssignment, "replicas", "log-service node %s (broker id %d) is not live", node, id)
		}
		if slices.Contains(out, node) {
			return nil, fail(kerr.InvalidReplicaAssignment, "replicas", "broker id %d is given twice", id)
		}
		out = append(out, node)
	}
	return out, nil
}

// Reassign moves a local partition to the replicas with broker ids target
// (nil cancels a reassignment in progress: NO_REASSIGNMENT_IN_PROGRESS if
// there is none). New replicas follow the leader; once all of them are in
// the ISR the controller switches the partition to target, electing a
// leader in it if the current one leaves. A target that only drops
// replicas applies at once. A target changing the replication factor is
// accepted, as Kafka does.
func (o *Ops) Reassign(ctx context.Context, topic string, partition int32, target []int32) *Error {
	var want []string
	if target != nil {
		if len(target) == 0 {
			return fail(kerr.InvalidReplicaAssignment, "replicas", "the target replica list of %s-%d is empty", topic, partition)
		}
		var e *Error
		if want, e = o.nodesOf(target); e != nil {
			return e
		}
	}
	return o.changePartition(ctx, topic, partition, func(p meta.Partition) (*meta.Partition, *Error) {
		original := without(p.ReplicaSet(), p.AddingReplicas)
		next := p
		if want == nil {
			if !p.Reassigning() {
				return nil, fail(kerr.NoReassignmentInProgress, "partition", "partition %s-%d has no reassignment in progress", topic, partition)
			}
			next.Replicas, next.AddingReplicas, next.RemovingReplicas = original, nil, nil
			next.ISR = without(p.InSyncReplicas(), p.AddingReplicas)
			if slices.Contains(p.AddingReplicas, p.Leader) {
				next.Leader = "" // the controller elects from the remaining ISR
				next.LeaderEpoch++
			}
			return &next, nil
		}
		if slices.Equal(want, p.ReplicaSet()) && !p.Reassigning() {
			return nil, nil
		}
		adding, removing := without(want, original), without(original, want)
		next.Replicas = append(slices.Clone(want), removing...)
		next.AddingReplicas, next.RemovingReplicas = adding, removing
		if next.ISR == nil {
			next.ISR = slices.Clone(p.InSyncReplicas())
		}
		if len(adding) == 0 {
			// Only removals: nothing to catch up; switch now.
			if !slices.ContainsFunc(want, func(r string) bool { return slices.Contains(next.ISR, r) }) {
				return nil, fail(kerr.InvalidReplicaAssignment, "replicas", "no replica of the target of %s-%d is in sync (ISR %v)", topic, partition, next.ISR)
			}
			next.CompleteReassignment()
		}
		return &next, nil
	})
}

// ReassignmentView is one partition's reassignment in progress, by broker
// id.
type ReassignmentView struct {
	Topic                      string
	Partition                  int32
	Replicas, Adding, Removing []int32
}

// Reassignments lists the reassignments in progress of the given
// partitions (all when topics is nil).
func (o *Ops) Reassignments(topics map[string][]int32) []ReassignmentView {
	var out []ReassignmentView
	ids := func(nodes []string) []int32 {
		out := []int32{}
		for _, n := range nodes {
			id, ok := o.cache.BrokerID(n)
			if !ok {
				id = -1
			}
			out = append(out, id)
		}
		return out
	}
	for _, p := range o.cache.AllPartitions() {
		if topics != nil {
			want, ok := topics[p.Topic]
			if !ok || !slices.Contains(want, p.Partition) {
				continue
			}
		}
		if p.Reassigning() {
			out = append(out, ReassignmentView{Topic: p.Topic, Partition: p.Partition,
				Replicas: ids(p.ReplicaSet()), Adding: ids(p.AddingReplicas), Removing: ids(p.RemovingReplicas)})
		}
	}
	return out
}

// ElectLeader runs a leader election of one local partition. Preferred:
// the first replica leads if it is live and in the ISR
// (PREFERRED_LEADER_NOT_AVAILABLE otherwise, ELECTION_NOT_NEEDED if it
// already does). Unclean: only for a partition without a live leader, the
// first live ISR member leads, else the first live replica, its ISR reset
// to it (acknowledged records may be lost; ELIGIBLE_LEADERS_NOT_AVAILABLE
// if no replica is live). A preferred replica that holds only the tail of
// a hybrid partition (meta.LogNode.TailOnly) is not available either.
func (o *Ops) ElectLeader(ctx context.Context, topic string, partition int32, typ ElectionType) *Error {
	live := func(n string) bool { _, ok := o.cache.LogNode(n); return ok }
	tailOnly := func(n, topic string, partition int32) bool {
		node, ok := o.cache.LogNode(n)
		return ok && slices.Contains(node.TailOnly, meta.PartitionName(topic, partition))
	}
	return o.changePartition(ctx, topic, partition, func(p meta.Partition) (*meta.Partition, *Error) {
		next := p
		switch typ {
		case ElectPreferred:
			pref := p.ReplicaSet()[0]
			switch {
			case p.Leader == pref:
				return nil, fail(kerr.ElectionNotNeeded, "partition", "%s leads %s-%d already", pref, topic, partition)
			case !live(pref) || !p.InISR(pref):
				return nil, fail(kerr.PreferredLeaderNotAvailable, "partition", "the preferred replica %s of %s-%d is not live and in sync (ISR %v)", pref, topic, partition, p.InSyncReplicas())
			case tailOnly(pref, topic, partition):
				return nil, fail(kerr.PreferredLeaderNotAvailable, "partition", "the preferred replica %s of %s-%d holds only the tail of its local log (rebuilt from the object tier's end): it lacks the local history %s has", pref, topic, partition, p.Leader)
			}
			next.Leader, next.UncleanLeader = pref, false
		case ElectUnclean:
			if p.Leader != "" && live(p.Leader) {
				return nil, fail(kerr.ElectionNotNeeded, "partition", "%s-%d has a live leader, %s", topic, partition, p.Leader)
			}
			for _, r := range p.ReplicaSet() {
				if live(r) && p.InISR(r) {
					next.Leader, next.UncleanLeader = r, false
					break
				}
			}
			if next.Leader == "" || next.Leader == p.Leader {
				next.Leader = ""
				for _, r := range p.ReplicaSet() {
					if live(r) {
						// It leads with what it has, even an empty disk.
						next.Leader, next.ISR, next.UncleanLeader = r, []string{r}, true
						break
					}
				}
			}
			if next.Leader == "" {
				return nil, fail(kerr.EligibleLeadersNotAvailable, "partition", "no replica of %s-%d is live", topic, partition)
			}
		default:
			return nil, fail(kerr.InvalidRequest, "election_type", "unknown election type %d", typ)
		}
		next.LeaderEpoch++
		return &next, nil
	})
}

// without is s minus the members of drop, in s's order.
func without(s, drop []string) []string {
	out := []string{}
	for _, x := range s {
		if !slices.Contains(drop, x) {
			out = append(out, x)
		}
	}
	return out
}
