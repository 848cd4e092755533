package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/txns"
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
// * Transaction version 2 (v5+, KIP-890 part 2): the producer no longer
//   sends AddOffsetsToTxn; the group is added to its transaction here,
//   before the offsets are stored, through the id's transaction
//   coordinator (this gateway's, or the coordinating gateway's over the
//   Kafka protocol). Its refusals are answered for every partition: a
//   fenced producer PRODUCER_FENCED, an unknown producer
//   INVALID_PRODUCER_ID_MAPPING, a transaction that cannot take the group
//   now (still ending, coordinator moving) COORDINATOR_NOT_AVAILABLE,
//   which clients retry (as Kafka's group coordinator answers a failed
//   verification).
//
// Version notes:
// * v2: leader epoch; v3: flexible, generation, member id and
//   group.instance.id (KIP-447); v4: TRANSACTION_ABORTABLE may be answered
//   (it is not); v5: transaction version 2 (the implicit add). v6 (topic
//   ids) is not served.

func init() { register(28, 0, 5, false, (*Handlers).handleTxnOffsetCommit) }

func (h *Handlers) handleTxnOffsetCommit(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.TxnOffsetCommitRequest)
	var resp *kmsg.TxnOffsetCommitResponse
	if e := h.implicitAddGroup(ctx, req); e != nil {
		resp = txnOffsetCommitError(req, e)
	} else {
		resp = h.cfg.Groups.TxnCommitOffsets(ctx, req, h.partitionExists)
	}
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

// implicitAddGroup adds the request's group to its producer's transaction
// for a TxnOffsetCommit v5+ (transaction version 2; nothing before).
func (h *Handlers) implicitAddGroup(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) *kerr.Error {
	if req.Version < 5 || req.Group == "" || req.TransactionalID == "" {
		return nil // the group coordinator answers INVALID_GROUP_ID / INVALID_REQUEST
	}
	if !h.cfg.Groups.Owns(req.Group) {
		return kerr.NotCoordinator // not this gateway's group: nothing is added
	}
	e := h.cfg.Txns.ImplicitAddOffsets(ctx, req.TransactionalID, txns.ProducerIDAndEpoch{ID: req.ProducerID, Epoch: req.ProducerEpoch}, req.Group)
	switch e {
	case kerr.ConcurrentTransactions, kerr.CoordinatorLoadInProgress, kerr.CoordinatorNotAvailable,
		kerr.NotCoordinator, kerr.RequestTimedOut:
		return kerr.CoordinatorNotAvailable
	}
	return e
}

// txnOffsetCommitError answers every partition of req with e.
func txnOffsetCommitError(req *kmsg.TxnOffsetCommitRequest, e *kerr.Error) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, e.Code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
