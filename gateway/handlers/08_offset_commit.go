package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetCommit: v0-8
//
// Behaviour:
// * Offsets (with leader epoch and metadata) are written to etcd in one
//   transaction per 100 partitions, guarded by the coordinator's shard key,
//   and answered only once written: they survive the loss of any gateway.
// * Members must be of the current generation (ILLEGAL_GENERATION,
//   UNKNOWN_MEMBER_ID otherwise); commits are accepted while a rebalance
//   is being prepared, which is what "commit on revoke" needs, and refused
//   with REBALANCE_IN_PROGRESS while the assignment is pending. A group
//   without members takes "simple" commits (generation -1).
// * Unknown topic or partition: UNKNOWN_TOPIC_OR_PARTITION for that
//   partition; metadata over 4096 bytes: OFFSET_METADATA_TOO_LARGE.
// * v1 commit timestamps and v2-4 retention times are ignored: offsets
//   are kept until the group or the offsets are deleted.
//
// Version notes:
// * v6: leader epoch; v7: group.instance.id; v8: flexible. v9+ (KIP-848
//   member epochs) is not served.

func init() { register(8, 0, 8, false, (*Handlers).handleOffsetCommit) }

func (h *Handlers) handleOffsetCommit(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	return h.cfg.Groups.CommitOffsets(ctx, kr.Body.(*kmsg.OffsetCommitRequest), h.partitionExists), nil
}

func (h *Handlers) partitionExists(topic string, partition int32) (meta.TopicID, int64, bool) {
	rev := h.cache.Revision() // read first: the partition is at least as new
	p, ok := h.cache.Partition(topic, partition)
	return p.TopicID, rev, ok
}
