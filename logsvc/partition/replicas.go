package partition

import (
	"context"
	"fmt"
	"github.com/streamline-dev/streamline/logsvc/storage"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamline-dev/streamline/shared/meta"
)

// Replication, leader side (Kafka's Partition and ReplicaManager): the
// leader tracks each follower's log end from its fetches, keeps the high
// watermark at the minimum log end over the in-sync replicas, and changes
// the ISR through Config.AlterISR, a fenced etcd transaction (Kafka's
// AlterPartition). The rules:
//
//   - high watermark = min(leader's durable end, log end of every follower
//     in the ISR, counting a follower whose addition is in flight: Kafka's
//     "maximal ISR", so a replica is never admitted missing records below
//     the high watermark);
//   - a follower is caught up when it fetches at the leader's log end (or
//     at the end the leader had at its previous fetch); one not caught up
//     for ReplicaLagTime leaves the ISR;
//   - a follower outside the ISR rejoins once it fetches at or past the high
//     watermark and past the start of the leader's current epoch;
//   - one ISR change is in flight at a time; a failed one (the record
//     changed: a new epoch, the controller dropped a dead node) is retried
//     from the new state by the next check.

// followerState is what the leader knows of one follower.
type followerState struct {
	known        bool  // it fetched since this node became leader
	leo          int64 // its durable log end: the offset it last fetched from
	lastFetch    time.Time
	leoAtFetch   int64 // the leader's log end at its last fetch
	lastCaughtUp time.Time
}

// replicaSet is the leader's replication state; guarded by Partition.repMu.
type replicaSet struct {
	self     string
	replicas []string
	isr      []string // committed in etcd
	adding   string   // a follower whose addition is in flight ("" none)
	altering bool     // an ISR change is in flight
	// expandAfter holds back the next ISR addition after one was refused
	// (a follower whose lease expired), so a follower that keeps fetching
	// does not retry it at every fetch.
	expandAfter time.Time
	follower    map[string]*followerState
	// staleRev: records at or below this etcd revision predate this
	// leader's last ISR change (a cache catching up) and are ignored.
	staleRev int64
}

func (r *replicaSet) init(self string, pa meta.Partition, now time.Time) {
	r.self = self
	r.replicas = slices.Clone(pa.ReplicaSet())
	r.isr = slices.Clone(pa.InSyncReplicas())
	if len(r.replicas) == 0 { // no record (tests, a record being written): the leader alone
		r.replicas, r.isr = []string{self}, []string{self}
	}
	r.follower = map[string]*followerState{}
	for _, id := range r.replicas {
		if id != self {
			// Kafka starts every follower's clock at become-leader.
			r.follower[id] = &followerState{lastCaughtUp: now, leo: -1}
		}
	}
}

// hwmBound is the smallest log end among the followers that count for the
// high watermark, or ok=false if one of them has not fetched yet.
func (r *replicaSet) hwmBound() (bound int64, followers, ok bool) {
	bound = int64(1<<63 - 1)
	for _, id := range r.isr {
		if id == r.self {
			continue
		}
		followers = true
		f := r.follower[id]
		if f == nil || !f.known {
			return 0, true, false
		}
		bound = min(bound, f.leo)
	}
	if f := r.follower[r.adding]; r.adding != "" && f != nil && f.known {
		followers = true
		bound = min(bound, f.leo)
	}
	return bound, followers, true
}

// ISR is the committed in-sync replica set as this leader knows it.
func (p *Partition) ISR() []string {
	p.repMu.Lock()
	defer p.repMu.Unlock()
	return slices.Clone(p.rep.isr)
}

// Replicas is the partition's replica set as this leader knows it.
func (p *Partition) Replicas() []string {
	p.repMu.Lock()
	defer p.repMu.Unlock()
	return slices.Clone(p.rep.replicas)
}

