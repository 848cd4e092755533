package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteGroups: v0-2
//
// Behaviour:
// * Deletes an Empty group's metadata and every committed offset in one
//   etcd transaction. A group with members: NON_EMPTY_GROUP; unknown:
//   GROUP_ID_NOT_FOUND; another gateway's group: NOT_COORDINATOR.
//
// Version notes:
// * v2: flexible.

func init() { register(42, 0, 2, false, (*Handlers).handleDeleteGroups) }

func (h *Handlers) handleDeleteGroups(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.DeleteGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, name := range req.Groups {
		g := kmsg.NewDeleteGroupsResponseGroup()
		g.Group = name
		if e := h.cfg.Groups.DeleteGroup(ctx, name); e != nil {
			g.ErrorCode = e.Code
		}
		resp.Groups = append(resp.Groups, g)
	}
	return resp, nil
}
