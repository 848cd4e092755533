package txns

import (
	"cmp"
	"context"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/streamline-dev/streamline/gateway/ops"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ProducerIDAndEpoch is a producer's id and epoch.
type ProducerIDAndEpoch struct {
	ID    int64
	Epoch int16
}

var noProducer = ProducerIDAndEpoch{ID: meta.NoProducerID, Epoch: meta.NoProducerEpoch}

// exhausted is Kafka's TransactionMetadata.isEpochExhausted: the last
// epoch is kept for fencing the producer, so a producer id is rotated
// once its epoch reaches MaxInt16-1.
func exhausted(epoch int16) bool { return epoch >= math.MaxInt16-1 }

// ending reports whether a transaction in state s is writing its markers.
func ending(s meta.TxnState) bool { return s == meta.TxnPrepareCommit || s == meta.TxnPrepareAbort }

// fence is the abort of an Ongoing transaction that its producer did not
// end (a new producer instance initialised, or the transaction timed
// out): PrepareAbort at the next epoch, with no last epoch, so the old
// producer is fenced and cannot pass for a retry (Kafka's
// prepareFenceProducerEpoch followed by the abort).
func fence(m *meta.TxnMeta, now int64) *meta.TxnMeta {
	next := m.Clone()
	if next.ProducerEpoch < math.MaxInt16 {
		next.ProducerEpoch++
	}
	next.LastProducerEpoch = meta.NoProducerEpoch
	next.State, next.TxnVersion = meta.TxnPrepareAbort, 0
	next.LastUpdateTimeMs = now
	return next
}

// newProducerID allocates a producer id (a cluster-wide etcd counter).
// Called with t.mu held.
func (c *Coordinator) newProducerID(t *txn) (int64, *kerr.Error) {
	ctx, cancel := context.WithTimeout(t.sh.ctx, persistTimeout)
	defer cancel()
	id, err := c.store.NextProducerID(ctx)
	if err != nil {
		c.log.Warn("allocating a producer id failed", "transactional_id", t.id, "err", err)
		return 0, kerr.CoordinatorNotAvailable
	}
	return id, nil
}

// InitProducerID answers a transactional InitProducerId (Kafka's
// handleInitProducerId). timeoutMs is the producer's
// transaction.timeout.ms; expected is the producer's current id and epoch
// (KIP-360, v3+), nil when it has none. A new id gets a new producer id at
// epoch 0; an existing one its epoch bumped (a new producer id once the
// epoch is exhausted), which fences older instances of the producer. An
// Ongoing transaction is aborted first, at a bumped epoch, and the caller
// is told CONCURRENT_TRANSACTIONS to retry once the abort completes. With
// expected, a producer recovering from an abortable error gets its epoch
// bumped, and a retry of a bump whose answer it lost gets the same answer
// again; any other expected producer is PRODUCER_FENCED.
func (c *Coordinator) InitProducerID(ctx context.Context, id string, timeoutMs int32, expected *ProducerIDAndEpoch) (ProducerIDAndEpoch, *kerr.Error) {
	switch {
	case id == "":
		return noProducer, kerr.InvalidRequest
	case timeoutMs <= 0 || time.Duration(timeoutMs)*time.Millisecond > c.cfg.MaxTimeout:
		return noProducer, kerr.InvalidTransactionTimeout
	}
	t, e := c.txn(ctx, id, true)
	if e != nil {
		return noProducer, e
	}
	if e := c.use(t); e != nil {
		return noProducer, e
	}
	defer t.mu.Unlock()
	now := time.Now().UnixMilli()
	cur := t.m
	if cur == nil {
		pid, e := c.newProducerID(t)
		if e != nil {
			return noProducer, e
		}
		cur = &meta.TxnMeta{
			TransactionalID: id, ProducerID: pid, ProducerEpoch: meta.NoProducerEpoch,
			LastProducerID: meta.NoProducerID, LastProducerEpoch: meta.NoProducerEpoch,
			State: meta.TxnEmpty, TimeoutMs: timeoutMs, StartTimeMs: -1, LastUpdateTimeMs: now,
		}
	}
	if expected != nil && !validProducerID(cur, *expected) {
		return noProducer, kerr.ProducerFenced
	}
	switch cur.State {
	case meta.TxnPrepareCommit, meta.TxnPrepareAbort:
		c.startCompletion(t) // running already unless its last attempt stopped
		return noProducer, kerr.ConcurrentTransactions
	case meta.TxnOngoing:
		if e := c.persist(t, fence(cur, now)); e != nil {
			return noProducer, e
		}
		c.startCompletion(t)
		return noProducer, kerr.ConcurrentTransactions
	}
	// Empty, CompleteCommit, CompleteAbort (and Dead, never written here:
	// the id starts over).
	next := cur.Clone()
	if exhausted(cur.ProducerEpoch) && (expected == nil || expected.Epoch == cur.ProducerEpoch) {
		pid, e := c.newProducerID(t)
		if e != nil {
			return noProducer, e
		}
		next.LastProducerID, next.ProducerID, next.ProducerEpoch = cur.ProducerID, pid, 0
		next.LastProducerEpoch = meta.NoProducerEpoch
		if expected != nil {
			next.LastProducerEpoch = cur.ProducerEpoch
		}
	} else {
		// Kafka's prepareIncrementProducerEpoch.
		switch {
		case expected == nil:
			next.ProducerEpoch, next.LastProducerEpoch = cur.ProducerEpoch+1, meta.NoProducerEpoch
		case cur.ProducerEpoch == meta.NoProducerEpoch || expected.Epoch == cur.ProducerEpoch:
			next.ProducerEpoch, next.LastProducerEpoch = cur.ProducerEpoch+1, cur.ProducerEpoch
		case expected.Epoch == cur.LastProducerEpoch:
			// A retry of a bump that succeeded: the same answer again.
		default:
			return noProducer, kerr.ProducerFenced
		}
	}
	next.State, next.Partitions, next.Groups = meta.TxnEmpty, nil, nil
	next.TimeoutMs, next.StartTimeMs, next.LastUpdateTimeMs = timeoutMs, -1, now
	if e := c.persist(t, next); e != nil {
		return noProducer, e
	}
	return ProducerIDAndEpoch{ID: next.ProducerID, Epoch: next.ProducerEpoch}, nil
}

// validProducerID is Kafka's isValidProducerId: the producer id a
// producer says it has may be the current one (its epoch is checked
// next), any when the state was just created, or the previous one if its
// epoch was exhausted (a retry of a rotation whose answer was lost).
func validProducerID(m *meta.TxnMeta, p ProducerIDAndEpoch) bool {
	return m.ProducerEpoch == meta.NoProducerEpoch || p.ID == m.ProducerID ||
		p.ID == m.LastProducerID && exhausted(p.Epoch)
}

// AddPartitions answers AddPartitionsToTxn v0-3 with one error per
// partition, in order. If any partition does not exist, nothing is added:
// those are UNKNOWN_TOPIC_OR_PARTITION and the others
// OPERATION_NOT_ATTEMPTED (as Kafka). Otherwise every partition gets the
// coordinator's answer: INVALID_PRODUCER_ID_MAPPING for a producer id the
// transactional id does not have, PRODUCER_FENCED for another epoch,
// CONCURRENT_TRANSACTIONS while the previous transaction is ending, or
// success once the partitions are persisted as part of the (now Ongoing)
// transaction.
func (c *Coordinator) AddPartitions(ctx context.Context, id string, p ProducerIDAndEpoch, parts []meta.TopicPartition) []*kerr.Error {
	out := make([]*kerr.Error, len(parts))
	add := make([]meta.TxnPartition, 0, len(parts))
	missing := false
	for i, tp := range parts {
		topic, ok := c.cache.Topic(tp.Topic)
		if _, pok := c.cache.Partition(tp.Topic, tp.Partition); !ok || !pok {
			out[i], missing = kerr.UnknownTopicOrPartition, true
			continue
		}
		add = append(add, meta.TxnPartition{Topic: tp.Topic, TopicID: topic.ID, Partition: tp.Partition})
	}
	var e *kerr.Error
	if missing {
		e = kerr.OperationNotAttempted
	} else {
		e = c.addPartitions(ctx, id, p, add)
	}
	for i := range out {
		if out[i] == nil {
			out[i] = e
		}
	}
	return out
}

// lockedTxn returns id's transaction, locked (see use), or the error to
// answer: an empty id is INVALID_REQUEST, one never initialised
// INVALID_PRODUCER_ID_MAPPING.
func (c *Coordinator) lockedTxn(ctx context.Context, id string) (*txn, *kerr.Error) {
	if id == "" {
		return nil, kerr.InvalidRequest
	}
	t, e := c.txn(ctx, id, false)
	if e != nil {
		return nil, e
	}
	if t == nil {
		return nil, kerr.InvalidProducerIDMapping
	}
	if e := c.use(t); e != nil {
		return nil, e
	}
	return t, nil
}

// AddOffsets answers AddOffsetsToTxn v0-3: the group joins the
// producer's transaction (persisted, the transaction Ongoing), so that
// its end writes a group marker deciding the offsets the producer
// commits to the group with TxnOffsetCommit. The same checks as
// AddPartitionsToTxn; an empty group is INVALID_GROUP_ID.
func (c *Coordinator) AddOffsets(ctx context.Context, id string, p ProducerIDAndEpoch, group string) *kerr.Error {
	if group == "" {
		return kerr.InvalidGroupID
	}
	t, e := c.lockedTxn(ctx, id)
	if e != nil {
		return e
	}
	defer t.mu.Unlock()
	m := t.m
	if e := canAddTo(m, p); e != nil {
		return e
	}
	if m.State == meta.TxnOngoing && slices.Contains(m.Groups, group) {
		return nil
	}
	next := m.Clone()
	if !slices.Contains(next.Groups, group) {
		next.Groups = append(next.Groups, group)
		slices.Sort(next.Groups)
	}
	now := time.Now().UnixMilli()
	if m.State != meta.TxnOngoing {
		next.StartTimeMs = now
	}
	next.State, next.LastUpdateTimeMs = meta.TxnOngoing, now
	return c.persist(t, next)
}

// writeGroupMarkers writes a group marker for every group of snap (after
// the partitions' markers), retrying etcd failures with backoff until
// each is written or the shard is dropped (false: the next coordinator
// completes the transaction). The group part of the transaction is done
// once its marker is in etcd: the decision is durable, the group's
// coordinator applies it (package groups), and until it has, the
// offsets are pending - invisible to OffsetFetch, and
// UNSTABLE_OFFSET_COMMIT to a consumer asking for stable offsets.
func (c *Coordinator) writeGroupMarkers(sh *shard, snap *meta.TxnMeta, commit bool) bool {
	mk := meta.GroupTxnMarker{TransactionalID: snap.TransactionalID, ProducerID: snap.ProducerID, ProducerEpoch: snap.ProducerEpoch, Commit: commit}
	backoff := markerBackoffMin
	for i := 0; i < len(snap.Groups); {
		if sh.ctx.Err() != nil {
			return false
		}
		group := snap.Groups[i]
		ctx, cancel := context.WithTimeout(sh.ctx, persistTimeout)
		wrote, err := c.store.WriteGroupTxnMarker(ctx, sh.guard, group, mk)
		cancel()
		switch {
		case err == nil:
			if !wrote {
				c.log.Info("a group marker of the producer is not applied yet; it decides the group's pending offsets",
					"transactional_id", snap.TransactionalID, "group", group, "producer_id", snap.ProducerID)
			}
			i++
			backoff = markerBackoffMin
			continue
		case errors.Is(err, meta.ErrNotCoordinator):
			c.lostShard(sh)
			return false
		}
		if sh.ctx.Err() != nil {
			return false
		}
		c.log.Warn("writing a group transaction marker failed; retrying", "transactional_id", snap.TransactionalID, "group", group, "err", err)
		if !sleep(sh.ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, markerBackoffMax)
	}
	return true
}

// canAddTo says whether producer p may add partitions or a group to the
// transaction m: it must be m's current producer id and epoch, and m not
// ending.
func canAddTo(m *meta.TxnMeta, p ProducerIDAndEpoch) *kerr.Error {
	switch {
	case m == nil || m.State == meta.TxnDead || m.ProducerID != p.ID:
		return kerr.InvalidProducerIDMapping
	case m.ProducerEpoch != p.Epoch:
		return kerr.ProducerFenced
	case ending(m.State):
		return kerr.ConcurrentTransactions
	}
	return nil
}

func (c *Coordinator) addPartitions(ctx context.Context, id string, p ProducerIDAndEpoch, add []meta.TxnPartition) *kerr.Error {
	t, e := c.lockedTxn(ctx, id)
	if e != nil {
		return e
	}
	defer t.mu.Unlock()
	m := t.m
	if e := canAddTo(m, p); e != nil {
		return e
	}
	key := func(tp meta.TxnPartition) meta.TopicPartition {
		return meta.TopicPartition{Topic: tp.Topic, Partition: tp.Partition}
	}
	have := make(map[meta.TopicPartition]bool, len(m.Partitions))
	for _, tp := range m.Partitions {
		have[key(tp)] = true
	}
	next := m.Clone()
	for _, tp := range add {
		if !have[key(tp)] {
			have[key(tp)] = true
			next.Partitions = append(next.Partitions, tp)
		}
	}
	if m.State == meta.TxnOngoing && len(next.Partitions) == len(m.Partitions) {
		return nil // all there already
	}
	slices.SortFunc(next.Partitions, func(a, b meta.TxnPartition) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	now := time.Now().UnixMilli()
	if m.State != meta.TxnOngoing {
		next.StartTimeMs = now // the transaction starts with its first partition
	}
	next.State, next.LastUpdateTimeMs = meta.TxnOngoing, now
	return c.persist(t, next)
}

// EndTxn answers EndTxn (Kafka's handleEndTransaction from a client): an
// Ongoing transaction moves to PrepareCommit or PrepareAbort (persisted),
// its markers are written to every partition's leader, and CompleteCommit
// or CompleteAbort is persisted; the answer comes after all of that
// (stricter than Kafka, which answers once Prepare* is persisted), so a
// read_committed consumer sees a committed transaction as soon as its
// producer's commit returns. If the markers take longer than endTxnWait
// (a leader is down) the answer is CONCURRENT_TRANSACTIONS and the client
// retries; the markers keep being written. A retry of an EndTxn that
// completed succeeds; ending the transaction the other way than it is
// ending, or ending none, is INVALID_TXN_STATE.
//
// v2 is transaction version 2 (KIP-890 part 2, EndTxn v5+): the producer
// epoch is bumped by every end, the markers carry the bumped epoch (so a
// late batch of the ended transaction is fenced at the partitions), and
// the answer is the producer id and epoch to use next - a new producer id
// at epoch 0 once the epoch is exhausted. Aborting when no transaction is
// open is allowed (and bumps the epoch), and a retry is recognised by the
// epoch before the bump. Without v2 the answer is the producer as given.
func (c *Coordinator) EndTxn(ctx context.Context, id string, p ProducerIDAndEpoch, commit, v2 bool) (ProducerIDAndEpoch, *kerr.Error) {
	t, e := c.lockedTxn(ctx, id)
	if e != nil {
		return noProducer, e
	}
	comp, e := c.endTxn(t, p, commit, v2)
	if e != nil || comp == nil {
		next := p
		if e == nil && v2 {
			next = ProducerIDAndEpoch{ID: t.m.ProducerID, Epoch: t.m.ProducerEpoch}
		}
		t.mu.Unlock()
		if e != nil {
			return noProducer, e
		}
		return next, nil
	}
	t.mu.Unlock()
	wait := time.NewTimer(endTxnWait)
	defer wait.Stop()
	select {
	case <-comp.done:
	case <-wait.C:
	case <-ctx.Done():
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.m
	switch {
	case t.dead || t.sh.ctx.Err() != nil:
		return noProducer, kerr.NotCoordinator
	case m == nil || m.State != completed(commit):
		return noProducer, kerr.ConcurrentTransactions
	case !v2 && m.ProducerID == p.ID && m.ProducerEpoch == p.Epoch,
		v2 && endedByV2(m, p):
		if !v2 {
			return p, nil
		}
		return ProducerIDAndEpoch{ID: m.ProducerID, Epoch: m.ProducerEpoch}, nil
	default:
		return noProducer, kerr.ConcurrentTransactions
	}
}

// endedByV2 reports whether m is the state after producer p's transaction
// ended under transaction version 2: p's epoch bumped by one, or p's id
// rotated away (its epoch exhausted) to a new id at epoch 0.
func endedByV2(m *meta.TxnMeta, p ProducerIDAndEpoch) bool {
	return m.ProducerID == p.ID && m.LastProducerEpoch == p.Epoch && int(m.ProducerEpoch) == int(p.Epoch)+1 ||
		m.LastProducerID == p.ID && m.LastProducerEpoch == p.Epoch && m.ProducerEpoch == 0
}

// completed is the final state of a commit or an abort.
func completed(commit bool) meta.TxnState {
	if commit {
		return meta.TxnCompleteCommit
	}
	return meta.TxnCompleteAbort
}

// endTxn moves t towards the end asked for and returns the completion to
// wait for (nil: answer now). Called with t.mu held.
func (c *Coordinator) endTxn(t *txn, p ProducerIDAndEpoch, commit, v2 bool) (*completion, *kerr.Error) {
	m := t.m
	prepare := meta.TxnPrepareAbort
	if commit {
		prepare = meta.TxnPrepareCommit
	}
	if v2 && m != nil && m.State != meta.TxnDead && endedByV2(m, p) {
		// A retry of an end that bumped the epoch (its answer was lost).
		switch m.State {
		case prepare:
			return c.startCompletion(t), nil
		case completed(commit):
			return nil, nil
		}
		return nil, kerr.InvalidTxnState
	}
	switch {
	case m == nil || m.State == meta.TxnDead || m.ProducerID != p.ID:
		return nil, kerr.InvalidProducerIDMapping
	case m.ProducerEpoch != p.Epoch:
		return nil, kerr.ProducerFenced
	}
	begin := func() (*completion, *kerr.Error) {
		c.failpoint(FailBeforePrepare)
		next := m.Clone()
		next.State, next.LastUpdateTimeMs, next.TxnVersion = prepare, time.Now().UnixMilli(), 0
		if v2 {
			next.TxnVersion = 2
			// The markers carry the bumped epoch. An exhausted epoch is
			// bumped to the last one (MaxInt16) for the markers, and
			// complete rotates the producer id.
			if m.ProducerEpoch == math.MaxInt16 {
				// Never handed out (InitProducerId rotates the id first).
				return nil, kerr.InvalidProducerEpoch
			}
			next.LastProducerEpoch, next.ProducerEpoch = m.ProducerEpoch, m.ProducerEpoch+1
		}
		if e := c.persist(t, next); e != nil {
			return nil, e
		}
		return c.startCompletion(t), nil
	}
	switch m.State {
	case meta.TxnOngoing:
		return begin()
	case prepare:
		return c.startCompletion(t), nil // a retry: wait for the same end
	case meta.TxnEmpty, meta.TxnCompleteCommit, meta.TxnCompleteAbort:
		switch {
		case v2 && !commit:
			return begin() // version 2 aborts no transaction by bumping the epoch
		case !v2 && m.State == completed(commit):
			return nil, nil // a retry of an end that completed
		}
	}
	return nil, kerr.InvalidTxnState // Empty, or the other end
}

// startCompletion makes sure a marker writer runs for t, which is in
// PrepareCommit or PrepareAbort, and returns it. Called with t.mu held.
func (c *Coordinator) startCompletion(t *txn) *completion {
	if comp := t.completion; comp != nil {
		select {
		case <-comp.done:
		default:
			return comp // running
		}
	}
	comp := &completion{done: make(chan struct{})}
	t.completion = comp
	snap, sh := t.m.Clone(), t.sh
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(comp.done)
		c.complete(t, sh, snap, comp)
	}()
	return comp
}

// complete writes snap's markers and then persists its Complete state,
// unless the shard was dropped or t moved on meanwhile.
func (c *Coordinator) complete(t *txn, sh *shard, snap *meta.TxnMeta, comp *completion) {
	commit := snap.State == meta.TxnPrepareCommit
	c.failpoint(FailAfterPrepare)
	if !c.writeMarkers(sh, snap, commit) || !c.writeGroupMarkers(sh, snap, commit) {
		return
	}
	c.failpoint(FailAfterMarkers)
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.m
	if t.dead || t.stale || sh.ctx.Err() != nil || m == nil || m.State != snap.State ||
		m.ProducerID != snap.ProducerID || m.ProducerEpoch != snap.ProducerEpoch {
		return
	}
	next := m.Clone()
	next.State, next.Partitions, next.Groups, next.LastUpdateTimeMs = completed(commit), nil, nil, time.Now().UnixMilli()
	if next.ProducerEpoch == math.MaxInt16 {
		// The markers used the last epoch (an exhausted epoch bumped by a
		// transaction version 2 end, or by a fence): the producer goes on
		// under a new id. The previous id and the epoch before the bump
		// stay, so a retry of the end is recognised (endedByV2) and a
		// retried InitProducerId gets this answer again.
		pid, e := c.newProducerID(t)
		if e != nil {
			return // the transaction stays in Prepare*: retried
		}
		next.LastProducerID, next.ProducerID, next.ProducerEpoch = m.ProducerID, pid, 0
	}
	if c.persist(t, next) == nil {
		comp.ok = true
	}
}

// writeMarkers writes a marker for every partition of snap, retrying
// failed ones with backoff until each is written, is refused for good, or
// the shard is dropped (false: the next coordinator completes the
// transaction). A partition that no longer exists (its topic deleted) is
// skipped, as Kafka skips partitions it finds no leader for. A partition
// that answers INVALID_PRODUCER_EPOCH or TRANSACTION_COORDINATOR_FENCED
// has seen a newer epoch of the producer or a newer coordinator: this
// coordinator bumps epochs only after ending the transaction, and a newer
// coordinator ends it the same way (the Prepare state is persisted), so
// the transaction is over on that partition; if this gateway's state is
// the stale one, its Complete write fails the shard guard. A partition
// that answers INVALID_TXN_STATE cannot hold transactional data (a
// diskless topic's refuses transactional batches and markers), so there
// is nothing to end there either. Anything else (leader moved or down,
// timeouts, full disk, NOT_ENOUGH_REPLICAS) is retried.
func (c *Coordinator) writeMarkers(sh *shard, snap *meta.TxnMeta, commit bool) bool {
	pending := snap.Partitions
	backoff := markerBackoffMin
	for attempt := 1; ; attempt++ {
		if sh.ctx.Err() != nil {
			return false
		}
		send := make([]meta.TxnPartition, 0, len(pending))
		ms := make([]ops.TxnMarker, 0, len(pending))
		for _, p := range pending {
			if _, ok := c.cache.Partition(p.Topic, p.Partition); !ok {
				c.log.Info("transaction marker skipped: the partition no longer exists",
					"transactional_id", snap.TransactionalID, "topic", p.Topic, "partition", p.Partition)
				continue
			}
			send = append(send, p)
			ms = append(ms, ops.TxnMarker{
				Topic: p.Topic, Partition: p.Partition, ProducerID: snap.ProducerID,
				ProducerEpoch: snap.ProducerEpoch, Commit: commit, CoordinatorEpoch: sh.epoch,
				TransactionVersion: snap.TxnVersion,
			})
		}
		if len(ms) == 0 {
			return true
		}
		errs := c.markers.WriteTxnMarkers(sh.ctx, markerTimeout, ms)
		if len(errs) != len(ms) {
			c.log.Error("marker writer answered the wrong number of results", "sent", len(ms), "got", len(errs))
			errs = make([]*kerr.Error, len(ms))
			for i := range errs {
				errs[i] = kerr.UnknownServerError
			}
		}
		var retry []meta.TxnPartition
		var last *kerr.Error
		for i, e := range errs {
			switch e {
			case nil:
			case kerr.InvalidProducerEpoch, kerr.ProducerFenced, kerr.TransactionCoordinatorFenced:
				c.log.Warn("transaction marker refused as stale; the partition has moved past this transaction",
					"transactional_id", snap.TransactionalID, "topic", send[i].Topic, "partition", send[i].Partition,
					"producer_id", snap.ProducerID, "producer_epoch", snap.ProducerEpoch, "err", e)
			case kerr.InvalidTxnState, kerr.InvalidRequest:
				// A partition that cannot hold transactions (diskless
				// topics refuse transactional batches and markers alike):
				// nothing of this transaction is there to end.
				c.log.Warn("transaction marker refused; the partition holds no transactional data",
					"transactional_id", snap.TransactionalID, "topic", send[i].Topic, "partition", send[i].Partition, "err", e)
			default:
				retry, last = append(retry, send[i]), e
			}
		}
		if len(retry) == 0 {
			return true
		}
		if sh.ctx.Err() != nil {
			return false
		}
		if attempt == 1 || attempt%20 == 0 {
			c.log.Warn("writing transaction markers failed; retrying", "transactional_id", snap.TransactionalID,
				"partitions", len(retry), "attempt", attempt, "err", last)
		}
		pending = retry
		if !sleep(sh.ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, markerBackoffMax)
	}
}
