package handlers

import (
	"github.com/streamline-dev/streamline/gateway/ops"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
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

// leaderGateway picks the gateway advertised as a partition's "leader"
// (ops.LeaderGateway).
func leaderGateway(gws []meta.Gateway, topic string, partition int32) meta.Gateway {
	return ops.LeaderGateway(gws, topic, partition)
}

// rack converts an optional rack to Kafka's nullable string.
func rack(g meta.Gateway) *string {
	if g.Rack == "" {
		return nil
	}
	r := g.Rack
	return &r
}

// route finds the live log-service node leading a partition (ops.Route).
func (h *Handlers) route(topic string, partition int32) (meta.Partition, meta.LogNode, *kerr.Error, string) {
	p, n, e := h.ops.Route(topic, partition)
	if e != nil {
		return p, n, e.Code, e.Msg
	}
	return p, n, nil, ""
}

// rpcError is the Kafka error for a whole failed LogService call
// (ops.RPCError).
func rpcError(err error) *kerr.Error { return ops.RPCError(err) }

// topicNameError maps a name validation failure.
func topicNameError(name string) (*kerr.Error, string) {
	if e := ops.ValidateTopicName(name); e != nil {
		return e.Code, e.Msg
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
