package handlers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/txns"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Produce: v3-12
//
// Behaviour:
// * Each partition must carry exactly one magic-v2 record batch (Kafka's
//   rule since v3). The gateway checks only the batch's shape (header,
//   magic, length, zstd only from v7); logsvc, the partition's single
//   writer, checks the CRC, max.message.bytes and producer sequences.
// * acks must be -1, 0 or 1 (else INVALID_REQUIRED_ACKS). acks=0 is
//   forwarded and awaited like any produce, then answered with nothing.
// * A missing topic is never auto-created (clients create topics through
//   Metadata, as with Kafka): UNKNOWN_TOPIC_OR_PARTITION.
// * Partitions are grouped by their leading log-service node and sent as
//   one request per node on that node's LogService.ProduceStream; the
//   nodes answer in parallel. A leader that is not
//   live, unreachable or failing gives NOT_LEADER_OR_FOLLOWER, a missed
//   deadline REQUEST_TIMED_OUT; both make clients refresh and retry.
// * The gRPC deadline is the request's timeout plus rpcGrace, so logsvc's
//   own REQUEST_TIMED_OUT (with its message) normally arrives first.
// * Ordered: produces on one connection are submitted to the node streams
//   one at a time in arrival order (see kafkaserver), and each node appends
//   in stream order, which keeps Kafka's guarantee that batches sent on one
//   connection are appended in order. Once submitted, the next produce of
//   the connection starts (kafkaserver.ReleaseOrder) while this one awaits
//   durability, so a client's pipelined produces overlap.
// * Transactions (v3+ TransactionalID): before anything is forwarded, the
//   transaction's coordinator state is read from etcd once per request, and
//   every transactional batch must belong to it (KIP-890 part 1's
//   verification, done by the gateway): the producer id and epoch of the
//   ongoing transaction, and a partition AddPartitionsToTxn added. A
//   partition not in the transaction, or a transaction that is not
//   ongoing, is INVALID_TXN_STATE; an older epoch INVALID_PRODUCER_EPOCH;
//   an unknown transactional id or producer id
//   INVALID_PRODUCER_ID_MAPPING. So a batch of a transaction that already
//   ended (a late retry) does not open a transaction nobody will end. A
//   transactional batch without a transactional id is INVALID_RECORD.
//   The log service then refuses transactional batches on topics whose
//   storage mode does not support them yet (INVALID_TXN_STATE).
//
// Version notes:
// * v5: LogStartOffset; v7: zstd; v8: ErrorRecords, ErrorMessage
// * v9: flexible; v10: CurrentLeader/NodeEndpoints tags (not sent: clients
//   refresh metadata instead)
// * v12: transaction version 2 (KIP-890 part 2): a transactional batch for
//   a partition its transaction does not have yet (or a transaction not
//   ongoing yet) adds the partition through the id's transaction
//   coordinator (this gateway's, or the coordinating gateway's over the
//   Kafka protocol) before it is forwarded, instead of INVALID_TXN_STATE;
//   see implicitAddPartitions for the errors.
// * v13 (topic ids) is not served.

func init() { register(0, 3, 12, true, (*Handlers).handleProduce) }

// rpcGrace is added to client-supplied timeouts for the gRPC deadline, so a
// node that times out answers with a Kafka error before the call is cut.
const rpcGrace = 5 * time.Second

type produceCall struct {
	addr string
	req  *logv1.ProduceRequest // the stream's once submitted: not read after
	dst  []*kmsg.ProduceResponseTopicPartition
	// topics[i] is the topic of dst[i] and req.Partitions[i], kept here
	// because req belongs to the stream once submitted (see Submit).
	topics []string
	// Set by submit: how to wait for the node's answer, or why it failed.
	wait func(context.Context) (*logv1.ProduceResponse, error)
	err  error
}

