package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TxnOffsetCommit: v0-3
//
// Behaviour:
// * Commits a consumer group's offsets inside a transaction (the
//   producer added the group with AddOffsetsToTxn). Answered by the
//   group's coordinator (package groups; NOT_COORDINATOR elsewhere): the
//   offsets (with leader epoch and metadata) are written to etcd as
//   pending offsets of the producer in the group, guarded by the group's
//   shard key, before the answer; a later TxnOffsetCommit of the same
//   producer merges into them. Pending offsets are not visible to
//   OffsetFetch: they become the group's committed offsets when the
//   transaction commits (the transaction coordinator's group marker,
//   applied by the group's coordinator) and are dropped when it aborts.
// * v3 membership (generation, member id, group.instance.id) is checked
//   when given: ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID.
// * Unknown topic or partition: UNKNOWN_TOPIC_OR_PARTITION for that
//   partition; metadata over 4096 bytes: OFFSET_METADATA_TOO_LARGE.
//   INVALID_GROUP_ID for an empty group; PRODUCER_FENCED if the producer
//   has offsets pending at a newer epoch.
//
// Version notes:
// * v2: leader epoch; v3: flexible, generation, member id and
//   group.instance.id (KIP-447). v4+ (KIP-890) is not served.

func init() { register(28, 0, 3, false, (*Handlers).handleTxnOffsetCommit) }

func (h *Handlers) handleTxnOffsetCommit(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.TxnOffsetCommitRequest)
	resp := h.cfg.Groups.TxnCommitOffsets(ctx, req, h.partitionExists)
	if req.Version < 2 {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				if p := &resp.Topics[i].Partitions[j]; p.ErrorCode == kerr.ProducerFenced.Code {
					p.ErrorCode = kerr.InvalidProducerEpoch.Code // before KIP-588
				}
			}
		}
	}
	return resp, nil
}
