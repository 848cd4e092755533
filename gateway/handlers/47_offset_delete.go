package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetDelete: v0
//
// Behaviour:
// * Deletes committed offsets of a group. An Empty group loses any; a
//   "consumer" group with members keeps those of topics a member
//   subscribes to (GROUP_SUBSCRIBED_TO_TOPIC); other protocol types with
//   members: NON_EMPTY_GROUP. Unknown group: GROUP_ID_NOT_FOUND.

func init() { register(47, 0, 0, false, (*Handlers).handleOffsetDelete) }

func (h *Handlers) handleOffsetDelete(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	return h.cfg.Groups.DeleteOffsets(ctx, kr.Body.(*kmsg.OffsetDeleteRequest)), nil
}