// SetReplicas applies the partition record as etcd has it now (an ISR
// change by this leader or by the controller, a reassignment) without
// reopening the partition. The leader epoch must be this leader's.
func (p *Partition) SetReplicas(pa meta.Partition) {
	if pa.LeaderEpoch != p.cfg.LeaderEpoch {
		return
	}
	p.repMu.Lock()
	if pa.ModRevision != 0 && pa.ModRevision <= p.rep.staleRev {
		p.repMu.Unlock()
		return
	}
	p.rep.replicas = slices.Clone(pa.ReplicaSet())
	p.rep.isr = slices.Clone(pa.InSyncReplicas())
	if slices.Contains(p.rep.isr, p.rep.adding) {
		p.rep.adding = ""
	}
	for _, id := range p.rep.replicas {
		if _, ok := p.rep.follower[id]; !ok && id != p.rep.self {
			p.rep.follower[id] = &followerState{lastCaughtUp: time.Now(), leo: -1}
		}
	}
	for id := range p.rep.follower {
		if !slices.Contains(p.rep.replicas, id) {
			delete(p.rep.follower, id) // reassigned away
		}
	}
	p.repMu.Unlock()
	p.updateHighWatermark()
}

// updateHighWatermark moves the high watermark to what the leader's durable
// end and the ISR allow, never backwards, and wakes waiters if it moved.
func (p *Partition) updateHighWatermark() {
	leo := p.leo.Load()
	p.repMu.Lock()
	bound, _, ok := p.rep.hwmBound()
	p.repMu.Unlock()
	if !ok {
		return // a follower in the ISR has not reported yet
	}
	next := min(leo, bound)
	for {
		cur := p.hwm.Load()
		if next <= cur {
			return
		}
		if p.hwm.CompareAndSwap(cur, next) {
			// Transactions whose marker is now below the high watermark
			// no longer hold the LSO; before the wake-up, so fetches it
			// wakes see the LSO move with the high watermark.
			p.releaseEnding(next)
			p.wake(true, false)
			return
		}
	}
}

// wake tells long-polling readers that the high watermark moved (hwm:
// consumer fetches, acks=all waiters) or the log end did (appended:
// follower fetches).
func (p *Partition) wake(hwm, appended bool) {
	p.notifyMu.Lock()
	if hwm {
		close(p.notify)
		p.notify = make(chan struct{})
	}
	if appended {
		close(p.appended)
		p.appended = make(chan struct{})
	}
	p.notifyMu.Unlock()
}

// ReplicaFetchResult is one partition's answer to a follower fetch.
type ReplicaFetchResult struct {
	Err     *kerr.Error
	Message string
	// Records are whole batches from the fetch offset up to the leader's
	// durable end, exactly as stored.
	Records        []byte
	HighWatermark  int64
	LogStartOffset int64
	// DivergingEpoch and DivergingEndOffset are set (else -1) when the
	// follower's last epoch ends on the leader before its fetch offset:
	// it must truncate to DivergingEndOffset before fetching again.
	DivergingEpoch     int32
	DivergingEndOffset int64
	// LocalLogStartOffset is, for a log with an object tier, the first
	// offset on the leader's disk (LogStartOffset is then the tier's end);
	// -1 otherwise.
	LocalLogStartOffset int64
}

