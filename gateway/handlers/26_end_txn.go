package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/txns"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// EndTxn: v0-3
//
// Behaviour:
// * Commits or aborts the producer's Ongoing transaction, through the
//   transaction coordinator of the id (package txns): PrepareCommit or
//   PrepareAbort is persisted in etcd, a commit or abort marker is written
//   to every partition of the transaction through its leading log-service
//   node (LogService.WriteTxnMarkers), and CompleteCommit or CompleteAbort
//   is persisted. The answer comes after all of that (Kafka answers once
//   Prepare* is persisted), so a read_committed consumer sees a committed
//   transaction as soon as the commit returns. Markers that cannot be
//   written within 5 s (a leader down) are retried in the background and
//   the answer is CONCURRENT_TRANSACTIONS: the client retries, and its
//   retry succeeds once the transaction completed.
// * A retry of an EndTxn that completed succeeds; ending the transaction
//   the other way, or when none is open, is INVALID_TXN_STATE.
// * NOT_COORDINATOR on a gateway that does not coordinate the id,
//   INVALID_PRODUCER_ID_MAPPING for a producer id the transactional id
//   does not have, PRODUCER_FENCED for another epoch, INVALID_REQUEST for
//   an empty transactional id.
//
// Version notes:
// * v2: PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before, KIP-588); v3:
//   flexible.
// * v4 (TRANSACTION_ABORTABLE) and v5 (KIP-890 epoch bump per transaction)
//   are not served: transaction version 2 is not advertised.

func init() { register(26, 0, 3, false, (*Handlers).handleEndTxn) }

func (h *Handlers) handleEndTxn(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.EndTxnRequest)
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	if e := h.cfg.Txns.EndTxn(ctx, req.TransactionalID, txns.ProducerIDAndEpoch{ID: req.ProducerID, Epoch: req.ProducerEpoch}, req.Commit); e != nil {
		resp.ErrorCode = fencedCode(e, req.Version < 2)
	}
	return resp, nil
}