func (h *Handlers) handleProduce(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	began := time.Now()
	req := kr.Body.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	var modes perMode

	var reqErr *kerr.Error
	var reqMsg string
	switch {
	case req.Acks != -1 && req.Acks != 0 && req.Acks != 1:
		reqErr, reqMsg = kerr.InvalidRequiredAcks, fmt.Sprintf("acks=%d: must be -1, 0 or 1", req.Acks)
	}
	var txn *meta.TxnMeta
	if req.TransactionID != nil && reqErr == nil {
		txn, reqErr, reqMsg = h.producingTxn(ctx, *req.TransactionID)
	}
	calls := map[string]*produceCall{}
	// send queues a checked partition for its leading node.
	send := func(topic meta.Topic, rp *kmsg.ProduceRequestTopicPartition, sp *kmsg.ProduceResponseTopicPartition) {
		_, node, ke, msg := h.route(topic.Name, rp.Partition)
		if ke != nil {
			setProduceErr(sp, ke, msg)
			return
		}
		c := calls[node.Addr]
		if c == nil {
			c = &produceCall{addr: node.Addr, req: &logv1.ProduceRequest{Acks: int32(req.Acks), TimeoutMs: req.TimeoutMillis}}
			calls[node.Addr] = c
		}
		c.req.Partitions = append(c.req.Partitions, &logv1.ProducePartition{
			Topic: topic.Name, TopicId: topic.ID[:], Partition: rp.Partition, Records: rp.Records,
		})
		c.dst = append(c.dst, sp)
		c.topics = append(c.topics, topic.Name)
		modes.add(topic.StorageMode, len(rp.Records))
	}
	var adds map[txns.ProducerIDAndEpoch][]implicitAdd // transactional v12+ only
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		rt := &req.Topics[ti]
		st := &resp.Topics[ti]
		*st = kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		topic, exists := h.cache.Topic(rt.Topic)
		nameErr, nameMsg := topicNameError(rt.Topic)
		for pi := range rt.Partitions {
			rp := &rt.Partitions[pi]
			sp := &st.Partitions[pi]
			*sp = kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = -1, -1, -1
			switch {
			case reqErr != nil:
				setProduceErr(sp, reqErr, reqMsg)
				continue
			case nameErr != nil:
				setProduceErr(sp, nameErr, nameMsg)
				continue
			case !exists:
				setProduceErr(sp, kerr.UnknownTopicOrPartition, "unknown topic "+rt.Topic)
				continue
			}
			hdr, ke, msg := checkProduceBatch(req.Version, rp.Records)
			if ke != nil {
				setProduceErr(sp, ke, msg)
				continue
			}
			if ke, msg := checkTxnBatch(req.TransactionID, txn, rt.Topic, rp.Partition, hdr); ke != nil {
				if ke == kerr.InvalidTxnState && req.Version >= 12 {
					// Transaction version 2: the produce adds the partition.
					p := txns.ProducerIDAndEpoch{ID: hdr.ProducerID, Epoch: hdr.ProducerEpoch}
					if adds == nil {
						adds = map[txns.ProducerIDAndEpoch][]implicitAdd{}
					}
					adds[p] = append(adds[p], implicitAdd{topic: topic, rp: rp, sp: sp})
					continue
				}
				setProduceErr(sp, ke, msg)
				continue
			}
			send(topic, rp, sp)
		}
	}
	if len(adds) > 0 { // only with a transactional id: see checkTxnBatch
		h.implicitAddPartitions(ctx, *req.TransactionID, adds, send)
	}

	// The order-sensitive part: hand each node its batches on the node's
	// produce stream, in this connection's request order. Then let the
	// next produce of the connection go while this one awaits durability.
	for _, c := range calls {
		ps, err := h.cfg.Logs.Producer(c.addr)
		if err == nil {
			c.wait, err = ps.Submit(ctx, c.req)
		}
		c.err = err
	}
	kafkaserver.ReleaseOrder(ctx)

	rpcCtx, cancel := context.WithTimeout(ctx, time.Duration(max(req.TimeoutMillis, 0))*time.Millisecond+rpcGrace)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Go(func() { h.awaitProduce(rpcCtx, c) })
	}
	wg.Wait()
	modes.record(&h.cfg.Metrics.produceDur, &h.cfg.Metrics.produceBytes, began)
	if req.Acks == 0 {
		return nil, nil
	}
	return resp, nil
}

