package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FindCoordinator: v0-4
//
// Behaviour:
// * Group keys: the coordinator is the gateway holding the group's shard
//   key in etcd (see package groups). This gateway answers itself as soon
//   as it holds the shard, even before its cache shows the claim.
// * No gateway holds the shard yet (one just died and its lease has not
//   expired, or a shard is moving): COORDINATOR_NOT_AVAILABLE, which clients
//   retry.
// * Transaction keys (type 1) are answered exactly like group keys: a
//   transactional id is coordinated by the gateway holding the group shard
//   of the id (package txns runs on the groups coordinator's shards).
// * An empty group id: INVALID_GROUP_ID; an empty transactional id:
//   INVALID_REQUEST (as Kafka); another key type: INVALID_REQUEST.
//
// Version notes:
// * v3: flexible; v4: batched CoordinatorKeys (KIP-699).

func init() { register(10, 0, 4, false, (*Handlers).handleFindCoordinator) }

func (h *Handlers) handleFindCoordinator(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, key := range keys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key, c.NodeID, c.Port = key, -1, -1
		fail := func(e *kerr.Error, msg string) {
			c.ErrorCode, c.ErrorMessage = e.Code, kmsg.StringPtr(msg)
		}
		switch {
		case req.CoordinatorType != 0 && req.CoordinatorType != 1:
			fail(kerr.InvalidRequest, "unknown coordinator key type; 0 (group) and 1 (transaction) exist")
		case key == "" && req.CoordinatorType == 0:
			fail(kerr.InvalidGroupID, "empty group id")
		case key == "":
			fail(kerr.InvalidRequest, "empty transactional id")
		case h.cfg.Groups.Owns(key):
			c.NodeID, c.Host, c.Port = h.cfg.Self.NodeID, h.cfg.Self.Host, h.cfg.Self.Port
		default:
			gw, ok := h.cache.GroupCoordinator(key)
			if !ok {
				fail(kerr.CoordinatorNotAvailable, "no gateway coordinates this key's shard yet; retry")
				break
			}
			c.NodeID, c.Host, c.Port = gw.NodeID, gw.Host, gw.Port
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	if req.Version < 4 && len(resp.Coordinators) == 1 {
		c := resp.Coordinators[0]
		resp.ErrorCode, resp.ErrorMessage = c.ErrorCode, c.ErrorMessage
		resp.NodeID, resp.Host, resp.Port = c.NodeID, c.Host, c.Port
		resp.Coordinators = nil
	}
	return resp, nil
}
