package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeGroups: v0-5
//
// Behaviour:
// * State, protocol type, protocol and members (client id, host, and
//   while Stable their protocol metadata and assignment) of each group
//   this gateway coordinates; NOT_COORDINATOR for the others. An unknown
//   group is state "Dead" without an error, as Kafka answers up to v5.
// * Authorized operations (v3+) are not computed (no ACLs): -2147483648.
//
// Version notes:
// * v4: group.instance.id; v5: flexible.

func init() { register(15, 0, 5, false, (*Handlers).handleDescribeGroups) }

func (h *Handlers) handleDescribeGroups(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.DescribeGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, name := range req.Groups {
		resp.Groups = append(resp.Groups, h.cfg.Groups.DescribeGroup(ctx, name))
	}
	return resp, nil
}
