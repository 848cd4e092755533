package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/txns"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AddPartitionsToTxn: v0-3
//
// Behaviour:
// * The client path of transaction version 1: a transactional producer
//   adds the partitions it is about to produce to. Answered by the
//   transaction coordinator of the id (package txns); the partitions are
//   persisted in etcd as part of the now Ongoing transaction before the
//   answer.
// * If any partition does not exist, none is added: those are
//   UNKNOWN_TOPIC_OR_PARTITION, the others OPERATION_NOT_ATTEMPTED.
// * Otherwise every partition gets the coordinator's answer:
//   NOT_COORDINATOR on a gateway that does not coordinate the id,
//   INVALID_PRODUCER_ID_MAPPING for a producer id the transactional id
//   does not have, PRODUCER_FENCED for another epoch,
//   CONCURRENT_TRANSACTIONS while the previous transaction is ending
//   (clients retry), INVALID_REQUEST for an empty transactional id.
//
// Version notes:
// * v2: PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before, KIP-588); v3:
//   flexible.
// * v4+ (KIP-890: batched transactions, VerifyOnly for brokers) is not
//   served: transaction version 2 is not advertised.

func init() { register(24, 0, 3, false, (*Handlers).handleAddPartitionsToTxn) }

func (h *Handlers) handleAddPartitionsToTxn(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.AddPartitionsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	var parts []meta.TopicPartition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			parts = append(parts, meta.TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	errs := h.cfg.Txns.AddPartitions(ctx, req.TransactionalID, txns.ProducerIDAndEpoch{ID: req.ProducerID, Epoch: req.ProducerEpoch}, parts)
	i := 0
	for _, t := range req.Topics {
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition = p
			if e := errs[i]; e != nil {
				rp.ErrorCode = fencedCode(e, req.Version < 2)
			}
			i++
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