// awaitProduce waits for one node's answer and copies its results into
// the response partitions it covers (results come back in request order).
func (h *Handlers) awaitProduce(ctx context.Context, c *produceCall) {
	resp, err := (*logv1.ProduceResponse)(nil), c.err
	if err == nil {
		resp, err = c.wait(ctx)
	}
	if err != nil {
		ke := rpcError(err)
		for _, sp := range c.dst {
			setProduceErr(sp, ke, fmt.Sprintf("log service %s: %v", c.addr, err))
		}
		return
	}
	results := resp.GetPartitions()
	for i, sp := range c.dst {
		if i >= len(results) || results[i].GetTopic() != c.topics[i] || results[i].GetPartition() != sp.Partition {
			h.log.Error("log service answered produce out of order", "addr", c.addr, "sent", len(c.dst), "got", len(results))
			setProduceErr(sp, kerr.UnknownServerError, "log service returned mismatched produce results")
			continue
		}
		r := results[i]
		sp.ErrorCode = int16(r.GetErrorCode())
		sp.ErrorMessage = msgp(r.GetErrorMessage())
		if sp.ErrorCode == 0 {
			sp.BaseOffset = r.GetBaseOffset()
			sp.LogAppendTime = r.GetLogAppendTimeMs()
			sp.LogStartOffset = r.GetLogStartOffset()
		}
	}
}

func setProduceErr(sp *kmsg.ProduceResponseTopicPartition, ke *kerr.Error, msg string) {
	sp.ErrorCode = ke.Code
	sp.ErrorMessage = msgp(msg)
}

// checkProduceBatch checks the shape Kafka requires of a produce v3+
// partition: exactly one record batch, magic 2, zstd only from v7.
func checkProduceBatch(version int16, b []byte) (recbatch.Header, *kerr.Error, string) {
	var none recbatch.Header
	if len(b) == 0 {
		return none, kerr.InvalidRecord, "produce requests must carry exactly one record batch per partition"
	}
	hdr, err := recbatch.ParseHeader(b)
	switch {
	case errors.Is(err, recbatch.ErrTruncated):
		return none, kerr.CorruptMessage, err.Error()
	case err != nil:
		return none, kerr.InvalidRecord, err.Error()
	case hdr.Size() > len(b):
		return none, kerr.CorruptMessage, fmt.Sprintf("record batch of %d bytes truncated to %d", hdr.Size(), len(b))
	case hdr.Size() < len(b):
		return none, kerr.InvalidRecord, "produce requests must carry exactly one record batch per partition"
	case version < 7 && hdr.Compression() == recbatch.CompressionZstd:
		return none, kerr.UnsupportedCompressionType, "zstd compression requires produce v7 or later"
	}
	return hdr, nil, ""
}

// implicitAdd is a partition of a transactional Produce v12+ waiting to be
// added to its producer's transaction.
type implicitAdd struct {
	topic meta.Topic
	rp    *kmsg.ProduceRequestTopicPartition
	sp    *kmsg.ProduceResponseTopicPartition
}

