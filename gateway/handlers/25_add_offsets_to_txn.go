package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/txns"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AddOffsetsToTxn: v0-3
//
// Behaviour:
// * A transactional producer adds a consumer group to its transaction
//   before committing the group's offsets inside it (TxnOffsetCommit, to
//   the group's coordinator). Answered by the transaction coordinator of
//   the id (package txns): the group is persisted in etcd as part of the
//   now Ongoing transaction before the answer. When the transaction ends,
//   the coordinator writes a group marker (commit or abort) into etcd,
//   which the group's coordinator applies to the offsets pending there.
// * The same checks as AddPartitionsToTxn: NOT_COORDINATOR on a gateway
//   that does not coordinate the id, INVALID_PRODUCER_ID_MAPPING for a
//   producer id the transactional id does not have, PRODUCER_FENCED for
//   another epoch, CONCURRENT_TRANSACTIONS while the previous transaction
//   is ending, INVALID_REQUEST for an empty transactional id;
//   INVALID_GROUP_ID for an empty group.
//
// Version notes:
// * v2: PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before, KIP-588); v3:
//   flexible. v4 (KIP-890) is not served.

func init() { register(25, 0, 3, false, (*Handlers).handleAddOffsetsToTxn) }

func (h *Handlers) handleAddOffsetsToTxn(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.AddOffsetsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	if e := h.cfg.Txns.AddOffsets(ctx, req.TransactionalID, txns.ProducerIDAndEpoch{ID: req.ProducerID, Epoch: req.ProducerEpoch}, req.Group); e != nil {
		resp.ErrorCode = fencedCode(e, req.Version < 2)
	}
	return resp, nil
}
