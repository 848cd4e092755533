package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeTransactions: v0
//
// Behaviour:
// * KIP-664: each transactional id's state, producer id and epoch,
//   timeout, start time and partitions, from the transaction coordinator
//   of the id (package txns). As with a Kafka broker, a gateway answers
//   for the ids it coordinates: NOT_COORDINATOR for the others (clients
//   look the coordinator up with FindCoordinator type 1 and ask it).
// * An id without state: TRANSACTIONAL_ID_NOT_FOUND; an empty id:
//   INVALID_REQUEST; the id's shard still loading:
//   COORDINATOR_LOAD_IN_PROGRESS.
// * The start time is -1 for an id that never started a transaction; a
//   finished transaction keeps its start time and lists no partitions.
//
// Version notes:
// * v0 only (flexible).

func init() { register(65, 0, 0, false, (*Handlers).handleDescribeTransactions) }

func (h *Handlers) handleDescribeTransactions(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.DescribeTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.ProducerEpoch, st.StartTimestamp = id, -1, -1, -1
		d, e := h.cfg.Txns.Describe(ctx, id)
		if e != nil {
			st.ErrorCode = e.Code
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		st.State, st.TimeoutMillis, st.StartTimestamp = string(d.State), d.TimeoutMs, d.StartTimeMs
		st.ProducerID, st.ProducerEpoch = d.ProducerID, d.ProducerEpoch
		for _, p := range d.Partitions { // sorted by topic, then partition
			if n := len(st.Topics); n == 0 || st.Topics[n-1].Topic != p.Topic {
				rt := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
				rt.Topic = p.Topic
				st.Topics = append(st.Topics, rt)
			}
			last := &st.Topics[len(st.Topics)-1]
			last.Partitions = append(last.Partitions, p.Partition)
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp, nil
}