// ReplicaFetch serves a follower fetch (Kafka's fetch from a replica): it
// records that follower holds everything below fetchOffset on disk,
// updates the high watermark and the ISR accordingly, and returns the
// batches from fetchOffset on up to the leader's durable end (at most
// maxBytes, at least one batch). lastFetchedEpoch is the epoch of the
// follower's last batch (-1: empty log).
func (p *Partition) ReplicaFetch(follower string, fetchOffset int64, lastFetchedEpoch int32, maxBytes int) ReplicaFetchResult {
	res := ReplicaFetchResult{DivergingEpoch: -1, DivergingEndOffset: -1, HighWatermark: p.hwm.Load(), LogStartOffset: p.log.StartOffset(),
		LocalLogStartOffset: -1}
	if tl, ok := p.log.(storage.Tiered); ok {
		// Followers of a tiered log hold only what the object tier does
		// not: to them the log starts at the tier's end.
		res.LogStartOffset, res.LocalLogStartOffset = tl.TierStart(), tl.LocalStart()
	}
	p.mu.Lock()
	closed, failed := p.closed, p.failed
	p.mu.Unlock()
	switch {
	case closed:
		res.Err, res.Message = kerr.NotLeaderForPartition, fmt.Sprintf("partition %s-%d is no longer led by this node", p.cfg.Topic.Name, p.cfg.Partition)
		return res
	case failed != nil:
		res.Err, res.Message = kerr.KafkaStorageError, fmt.Sprintf("partition storage failed: %v", failed)
		return res
	}
	leo := p.leo.Load()
	if lastFetchedEpoch >= 0 {
		// The whole log's start, not the tier's end a follower of a
		// tiered log starts at: the history below it still answers
		// consumers reading the tier.
		epoch, end := p.epochs.endOffsetFor(lastFetchedEpoch, p.cfg.LeaderEpoch, p.log.StartOffset(), leo)
		if epoch == undefinedEpoch {
			// The follower wrote an epoch newer than this leader's: this
			// leader is stale; the follower waits for metadata.
			res.Err = kerr.UnknownLeaderEpoch
			res.Message = fmt.Sprintf("follower's last epoch %d is newer than this leader's %d", lastFetchedEpoch, p.cfg.LeaderEpoch)
			return res
		}
		if epoch != lastFetchedEpoch || end < fetchOffset {
			// KIP-320: the follower has records the leader does not;
			// answer where the common history ends instead of data.
			res.DivergingEpoch, res.DivergingEndOffset = epoch, end
			return res
		}
	}
	if fetchOffset < res.LogStartOffset || fetchOffset > leo {
		res.Err = kerr.OffsetOutOfRange
		res.Message = fmt.Sprintf("follower fetch offset %d is outside the leader's log [%d, %d]", fetchOffset, res.LogStartOffset, leo)
		return res
	}
	p.recordFollower(follower, fetchOffset, leo)
	res.HighWatermark = p.hwm.Load()
	if fetchOffset < leo {
		b, err := p.log.Read(fetchOffset, maxBytes, leo, true)
		if err != nil {
			res.Err, res.Message = kerr.KafkaStorageError, err.Error()
			return res
		}
		res.Records = b
	}
	return res
}

// recordFollower applies one follower fetch at fetchOffset while the
// leader's durable end is leo.
func (p *Partition) recordFollower(id string, fetchOffset, leo int64) {
	now := time.Now()
	p.repMu.Lock()
	f := p.rep.follower[id]
	if f == nil {
		p.repMu.Unlock()
		return // not a replica (a reassignment in flight): serve, count nothing
	}
	switch {
	case fetchOffset >= leo:
		f.lastCaughtUp = now
	case f.known && fetchOffset >= f.leoAtFetch:
		f.lastCaughtUp = f.lastFetch
	}
	f.known, f.leo, f.lastFetch, f.leoAtFetch = true, fetchOffset, now, leo
	var expand []string
	if !slices.Contains(p.rep.isr, id) && !p.rep.altering && now.After(p.rep.expandAfter) && fetchOffset >= p.hwm.Load() && fetchOffset >= p.currentEpochStart(leo) {
		expand = append(slices.Clone(p.rep.isr), id)
		p.rep.adding, p.rep.altering = id, true
	}
	p.repMu.Unlock()
	p.updateHighWatermark()
	if expand != nil {
		go p.alterISR(expand, "caught up with the leader", true, id)
	}
}

// currentEpochStart is where this leader's epoch starts: its first batch,
// or the log end it took over at.
func (p *Partition) currentEpochStart(leo int64) int64 {
	_, start := p.epochs.startOf(p.cfg.LeaderEpoch)
	if start < 0 {
		return leo
	}
	return start
}

