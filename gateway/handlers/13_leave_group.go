package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// LeaveGroup: v0-5
//
// Behaviour:
// * Removes the members and starts one rebalance for the batch. Static
//   members leave by group.instance.id (FENCED_INSTANCE_ID if the member id
//   given is not the current one); unknown members are UNKNOWN_MEMBER_ID
//   per member.
//
// Version notes:
// * v3: batched members (KIP-345); v4: flexible; v5: reason.

func init() { register(13, 0, 5, false, (*Handlers).handleLeaveGroup) }

func (h *Handlers) handleLeaveGroup(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	return h.cfg.Groups.LeaveGroup(ctx, kr.Body.(*kmsg.LeaveGroupRequest)), nil
}
