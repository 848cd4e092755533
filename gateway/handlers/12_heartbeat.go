package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Heartbeat: v0-4
//
// Behaviour:
// * Restarts the member's session timer. REBALANCE_IN_PROGRESS tells the
//   member to rejoin; ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID that it was
//   dropped; FENCED_INSTANCE_ID that another process took its
//   group.instance.id; NOT_COORDINATOR that the group moved.
//
// Version notes:
// * v3: group.instance.id; v4: flexible.

func init() { register(12, 0, 4, false, (*Handlers).handleHeartbeat) }

func (h *Handlers) handleHeartbeat(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	return h.cfg.Groups.Heartbeat(ctx, kr.Body.(*kmsg.HeartbeatRequest)), nil
}
