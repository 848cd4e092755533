package meta

import (
	"errors"
	"fmt"
	"sort"
)

// ErrReplicationFactor means a topic asks for more replicas than there
// are live log-service nodes to hold them (Kafka
// INVALID_REPLICATION_FACTOR).
var ErrReplicationFactor = errors.New("replication factor larger than the number of live log-service nodes")

// AssignReplicas places rf replicas of each of partitions partitions on
// distinct nodes, the way Kafka's rack-aware assignment does
// (AdminUtils.assignReplicasToBrokers): nodes are ordered so racks
// alternate; partition p's first replica (its preferred leader) is the
// node at start+p in that order, so leaders spread evenly; each following
// replica is taken further along with a per-round shift (so replicas of
// consecutive partitions do not all land on the same followers), skipping
// nodes of racks that already hold a replica of the partition until every
// rack holds one, and nodes that already hold one. Nodes without a rack
// form one rack of their own ("" ), so without racks this is Kafka's
// plain round-robin with shifts. The result is one list of node ids per
// partition, preferred leader first.
func AssignReplicas(nodes []LogNode, partitions int32, rf int, start int) ([][]string, error) {
	n := len(nodes)
	switch {
	case rf < 1:
		return nil, fmt.Errorf("replication factor %d: must be at least 1", rf)
	case n == 0:
		return nil, ErrNoLogNodes
	case rf > n:
		return nil, fmt.Errorf("%w: %d replicas, %d nodes", ErrReplicationFactor, rf, n)
	case partitions < 0:
		return nil, fmt.Errorf("%d partitions", partitions)
	}
	ordered := rackAlternating(nodes)
	numRacks := len(distinctRacks(ordered))
	start = ((start % n) + n) % n
	shift := start
	out := make([][]string, partitions)
	for p := range int(partitions) {
		if p > 0 && p%n == 0 {
			shift++ // a new round over the nodes: move the followers along
		}
		first := (p + start) % n
		replicas := []string{ordered[first].ID}
		usedRacks := map[string]bool{ordered[first].Rack: true}
		used := map[string]bool{ordered[first].ID: true}
		for k := 0; len(replicas) < rf && k < 4*n; k++ {
			// Kafka's replicaIndex: never the first replica's own index.
			cand := ordered[(first+1+(shift*numRacks+k)%(n-1))%n]
			if (usedRacks[cand.Rack] && len(usedRacks) < numRacks) || used[cand.ID] {
				continue
			}
			replicas = append(replicas, cand.ID)
			used[cand.ID], usedRacks[cand.Rack] = true, true
		}
		if len(replicas) < rf { // cannot happen with rf <= n; kept as a guard
			return nil, fmt.Errorf("%w: could not place %d replicas of partition %d", ErrReplicationFactor, rf, p)
		}
		out[p] = replicas
	}
	return out, nil
}

func distinctRacks(nodes []LogNode) map[string]bool {
	racks := map[string]bool{}
	for _, nd := range nodes {
		racks[nd.Rack] = true
	}
	return racks
}

// rackAlternating orders nodes so that consecutive nodes are on different
// racks where possible: racks sorted by name, nodes of a rack by id, then
// taken one from each rack in turn (Kafka's getRackAlternatedBrokerList).
func rackAlternating(nodes []LogNode) []LogNode {
	byRack := map[string][]LogNode{}
	for _, nd := range nodes {
		byRack[nd.Rack] = append(byRack[nd.Rack], nd)
	}
	racks := make([]string, 0, len(byRack))
	for r, ns := range byRack {
		racks = append(racks, r)
		sort.Slice(ns, func(i, j int) bool { return ns[i].ID < ns[j].ID })
	}
	sort.Strings(racks)
	out := make([]LogNode, 0, len(nodes))
	for i := 0; len(out) < len(nodes); i++ {
		for _, r := range racks {
			if i < len(byRack[r]) {
				out = append(out, byRack[r][i])
			}
		}
	}
	return out
}
