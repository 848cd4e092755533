package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SyncGroup: v0-5
//
// Behaviour:
// * Followers park until the leader sends the assignment; the assignment
//   is written to etcd (guarded by the coordinator's shard key) before any
//   member is answered, so a coordinator that dies right after still hands
//   the same assignment to its successor.
// * A member of another generation gets ILLEGAL_GENERATION; during a new
//   join phase REBALANCE_IN_PROGRESS. Members that never sync within the
//   rebalance timeout are dropped and the group rebalances.
//
// Version notes:
// * v3: group.instance.id; v4: flexible; v5: protocol type and name,
//   checked against the group's (INCONSISTENT_GROUP_PROTOCOL).

func init() { register(14, 0, 5, false, (*Handlers).handleSyncGroup) }

func (h *Handlers) handleSyncGroup(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	return h.cfg.Groups.SyncGroup(ctx, kr.Body.(*kmsg.SyncGroupRequest))
}
