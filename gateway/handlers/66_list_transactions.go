package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/txns"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListTransactions: v0-1
//
// Behaviour:
// * KIP-664: like a Kafka broker, which lists the transactions of the
//   __transaction_state partitions it leads, a gateway lists the
//   transactional ids it coordinates (those of the group shards it
//   holds); clients (kadm, kafka-transactions.sh) ask every broker and
//   merge, as they do for ListGroups.
// * StateFilters (Kafka's state names: Empty, Ongoing, PrepareCommit,
//   PrepareAbort, CompleteCommit, CompleteAbort) and ProducerIDFilters
//   are applied; a state name Kafka does not know matches nothing and is
//   returned in UnknownStateFilters.
// * v1 DurationFilterMillis (>= 0) keeps transactions started longer ago
//   than that, compared as Kafka does (now - start time).
// * A shard of this gateway still loading: COORDINATOR_LOAD_IN_PROGRESS,
//   which clients retry.
//
// Version notes:
// * v0: flexible; v1: DurationFilterMillis.
// * v2 (TransactionalIDPattern) is not served.

func init() { register(66, 0, 1, false, (*Handlers).handleListTransactions) }

func (h *Handlers) handleListTransactions(_ context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.ListTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	f := txns.ListFilter{States: req.StateFilters, ProducerIDs: req.ProducerIDFilters, MinDurationMs: req.DurationFilterMillis}
	if req.Version < 1 {
		f.MinDurationMs = -1
	}
	list, unknown, e := h.cfg.Txns.List(f)
	resp.UnknownStateFilters = unknown
	if e != nil {
		resp.ErrorCode = e.Code
		return resp, nil
	}
	for _, l := range list {
		ts := kmsg.NewListTransactionsResponseTransactionState()
		ts.TransactionalID, ts.ProducerID, ts.TransactionState = l.TransactionalID, l.ProducerID, string(l.State)
		resp.TransactionStates = append(resp.TransactionStates, ts)
	}
	return resp, nil
}
