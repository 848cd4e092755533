package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// InitProducerId: v0-4
//
// Behaviour:
// * Idempotent (non-transactional) producers only: every call hands out a
//   new cluster-wide unique producer id (meta.Store.NextProducerID, a
//   compare-and-swap on one etcd counter) with epoch 0. The v3+
//   ProducerID/ProducerEpoch fields (KIP-360 epoch bumps) only matter for
//   transactional producers and are ignored, as Kafka does for idempotent
//   ones: a fresh id is just as good.
// * A non-null transactional id is answered with INVALID_REQUEST.
//   Transactions are not built yet; the error must make clients fail at
//   once rather than retry forever, so retriable codes (for example
//   COORDINATOR_NOT_AVAILABLE) are out, and TRANSACTIONAL_ID_AUTHORIZATION_
//   FAILED would send users chasing ACLs that do not exist. INVALID_REQUEST
//   is non-retriable and says the broker cannot serve this request. (Most
//   clients stop earlier anyway: FindCoordinator is not advertised.)
// * An etcd failure is COORDINATOR_NOT_AVAILABLE, which clients retry.
//
// Version notes:
// * v2: flexible; v3: ProducerID/ProducerEpoch in the request; v4: same
//   wire format as v3 (clients may expect PRODUCER_FENCED semantics).

func init() { register(22, 0, 4, false, (*Handlers).handleInitProducerID) }

func (h *Handlers) handleInitProducerID(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.InvalidRequest.Code
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