// MaintainISR drops from the ISR every follower that has not caught up
// for lag (Kafka's replica.lag.time.max.ms). The node calls it
// periodically for each led partition.
func (p *Partition) MaintainISR(lag time.Duration) {
	now := time.Now()
	p.repMu.Lock()
	if p.rep.altering {
		p.repMu.Unlock()
		return
	}
	var keep, out []string
	for _, id := range p.rep.isr {
		f := p.rep.follower[id]
		if id != p.rep.self && f != nil && now.Sub(f.lastCaughtUp) > lag {
			out = append(out, id)
			continue
		}
		keep = append(keep, id)
	}
	if len(out) == 0 {
		p.repMu.Unlock()
		return
	}
	p.rep.altering = true
	p.repMu.Unlock()
	go p.alterISR(keep, fmt.Sprintf("not caught up for %v", lag), false, out...)
}

// expandRetry is how long a refused ISR addition waits before the next try.
const expandRetry = time.Second

// alterISR commits a new ISR through Config.AlterISR and applies it;
// expanded says whether it adds changed (else it removes them).
func (p *Partition) alterISR(isr []string, why string, expanded bool, changed ...string) {
	var err error
	var base int64
	if p.cfg.AlterISR == nil {
		err = fmt.Errorf("no ISR changes without AlterISR")
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		base, err = p.cfg.AlterISR(ctx, isr)
		cancel()
	}
	p.repMu.Lock()
	p.rep.altering, p.rep.adding = false, ""
	if err == nil {
		p.rep.isr = slices.Clone(isr)
		p.rep.staleRev = max(p.rep.staleRev, base)
	} else if expanded {
		p.rep.expandAfter = time.Now().Add(expandRetry)
	}
	p.repMu.Unlock()
	if err != nil {
		p.lg.Warn("ISR change not committed; retrying from the current record", "isr", isr, "reason", why, "err", err)
		return
	}
	if p.cfg.ISRChanged != nil {
		p.cfg.ISRChanged(expanded)
	}
	p.lg.Info("ISR changed", "isr", isr, "replicas", changed, "reason", why)
	p.updateHighWatermark()
}

// minInsync is the topic's min.insync.replicas.
func (p *Partition) minInsync() int {
	t := p.Topic()
	return int(t.Int64(meta.ConfigMinInsyncReplicas, p.cfg.Defaults))
}

// enoughReplicas reports whether the committed ISR meets
// min.insync.replicas, and its size.
func (p *Partition) enoughReplicas() (bool, int, int) {
	p.repMu.Lock()
	n := len(p.rep.isr)
	p.repMu.Unlock()
	need := p.minInsync()
	return n >= need, n, need
}

// awaitReplication waits until the high watermark passes next (the batch
// is on every ISR member's disk) and the ISR still meets
// min.insync.replicas (Kafka's acks=all). failed reports a result to
// answer instead of the ack.
func (p *Partition) awaitReplication(ctx context.Context, next int64) (ProduceResult, bool) {
	for {
		ch := p.Changed()
		if p.hwm.Load() >= next {
			if ok, n, need := p.enoughReplicas(); !ok {
				return fail(kerr.NotEnoughReplicasAfterAppend, "the batch is stored, but the ISR of %s-%d shrank to %d, below min.insync.replicas %d",
					p.cfg.Topic.Name, p.cfg.Partition, n, need), true
			}
			return ProduceResult{}, false
		}
		p.mu.Lock()
		failed, closed := p.failed, p.closed
		p.mu.Unlock()
		switch {
		case failed != nil:
			return fail(kerr.KafkaStorageError, "partition storage failed: %v", failed), true
		case closed:
			return fail(kerr.NotLeaderForPartition, "partition %s-%d is no longer led by this node", p.cfg.Topic.Name, p.cfg.Partition), true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fail(kerr.RequestTimedOut, "batch not replicated to the ISR before the request timeout"), true
		}
	}
}

// ReplicationStatus is the leader's view for metrics: the ISR size, the
// replica count, and the largest follower lag in offsets.
func (p *Partition) ReplicationStatus() (isr, replicas int, maxLag int64) {
	leo := p.leo.Load()
	p.repMu.Lock()
	defer p.repMu.Unlock()
	for _, f := range p.rep.follower {
		lag := leo
		if f.known {
			lag = leo - f.leo
		}
		maxLag = max(maxLag, lag)
	}
	return len(p.rep.isr), len(p.rep.replicas), maxLag
}
