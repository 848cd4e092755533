package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/txns"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// InitProducerId: v0-4
//
// Behaviour:
// * Idempotent producers (null transactional id): every call hands out a
//   new cluster-wide unique producer id (meta.Store.NextProducerID, a
//   compare-and-swap on one etcd counter) with epoch 0. The v3+
//   ProducerID/ProducerEpoch fields are ignored for them, as Kafka does:
//   a fresh id is just as good.
// * Transactional producers: answered by the transaction coordinator
//   (package txns) of the gateway holding the id's shard, others answer
//   NOT_COORDINATOR. An empty id is INVALID_REQUEST; a
//   transaction.timeout.ms above the gateway's maximum (Kafka's
//   transaction.max.timeout.ms, default 15 min) or not positive is
//   INVALID_TRANSACTION_TIMEOUT. A new id gets a new producer id at epoch
//   0; an existing one its epoch bumped, which fences older instances (a
//   new producer id once the epoch is exhausted). An Ongoing transaction
//   is aborted first and the answer is CONCURRENT_TRANSACTIONS; the client
//   retries once the abort completes. KIP-360 (v3+, the producer's id and
//   epoch in the request): a producer recovering from an abortable error
//   gets its epoch bumped, a stale one PRODUCER_FENCED.
// * A producer id without an epoch, or an epoch without a producer id, is
//   INVALID_REQUEST (as Kafka).
// * An etcd failure is COORDINATOR_NOT_AVAILABLE, which clients retry.
//
// Version notes:
// * v2: flexible; v3: ProducerID/ProducerEpoch in the request; v4:
//   PRODUCER_FENCED (KIP-588; INVALID_PRODUCER_EPOCH before v4).
// * v5 (transaction version 2, KIP-890) is not served.

func init() { register(22, 0, 4, false, (*Handlers).handleInitProducerID) }

func (h *Handlers) handleInitProducerID(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if (req.ProducerID == -1) != (req.ProducerEpoch == -1) {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	if req.TransactionalID != nil {
		var expected *txns.ProducerIDAndEpoch
		if req.ProducerID != -1 {
			expected = &txns.ProducerIDAndEpoch{ID: req.ProducerID, Epoch: req.ProducerEpoch}
		}
		p, e := h.cfg.Txns.InitProducerID(ctx, *req.TransactionalID, req.TransactionTimeoutMillis, expected)
		if e != nil {
			resp.ErrorCode = fencedCode(e, req.Version < 4)
			return resp, nil
		}
		resp.ProducerID, resp.ProducerEpoch = p.ID, p.Epoch
		return resp, nil
	}
	id, err := h.store.NextProducerID(ctx)
	if err != nil {
		h.log.Warn("allocating producer id failed", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp, nil
}

// fencedCode is e's code for a client of a version that predates
// PRODUCER_FENCED (KIP-588) when old: INVALID_PRODUCER_EPOCH instead, as
// Kafka answers such clients.
func fencedCode(e *kerr.Error, old bool) int16 {
	if e == kerr.ProducerFenced && old {
		return kerr.InvalidProducerEpoch.Code
	}
	return e.Code
}
