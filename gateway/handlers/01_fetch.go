package handlers

import (
	"context"
	"time"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fetch: v4-16
//
// Behaviour:
// * Partitions are grouped by leading log-service node and read with one
//   LogService.Fetch per node, in parallel, each long-polling with the
//   request's MaxWaitMs/MinBytes. With several nodes, as soon as the
//   answers gathered so far hold MinBytes (or any error), the remaining
//   long polls are cancelled and re-asked without waiting, so one idle
//   node does not hold back data another already returned. Cancelling a
//   fetch loses nothing: reads have no side effects.
// * MaxBytes is split evenly across the nodes of one request (each node
//   still returns at least one batch, as Kafka does), so a response stays
//   within MaxBytes except for that oversized-first-batch allowance per node.
// * Errors found here (unknown topic/partition, unknown topic id, leader not
//   live) complete the fetch at once, as in Kafka: long polls are skipped.
// * Fetch sessions (KIP-227, v7+) are not implemented: every response has
//   SessionID 0, which tells clients to send full fetches. A request for an
//   incremental fetch (SessionEpoch > 0) gets FETCH_SESSION_ID_NOT_FOUND and
//   one with an epoch below -1 INVALID_FETCH_SESSION_EPOCH, so clients that
//   believe they hold a session reset it.
// * IsolationLevel read_committed (1): each partition's data stops at its
//   last stable offset (the log service's), and the aborted transactions
//   overlapping the returned batches are listed (AbortedTransactions), so
//   the client drops their records. LastStableOffset is the partition's
//   LSO at both levels (Kafka reports it to read_uncommitted consumers
//   too). Transactional batches exist on local topics only for now.
//
// Version notes:
// * v5: LogStartOffset; v7: sessions; v9: CurrentLeaderEpoch (checked by
//   logsvc); v11: Rack (ignored); v12: flexible
// * v13: topic ids (resolved through the cache; unknown → UNKNOWN_TOPIC_ID)
// * v15: ReplicaState (ignored: only consumers fetch from gateways)

func init() { register(1, 4, 16, false, (*Handlers).handleFetch) }

type fetchCall struct {
	addr string
	req  *logv1.FetchRequest
	dst  []*kmsg.FetchResponseTopicPartition
	resp *logv1.FetchResponse
	err  error
}

func (h *Handlers) handleFetch(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	began := time.Now()
	req := kr.Body.(*kmsg.FetchRequest)
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	if req.Version >= 7 {
		resp.SessionID = 0
		switch {
		case req.SessionEpoch > 0:
			resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
			return resp, nil
		case req.SessionEpoch < -1:
			resp.ErrorCode = kerr.InvalidFetchSessionEpoch.Code
			return resp, nil
		}
	}

	calls := map[string]*fetchCall{}
	var order []*fetchCall // deterministic iteration for budgets
	immediate := false
	resp.Topics = make([]kmsg.FetchResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		rt := &req.Topics[ti]
		st := &resp.Topics[ti]
		*st = kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		var topic meta.Topic
		var topicErr *kerr.Error
		if req.Version >= 13 {
			t, ok := h.cache.TopicByID(meta.TopicID(rt.TopicID))
			if ok {
				topic, st.Topic = t, t.Name
			} else {
				topicErr = kerr.UnknownTopicID
			}
		} else if t, ok := h.cache.Topic(rt.Topic); ok {
			topic = t
		} else if ke, _ := topicNameError(rt.Topic); ke != nil {
			topicErr = ke
		} else {
			topicErr = kerr.UnknownTopicOrPartition
		}
		st.Partitions = make([]kmsg.FetchResponseTopicPartition, len(rt.Partitions))
		for pi := range rt.Partitions {
			rp := &rt.Partitions[pi]
			sp := &st.Partitions[pi]
			*sp = kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			sp.PreferredReadReplica = -1
			// Empty but present: some clients (librdkafka) read a null
			// record set as an invalid size.
			sp.RecordBatches = []byte{}
			if topicErr != nil {
				sp.ErrorCode, immediate = topicErr.Code, true
				continue
			}
			_, node, ke, _ := h.route(topic.Name, rp.Partition)
			if ke != nil {
				sp.ErrorCode, immediate = ke.Code, true
				continue
			}
			c := calls[node.Addr]
			if c == nil {
				c = &fetchCall{addr: node.Addr, req: &logv1.FetchRequest{
					MaxWaitMs: req.MaxWaitMillis, MinBytes: req.MinBytes, IsolationLevel: int32(req.IsolationLevel),
				}}
				calls[node.Addr] = c
				order = append(order, c)
			}
			c.req.Partitions = append(c.req.Partitions, &logv1.FetchPartition{
				Topic: topic.Name, TopicId: topic.ID[:], Partition: rp.Partition,
				FetchOffset: rp.FetchOffset, PartitionMaxBytes: rp.PartitionMaxBytes,
				CurrentLeaderEpoch: rp.CurrentLeaderEpoch,
			})
			c.dst = append(c.dst, sp)
		}
	}
	if len(order) == 0 {
		return resp, nil
	}
	budget := max(req.MaxBytes/int32(len(order)), 1)
	for _, c := range order {
		c.req.MaxBytes = budget
		if immediate {
			c.req.MaxWaitMs, c.req.MinBytes = 0, 0
		}
	}
	h.runFetches(ctx, order, req.MinBytes, time.Duration(max(req.MaxWaitMillis, 0))*time.Millisecond)
	for _, c := range order {
		copyFetchResults(c)
	}
	h.recordFetch(resp, began)
	return resp, nil
}

// recordFetch records a forwarded fetch's time and bytes by the storage
// mode of its topics.
func (h *Handlers) recordFetch(resp *kmsg.FetchResponse, began time.Time) {
	var modes perMode
	for ti := range resp.Topics {
		st := &resp.Topics[ti]
		t, ok := h.cache.Topic(st.Topic)
		if !ok {
			continue
		}
		n := 0
		for pi := range st.Partitions {
			n += len(st.Partitions[pi].RecordBatches)
		}
		modes.add(t.StorageMode, n)
	}
	modes.record(&h.cfg.Metrics.fetchDur, &h.cfg.Metrics.fetchBytes, began)
}

// runFetches long-polls every node and stops waiting as soon as the answers
// so far are enough to respond; nodes whose polls were cut short are asked
// again without waiting, so their partitions carry current offsets.
func (h *Handlers) runFetches(ctx context.Context, calls []*fetchCall, minBytes int32, maxWait time.Duration) {
	pollCtx, stopPolls := context.WithTimeout(ctx, maxWait+rpcGrace)
	defer stopPolls()
	done := make(chan *fetchCall, len(calls))
	for _, c := range calls {
		go func() {
			c.resp, c.err = h.fetchOnce(pollCtx, c.addr, c.req)
			done <- c
		}()
	}
	var (
		bytes   int64
		stopped bool
		cut     []*fetchCall
	)
	for range calls {
		c := <-done
		if c.err != nil && stopped && ctx.Err() == nil {
			cut = append(cut, c)
			continue
		}
		enough := c.err != nil
		for _, p := range c.resp.GetPartitions() {
			bytes += int64(len(p.GetRecords()))
			enough = enough || p.GetErrorCode() != 0
		}
		if !stopped && (enough || bytes > 0 && bytes >= int64(minBytes)) {
			stopped = true
			stopPolls()
		}
	}
	if len(cut) == 0 {
		return
	}
	againCtx, cancel := context.WithTimeout(ctx, rpcGrace)
	defer cancel()
	for _, c := range cut {
		c.req.MaxWaitMs, c.req.MinBytes = 0, 0
		go func() {
			c.resp, c.err = h.fetchOnce(againCtx, c.addr, c.req)
			done <- c
		}()
	}
	for range cut {
		<-done
	}
}

func (h *Handlers) fetchOnce(ctx context.Context, addr string, req *logv1.FetchRequest) (*logv1.FetchResponse, error) {
	cl, err := h.cfg.Logs.Client(addr)
	if err != nil {
		return nil, err
	}
	return cl.Fetch(ctx, req)
}

func copyFetchResults(c *fetchCall) {
	if c.err != nil {
		ke := rpcError(c.err)
		for _, sp := range c.dst {
			sp.ErrorCode = ke.Code
		}
		return
	}
	results := c.resp.GetPartitions()
	for i, sp := range c.dst {
		sent := c.req.Partitions[i]
		if i >= len(results) || results[i].GetTopic() != sent.Topic || results[i].GetPartition() != sent.Partition {
			sp.ErrorCode = kerr.UnknownServerError.Code
			continue
		}
		r := results[i]
		sp.ErrorCode = int16(r.GetErrorCode())
		sp.HighWatermark = r.GetHighWatermark()
		sp.LastStableOffset = r.GetLastStableOffset()
		sp.LogStartOffset = r.GetLogStartOffset()
		if recs := r.GetRecords(); len(recs) > 0 {
			sp.RecordBatches = recs
		}
		// read_committed: the aborted transactions whose batches the
		// consumer must drop (v4+; the log service fills them only for
		// isolation level 1). A nil list is Kafka's "none".
		for _, a := range r.GetAbortedTransactions() {
			at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
			at.ProducerID, at.FirstOffset = a.GetProducerId(), a.GetFirstOffset()
			sp.AbortedTransactions = append(sp.AbortedTransactions, at)
		}
	}
}