// implicitAddPartitions adds the partitions of a transactional Produce
// v12+ that are not in their producer's transaction yet (transaction
// version 2, KIP-890 part 2), through the id's transaction coordinator,
// and sends those it accepts. Its refusals are answered as Kafka's
// brokers answer a failed add: PRODUCER_FENCED as INVALID_PRODUCER_EPOCH,
// and the transient ones (the previous transaction still ending, the
// coordinator moving or loading) as NOT_ENOUGH_REPLICAS, which every
// client retries without a metadata refresh.
func (h *Handlers) implicitAddPartitions(ctx context.Context, id string, adds map[txns.ProducerIDAndEpoch][]implicitAdd,
	send func(meta.Topic, *kmsg.ProduceRequestTopicPartition, *kmsg.ProduceResponseTopicPartition)) {
	for p, parts := range adds {
		tps := make([]meta.TopicPartition, len(parts))
		for i, a := range parts {
			tps[i] = meta.TopicPartition{Topic: a.topic.Name, Partition: a.rp.Partition}
		}
		errs := h.cfg.Txns.ImplicitAddPartitions(ctx, id, p, tps)
		for i, a := range parts {
			switch e := errs[i]; e {
			case nil:
				send(a.topic, a.rp, a.sp)
			case kerr.ProducerFenced:
				setProduceErr(a.sp, kerr.InvalidProducerEpoch, fmt.Sprintf("producer epoch %d of transactional id %q is fenced", p.Epoch, id))
			case kerr.ConcurrentTransactions, kerr.CoordinatorLoadInProgress, kerr.CoordinatorNotAvailable,
				kerr.NotCoordinator, kerr.RequestTimedOut:
				setProduceErr(a.sp, kerr.NotEnoughReplicas, fmt.Sprintf("adding %s-%d to the transaction of %q: %v; retry",
					a.topic.Name, a.rp.Partition, id, e))
			default:
				setProduceErr(a.sp, e, fmt.Sprintf("adding %s-%d to the transaction of %q: %v", a.topic.Name, a.rp.Partition, id, e))
			}
		}
	}
}

// producingTxn reads the coordinator state of the transactional id a
// produce request carries (one etcd read per request).
func (h *Handlers) producingTxn(ctx context.Context, id string) (*meta.TxnMeta, *kerr.Error, string) {
	st, err := h.store.LoadTxn(ctx, id)
	switch {
	case errors.Is(err, meta.ErrCorruptTxnState):
		return nil, kerr.InvalidTxnState, fmt.Sprintf("transactional id %q: %v", id, err)
	case err != nil:
		return nil, kerr.RequestTimedOut, fmt.Sprintf("reading transactional id %q: %v", id, err)
	case st.Meta == nil:
		return nil, kerr.InvalidProducerIDMapping, fmt.Sprintf("unknown transactional id %q: call InitProducerId first", id)
	}
	return st.Meta, nil, ""
}

// checkTxnBatch checks a batch of a produce request against the request's
// transaction (txn, read by producingTxn; nil without a transactional id).
func checkTxnBatch(id *string, txn *meta.TxnMeta, topic string, partition int32, hdr recbatch.Header) (*kerr.Error, string) {
	if !hdr.Transactional() {
		return nil, ""
	}
	switch {
	case id == nil || txn == nil:
		return kerr.InvalidRecord, "a transactional record batch needs the produce request's transactional id"
	case hdr.ProducerID != txn.ProducerID:
		return kerr.InvalidProducerIDMapping, fmt.Sprintf("producer id %d is not the current producer of transactional id %q", hdr.ProducerID, *id)
	case hdr.ProducerEpoch < txn.ProducerEpoch:
		return kerr.InvalidProducerEpoch, fmt.Sprintf("producer epoch %d of transactional id %q is fenced by epoch %d", hdr.ProducerEpoch, *id, txn.ProducerEpoch)
	case hdr.ProducerEpoch != txn.ProducerEpoch || txn.State != meta.TxnOngoing:
		return kerr.InvalidTxnState, fmt.Sprintf("transactional id %q has no ongoing transaction at producer epoch %d (state %s)", *id, hdr.ProducerEpoch, txn.State)
	}
	for _, p := range txn.Partitions {
		if p.Topic == topic && p.Partition == partition {
			return nil, ""
		}
	}
	return kerr.InvalidTxnState, fmt.Sprintf("%s-%d was not added to the transaction of %q (AddPartitionsToTxn)", topic, partition, *id)
}
