package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/groups"
	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// JoinGroup: v0-9
//
// Behaviour (package groups has the state machine):
// * Classic protocol, any protocol type ("consumer", "connect", ...);
//   eager and cooperative clients alike (the assignor runs in the leader).
// * The call parks until the rebalance completes: every known member has
//   rejoined, or the longest rebalance timeout passed (stragglers are
//   dropped).
// * v4+ dynamic members get MEMBER_ID_REQUIRED first (KIP-394); static
//   members (group.instance.id, KIP-345) rejoin without a rebalance when
//   nothing changed, and a returning static leader gets SkipAssignment
//   (KIP-814).
// * session.timeout.ms outside [min, max] of the gateway config:
//   INVALID_SESSION_TIMEOUT. Unknown member: UNKNOWN_MEMBER_ID. Protocol
//   type or protocols that do not fit the group: INCONSISTENT_GROUP_PROTOCOL.
//   Not the coordinator: NOT_COORDINATOR.
//
// Version notes:
// * v1: rebalance timeout; v5: group.instance.id; v6: flexible; v7:
//   protocol type in the answer; v8: reason; v9: SkipAssignment.

func init() { register(11, 0, 9, false, (*Handlers).handleJoinGroup) }

func (h *Handlers) handleJoinGroup(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	return h.cfg.Groups.JoinGroup(ctx, clientOf(kr), kr.Body.(*kmsg.JoinGroupRequest))
}

// clientOf identifies the connection of a request for DescribeGroups.
func clientOf(kr *kafkaserver.Request) groups.Client {
	cl := groups.Client{Host: kr.RemoteAddr}
	if kr.ClientID != nil {
		cl.ID = *kr.ClientID
	}
	return cl
}
