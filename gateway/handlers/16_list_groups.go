package handlers

import (
	"context"
	"slices"
	"strings"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListGroups: v0-5
//
// Behaviour:
// * Like a Kafka broker, a gateway lists the groups it coordinates;
//   clients (kadm, kafka-consumer-groups) ask every broker and merge.
// * v4 StatesFilter and v5 TypesFilter (case-insensitive; every group here
//   is "classic") are applied.
// * etcd unreachable: COORDINATOR_NOT_AVAILABLE.
//
// Version notes:
// * v3: flexible; v4: states; v5: group types.

func init() { register(16, 0, 5, false, (*Handlers).handleListGroups) }

func (h *Handlers) handleListGroups(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.ListGroupsRequest)
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	list, err := h.cfg.Groups.ListGroups(ctx)
	if err != nil {
		h.log.Warn("listing groups failed", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil
	}
	match := func(filter []string, v string) bool {
		return len(filter) == 0 || slices.ContainsFunc(filter, func(f string) bool { return strings.EqualFold(f, v) })
	}
	for _, g := range list {
		if !match(req.StatesFilter, g.State) || !match(req.TypesFilter, "classic") {
			continue
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group, lg.ProtocolType, lg.GroupState, lg.GroupType = g.Group, g.ProtocolType, g.State, "classic"
		resp.Groups = append(resp.Groups, lg)
	}
	return resp, nil
}
