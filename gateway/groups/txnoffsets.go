package groups

import (
	"context"
	"errors"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Offsets in transactions (Kafka's TxnOffsetCommit and the group side of
// transaction markers). The group's coordinator keeps a transaction's
// offsets pending (etcd grouptxnoffsets/, and g.txnPending), invisible to
// OffsetFetch; the transaction's coordinator (package txns, usually on
// another gateway) writes a group marker into etcd when the transaction
// ends, and the group's coordinator, which watches the markers, applies
// it: commit makes the pending offsets the group's committed offsets,
// abort drops them (meta.ApplyGroupTxnMarker, one guarded transaction).
// A gateway that gains a shard scans the markers again, so a marker
// written while nobody coordinated the group is applied by its next
// coordinator. OffsetFetch with RequireStable answers
// UNSTABLE_OFFSET_COMMIT for a partition with pending offsets, so a
// consumer that must not read around an undecided transaction waits.

// markerRescan is how often every marker is read again (a missed watch
// event, a failed apply).
const markerRescan = 10 * time.Second

// TxnCommitOffsets answers a TxnOffsetCommit (v0-3): the offsets are
// stored as pending offsets of the producer in etcd before the answer,
// merged with what the producer has pending in the group already.
func (c *Coordinator) TxnCommitOffsets(ctx context.Context, req *kmsg.TxnOffsetCommitRequest, exists PartitionExists) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	codes := map[meta.TopicPartition]int16{}
	if e := c.txnCommit(ctx, req, exists, codes); e != nil {
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				codes[meta.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = e.Code
			}
		}
	}
	for _, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = codes[meta.TopicPartition{Topic: t.Topic, Partition: p.Partition}]
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (c *Coordinator) txnCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest, exists PartitionExists, codes map[meta.TopicPartition]int16) *kerr.Error {
	switch {
	case req.Group == "":
		return kerr.InvalidGroupID
	case req.TransactionalID == "" || req.ProducerID < 0 || req.ProducerEpoch < 0:
		return kerr.InvalidRequest
	}
	if req.Version < 3 {
		req.Generation, req.MemberID, req.InstanceID = -1, "", nil
	}
	g, e := c.group(ctx, req.Group)
	if e != nil {
		return e
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == stateDead {
		return kerr.NotCoordinator
	}
	// As Kafka's doTxnCommitOffsets: what a v3 client says about its
	// membership is checked when it says it.
	if e := g.validateInstanceID(req.InstanceID, req.MemberID); e != nil {
		return e
	}
	if req.MemberID != "" {
		if _, ok := g.members[req.MemberID]; !ok {
			return kerr.UnknownMemberID
		}
	}
	if req.Generation >= 0 && req.Generation != g.generation {
		return kerr.IllegalGeneration
	}
	var asked []askedOffset
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			epoch := p.LeaderEpoch
			if req.Version < 2 {
				epoch = -1
			}
			asked = append(asked, askedOffset{t.Topic, p.Partition, p.Offset, epoch, p.Metadata})
		}
	}
	valid := validOffsets(asked, exists, codes)
	if len(valid) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, persistTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		cur := g.txnPending[req.ProducerID]
		if cur != nil && cur.ProducerEpoch > req.ProducerEpoch {
			return kerr.ProducerFenced
		}
		merged := map[meta.TopicPartition]meta.GroupOffset{}
		if cur != nil {
			merged = cur.Map()
		}
		for tp, o := range valid {
			merged[tp] = o
		}
		next := &meta.GroupTxnOffsets{TransactionalID: req.TransactionalID, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch}
		for tp, o := range merged {
			next.Offsets = append(next.Offsets, meta.GroupTxnOffset{Topic: tp.Topic, Partition: tp.Partition, GroupOffset: o})
		}
		err := c.store.SaveGroupTxnOffsets(wctx, g.guard, g.name, next)
		switch {
		case err == nil:
			g.txnPending[req.ProducerID] = next
			return nil
		case errors.Is(err, meta.ErrGroupTxnMarkerPending) && attempt < 3:
			// The producer's previous transaction ended and its marker
			// is not applied yet: apply it first (its pending offsets are
			// that transaction's, not this one's).
			if e := c.applyMarkers(wctx, g); e != nil {
				return e
			}
		case errors.Is(err, meta.ErrGroupTxnMarkerPending):
			return kerr.ConcurrentTransactions
		default:
			return c.persistFailed(g, err)
		}
	}
}

