package handlers

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// gateways returns the live gateways sorted by node id, always including
// this one: the cache may lag our own registration (or the lease may be
// being renewed), and a client talking to us must see us in the list.
func (h *Handlers) gateways() []meta.Gateway {
	gws := h.cache.Gateways()
	for _, g := range gws {
		if g.NodeID == h.cfg.Self.NodeID {
			return gws
		}
	}
	out := make([]meta.Gateway, 0, len(gws)+1)
	added := false
	for _, g := range gws {
		if !added && g.NodeID > h.cfg.Self.NodeID {
			out, added = append(out, h.cfg.Self), true
		}
		out = append(out, g)
	}
	if !added {
		out = append(out, h.cfg.Self)
	}
	return out
}

// controllerID is the lowest live gateway node id. Any gateway can serve
// admin requests (they go to etcd), so the choice only has to be stable and
// the same on every gateway.
func controllerID(gws []meta.Gateway) int32 { return gws[0].NodeID }

// leaderGateway picks the gateway advertised as a partition's "leader".
// Every gateway can serve every partition because it forwards to logsvc;
// spreading partitions over gateways spreads client connections and load.
// The choice depends only on the sorted gateway list, so all gateways agree.
func leaderGateway(gws []meta.Gateway, topic string, partition int32) meta.Gateway {
	f := fnv.New32a()
	f.Write([]byte(topic))
	return gws[(f.Sum32()+uint32(partition))%uint32(len(gws))]
}

// rack converts an optional rack to Kafka's nullable string.
func rack(g meta.Gateway) *string {
	if g.Rack == "" {
		return nil
	}
	r := g.Rack
	return &r
}

// route finds the live log-service node leading a partition. The returned
// error is a Kafka error for the data path: an unknown partition is
// UNKNOWN_TOPIC_OR_PARTITION, a leader that is not live is
// NOT_LEADER_OR_FOLLOWER (retriable: the client refreshes metadata, and by
// then leadership has usually moved).
func (h *Handlers) route(topic string, partition int32) (meta.Partition, meta.LogNode, *kerr.Error, string) {
	p, ok := h.cache.Partition(topic, partition)
	if !ok {
		return p, meta.LogNode{}, kerr.UnknownTopicOrPartition, fmt.Sprintf("topic %s has no partition %d", topic, partition)
	}
	n, ok := h.cache.LogNode(p.Leader)
	if !ok {
		return p, n, kerr.NotLeaderForPartition, fmt.Sprintf("log-service node %q leading %s/%d is not live", p.Leader, topic, partition)
	}
	return p, n, nil, ""
}

// rpcError is the Kafka error for a whole failed LogService call. A
// deadline means the node may still finish the work: REQUEST_TIMED_OUT.
// Anything else (node unreachable, shutting down, closed connection) means
// the client should find the partition's new home: NOT_LEADER_OR_FOLLOWER.
// Both are retriable.
func rpcError(err error) *kerr.Error {
	if status.Code(err) == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded) {
		return kerr.RequestTimedOut
	}
	return kerr.NotLeaderForPartition
}

// topicNameError maps a name validation failure.
func topicNameError(name string) (*kerr.Error, string) {
	if err := meta.ValidateTopicName(name); err != nil {
		return kerr.InvalidTopicException, err.Error()
	}
	return nil, ""
}

func strp(s string) *string { return &s }

// msgp returns a message pointer, nil for no message.
func msgp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// code is a Kafka error's code, 0 for nil.
func code(e *kerr.Error) int16 {
	if e == nil {
		return 0
	}
	return e.Code
}
