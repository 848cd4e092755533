package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeCluster: v0-1
//
// Behaviour:
// * Brokers, controller and cluster id exactly as in Metadata: the live
//   gateways, the lowest gateway node id, the configured cluster id.
// * Authorized operations are answered as "not provided" (no ACLs).
// * v1 EndpointType: 1 (brokers) is served; 2 (controllers) is
//   MISMATCHED_ENDPOINT_TYPE, since gateways expose no controller endpoint.
//
// Version notes:
// * v0: flexible from the start; v1: EndpointType (KIP-919).

func init() { register(60, 0, 1, false, (*Handlers).handleDescribeCluster) }

func (h *Handlers) handleDescribeCluster(_ context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.EndpointType = req.EndpointType
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.MismatchedEndpointType.Code
		resp.ErrorMessage = strp("gateways serve broker endpoints only (endpoint type 1)")
		return resp, nil
	}
	gws := h.gateways()
	resp.ClusterID = h.cfg.ClusterID
	resp.ControllerID = controllerID(gws)
	for _, g := range gws {
		b := kmsg.NewDescribeClusterResponseBroker()
		b.NodeID, b.Host, b.Port, b.Rack = g.NodeID, g.Host, g.Port, rack(g)
		resp.Brokers = append(resp.Brokers, b)
	}
	return resp, nil
}
