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
// * Transaction version 2 (v5+, KIP-890 part 2; see ApiVersions): every
//   end bumps the producer epoch, the markers carry the bumped epoch (a
//   late batch of the ended transaction is then fenced by the
//   partitions), and the answer carries the producer id and epoch to use
//   next (a new producer id at epoch 0 once the epoch is exhausted). An
//   abort with no transaction open succeeds and bumps the epoch; a retry
//   is recognised by the epoch it was sent with.
//
// Version notes:
// * v2: PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before, KIP-588); v3:
//   flexible; v4: TRANSACTION_ABORTABLE may be answered (it is not: no
//   error here leaves a transaction that only an abort can end); v5:
//   transaction version 2, ProducerID and ProducerEpoch in the answer.

func init() { register(26, 0, 5, false, (*Handlers).handleEndTxn) }

func (h *Handlers) handleEndTxn(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.EndTxnRequest)
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	resp.Default()
	next, e := h.cfg.Txns.EndTxn(ctx, req.TransactionalID, txns.ProducerIDAndEpoch{ID: req.ProducerID, Epoch: req.ProducerEpoch}, req.Commit, req.Version >= 5)
	if e != nil {
		resp.ErrorCode = fencedCode(e, req.Version < 2)
		return resp, nil
	}
	if req.Version >= 5 {
		resp.ProducerID, resp.ProducerEpoch = next.ID, next.Epoch
	}
	return resp, nil
}