// FetchOffsetsPending is FetchOffsets with the partitions that have
// transactional offsets pending (not decided, or decided and not applied
// yet): what OffsetFetch with RequireStable answers
// UNSTABLE_OFFSET_COMMIT for.
func (c *Coordinator) FetchOffsetsPending(ctx context.Context, group string) (map[meta.TopicPartition]meta.GroupOffset, map[meta.TopicPartition]bool, *kerr.Error) {
	g, e := c.group(ctx, group)
	if e != nil {
		return nil, nil, e
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == stateDead {
		return nil, nil, kerr.NotCoordinator
	}
	out := make(map[meta.TopicPartition]meta.GroupOffset, len(g.offsets))
	for tp, o := range g.offsets {
		out[tp] = o
	}
	pending := map[meta.TopicPartition]bool{}
	for _, p := range g.txnPending {
		for _, o := range p.Offsets {
			pending[meta.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = true
		}
	}
	return out, pending, nil
}

// applyMarkers applies every group marker of g found in etcd. Called with
// g.mu held.
func (c *Coordinator) applyMarkers(ctx context.Context, g *group) *kerr.Error {
	mks, err := c.store.LoadGroupTxnMarkers(ctx, g.name)
	if err != nil {
		c.log.Warn("reading transaction markers of a group failed", "group", g.name, "err", err)
		return kerr.CoordinatorNotAvailable
	}
	for _, mk := range mks {
		if mk.Group != g.name {
			continue
		}
		pid := mk.Marker.ProducerID
		var offsets map[meta.TopicPartition]meta.GroupOffset
		if p := g.txnPending[pid]; p != nil && mk.Marker.Commit {
			offsets = p.Map()
		}
		var gm *meta.GroupMeta
		if len(offsets) > 0 && !g.persisted {
			gm = g.snapshot() // so ListGroups shows a group that only commits
		}
		if err := c.store.ApplyGroupTxnMarker(ctx, g.guard, mk, gm, offsets); err != nil {
			return c.persistFailed(g, err) // a conflict reloads the group
		}
		if gm != nil {
			g.persisted = true
		}
		for tp, o := range offsets {
			g.offsets[tp] = o
		}
		delete(g.txnPending, pid)
		c.log.Debug("applied a transaction's group marker", "group", g.name, "transactional_id", mk.Marker.TransactionalID,
			"producer_id", pid, "commit", mk.Marker.Commit, "offsets", len(offsets))
	}
	return nil
}

// applyGroup applies the markers of group if this gateway coordinates it.
func (c *Coordinator) applyGroup(ctx context.Context, name string) {
	if !c.Owns(name) {
		return
	}
	g, e := c.group(ctx, name)
	if e != nil {
		c.log.Warn("loading a group to apply its transaction markers failed; retrying later", "group", name, "err", e)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == stateDead {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, persistTimeout)
	defer cancel()
	if e := c.applyMarkers(wctx, g); e != nil {
		c.log.Warn("applying transaction markers failed; retrying later", "group", name, "err", e)
	}
}

// rescanMarkers asks the marker loop to read every marker again (a shard
// was gained: markers written while nobody coordinated its groups).
func (c *Coordinator) rescanMarkers() {
	select {
	case c.rescan <- struct{}{}:
	default:
	}
}

// watchMarkers applies the group markers of the groups this gateway
// coordinates until ctx ends: every marker at start, on each rescan and
// every markerRescan, and each marker the watch reports in between.
func (c *Coordinator) watchMarkers(ctx context.Context) {
	prefix := c.store.GroupTxnMarkersPrefix()
	for ctx.Err() == nil {
		mks, rev, err := c.store.ListGroupTxnMarkers(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("listing transaction markers failed; retrying", "err", err)
			}
			sleep(ctx, time.Second)
			continue
		}
		seen := map[string]bool{}
		for _, mk := range mks {
			if !seen[mk.Group] {
				seen[mk.Group] = true
				c.applyGroup(ctx, mk.Group)
			}
		}
		c.watchMarkersFrom(ctx, prefix, rev+1)
	}
}

// watchMarkersFrom applies the markers put from rev on, until a rescan is
// due or the watch fails.
func (c *Coordinator) watchMarkersFrom(ctx context.Context, prefix string, rev int64) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := c.cfg.Etcd.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev), clientv3.WithFilterDelete())
	tick := time.NewTimer(markerRescan)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.rescan:
			return
		case <-tick.C:
			return
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				return
			}
			for _, ev := range wr.Events {
				if name, ok := c.store.GroupOfTxnMarkerKey(string(ev.Kv.Key)); ok {
					c.applyGroup(ctx, name)
				}
			}
		}
	}
}
