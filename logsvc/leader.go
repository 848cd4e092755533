package logsvc

import (
	"context"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamline-dev/streamline/logsvc/logrpc"
	"github.com/streamline-dev/streamline/logsvc/partition"
	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/shared/meta"
)

type partKey struct {
	topic     string
	partition int32
}

type led struct {
	p   *partition.Partition
	log storage.Log
}

// leader keeps the set of partitions this node leads equal to what etcd
// assigns it. reconcile runs on every metadata change, from one goroutine
// at a time (mu); lookups take the read lock.
type leader struct {
	n  *Node
	mu sync.RWMutex
	m  map[partKey]led
	// retentionNow asks the retention loop for a pass now (a topic's
	// configs changed); buffered, sends never block.
	retentionNow chan struct{}
}

var (
	_ logrpc.Partitions    = (*leader)(nil)
	_ logrpc.LedPartitions = (*leader)(nil)
)

func newLeader(n *Node) *leader {
	return &leader{n: n, m: map[partKey]led{}, retentionNow: make(chan struct{}, 1)}
}

// Lookup implements logrpc.Partitions.
func (l *leader) Lookup(topic string, topicID []byte, p int32) (*partition.Partition, *kerr.Error) {
	l.mu.RLock()
	e, ok := l.m[partKey{topic, p}]
	l.mu.RUnlock()
	if ok && logrpc.TopicIDMatches(topicID, e.p.Topic()) {
		return e.p, nil
	}
	t, exists := l.n.cache.Topic(topic)
	switch {
	case !exists:
		return nil, kerr.UnknownTopicOrPartition
	case !logrpc.TopicIDMatches(topicID, t):
		return nil, kerr.UnknownTopicID
	case p < 0 || p >= t.Partitions:
		return nil, kerr.UnknownTopicOrPartition
	}
	return nil, kerr.NotLeaderForPartition
}

// Led implements logrpc.LedPartitions.
func (l *leader) Led() []*partition.Partition {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]*partition.Partition, 0, len(l.m))
	for _, e := range l.m {
		out = append(out, e.p)
	}
	return out
}

func (l *leader) reconcile() {
	l.mu.Lock()
	defer l.mu.Unlock()
	cache, self := l.n.cache, l.n.cfg.ID
	want := map[partKey]meta.Partition{}
	for _, pa := range cache.AllPartitions() {
		if pa.Leader == self {
			want[partKey{pa.Topic, pa.Partition}] = pa
		}
	}
	// Stop leading what moved away, changed epoch or was deleted; apply
	// changed topic configs (AlterConfigs) to what stays.
	reconfigured := false
	for k, e := range l.m {
		pa, keep := want[k]
		// A topic whose storage mode changed (local <-> hybrid) is
		// reopened under its new engine: same local data, with or
		// without the object tier.
		t, known := cache.TopicByID(pa.TopicID)
		modeChanged := known && t.StorageMode != e.p.Topic().StorageMode
		if modeChanged {
			l.n.log.Info("reopening partition: its topic's storage mode changed", "topic", k.topic, "partition", k.partition,
				"from", e.p.Topic().StorageMode, "to", t.StorageMode)
		}
		if keep && pa.TopicID == e.p.Topic().ID && pa.LeaderEpoch == e.p.LeaderEpoch() && !e.p.Failed() && !modeChanged {
			if !slices.Equal(pa.InSyncReplicas(), e.p.ISR()) || !slices.Equal(pa.ReplicaSet(), e.p.Replicas()) {
				e.p.SetReplicas(pa)
			}
			if known && !maps.Equal(t.Configs, e.p.Topic().Configs) {
				e.p.Reconfigure(t)
				reconfigured = true
				l.n.log.Info("applied changed topic configs", "topic", k.topic, "partition", k.partition, "configs", t.Configs)
			}
			continue
		}
		if e.p.Failed() {
			l.n.log.Warn("reopening partition after a storage failure", "topic", k.topic, "partition", k.partition)
		}
		e.p.Close()
		var err error
		if l.n.keepsReplica(e.p.Topic().ID, k) {
			err = e.log.Close()
		} else {
			err = e.log.Remove()
			l.n.log.Info("deleted partition data: the topic was deleted or the partition moved off this node", "topic", k.topic, "partition", k.partition)
		}
		if err != nil {
			l.n.log.Error("closing partition", "topic", k.topic, "partition", k.partition, "err", err)
		}
		delete(l.m, k)
	}
	if reconfigured {
		select {
		case l.retentionNow <- struct{}{}:
		default:
		}
	}
	for k, pa := range want {
		if _, ok := l.m[k]; ok {
			continue
		}
		t, ok := cache.TopicByID(pa.TopicID)
		if !ok {
			continue
		}
		if err := l.open(t, pa); err != nil {
			l.n.log.Error("cannot lead partition", "topic", k.topic, "partition", k.partition, "err", err)
		}
	}
}

func (l *leader) open(t meta.Topic, pa meta.Partition) error {
	eng, err := l.n.engines.For(t.StorageMode)
	if err != nil {
		return err
	}
	// A partition whose home node created its log before must find its
	// data here: never start it again empty (at offset 0) on a node that
	// lost it. One never opened yet may start empty, whatever its epoch,
	// and so may an unclean leader (the topic chose availability).
	mustExist := t.StorageMode.KeepsLocalData() && pa.MayHaveLocalData() && !pa.UncleanLeader
	lg, err := eng.Open(storage.PartitionSpec{Topic: t, Partition: pa.Partition, Defaults: l.n.cfg.TopicDefaults, MustExist: mustExist, Leader: pa})
	if err != nil {
		return err
	}
	p, err := partition.Open(partition.Config{
		Topic: t, Partition: pa.Partition, LeaderEpoch: pa.LeaderEpoch, Defaults: l.n.cfg.TopicDefaults, Log: lg, Logger: l.n.log,
		Fence: l.n.partitionFence(pa), AppendLatency: l.n.metrics.appendDur.For(string(t.StorageMode)),
		NodeID: l.n.cfg.ID, Record: pa, AlterISR: l.alterISR(pa), ISRChanged: l.n.metrics.isrChanged,
		InitialHighWatermark: l.n.follow.lastHighWatermark(partKey{pa.Topic, pa.Partition}),
	})
	if err != nil {
		lg.Close()
		return err
	}
	if t.StorageMode.KeepsLocalData() && !pa.MayHaveLocalData() {
		// The log exists now: record it before the first write, so that
		// from here on this partition must find its data when it opens.
		if err := l.markMaterialized(pa); err != nil {
			p.Close()
			lg.Close()
			return err
		}
	}
	if tl, ok := lg.(storage.Tiered); ok {
		tl.Lead(p.HighWatermark) // upload rolled segments the high watermark passed
	}
	l.m[partKey{pa.Topic, pa.Partition}] = led{p: p, log: lg}
	l.n.log.Info("leading partition", "topic", pa.Topic, "partition", pa.Partition, "epoch", pa.LeaderEpoch,
		"log_start", p.LogStartOffset(), "log_end", p.HighWatermark())
	return nil
}

// alterISR returns the ISR change of a partition led under pa: a
// compare-and-swap on the record as the cache has it now, refused unless
// it still names this node as leader at pa's epoch (Kafka's
// AlterPartition, fenced by the partition epoch: here the record's etcd
// revision). A stale cache fails the swap; the partition retries later.
func (l *leader) alterISR(pa meta.Partition) func(context.Context, []string) (int64, error) {
	return func(ctx context.Context, isr []string) (int64, error) {
		cur, ok := l.n.cache.Partition(pa.Topic, pa.Partition)
		if !ok || cur.TopicID != pa.TopicID || cur.Leader != l.n.cfg.ID || cur.LeaderEpoch != pa.LeaderEpoch {
			return 0, fmt.Errorf("%w: partition %s-%d is no longer led by this node at epoch %d", ErrFenced, pa.Topic, pa.Partition, pa.LeaderEpoch)
		}
		if slices.Equal(cur.ISR, isr) {
			return cur.ModRevision - 1, nil // already so (a change this node made that its cache now shows)
		}
		for _, id := range isr {
			if _, live := l.n.cache.LogNode(id); !live && !slices.Contains(cur.ISR, id) {
				// Its lease expired (the controller takes such nodes out
				// of the ISR): it may still be fetching, but it joins
				// again only once registered (Kafka keeps fenced brokers
				// out of the ISR, KIP-841), not in a flip-flop with the
				// controller.
				return 0, fmt.Errorf("follower %s of %s-%d is not registered (its lease expired): not adding it to the ISR", id, pa.Topic, pa.Partition)
			}
		}
		next := cur
		next.ISR = slices.Clone(isr)
		if len(isr) > 1 {
			next.UncleanLeader = false // a follower caught up with it: in sync again
		}
		n, err := l.n.store.UpdatePartitions(ctx, []meta.PartitionUpdate{{Old: cur, New: next}})
		if err == nil && n == 0 {
			err = meta.ErrConflict
		}
		return cur.ModRevision, err
	}
}

// maintainISR drops lagging followers from the ISR of every led partition.
func (l *leader) maintainISR(lag time.Duration) {
	l.mu.RLock()
	parts := make([]*partition.Partition, 0, len(l.m))
	for _, e := range l.m {
		parts = append(parts, e.p)
	}
	l.mu.RUnlock()
	for _, p := range parts {
		p.MaintainISR(lag)
	}
}

// markMaterialized sets the partition's Materialized flag with a
// compare-and-swap on the record as read; a concurrent change (a new epoch)
// fails it, and the next reconcile pass opens the partition again.
func (l *leader) markMaterialized(pa meta.Partition) error {
	next := pa
	next.Materialized = new(bool)
	*next.Materialized = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := l.n.store.UpdatePartitions(ctx, []meta.PartitionUpdate{{Old: pa, New: next}})
	if err == nil && n == 0 {
		err = fmt.Errorf("partition %s-%d changed while it was being opened", pa.Topic, pa.Partition)
	}
	if err != nil {
		return fmt.Errorf("recording that %s-%d has a local log: %w", pa.Topic, pa.Partition, err)
	}
	return nil
}

// removeOrphans deletes local partition directories of topics that no
// longer exist (deleted while this node was down), crash-safely and in the
// background (localstore.RemovePartitionDir). Directories of existing
// topics are kept even if another node leads them now: they hold data.
func (l *leader) removeOrphans() {
	names, err := l.n.local.PartitionDirs()
	if err != nil {
		return
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, name := range names {
		idHex, _, ok := strings.Cut(name, "-")
		if !ok {
			continue
		}
		raw, err := hex.DecodeString(idHex)
		if err != nil || len(raw) != 16 {
			continue
		}
		if _, err := strconv.Atoi(name[len(idHex)+1:]); err != nil {
			continue
		}
		if _, alive := l.n.cache.TopicByID(meta.TopicID(raw)); alive {
			continue
		}
		if err := l.n.local.RemovePartitionDir(name); err != nil {
			l.n.log.Warn("removing data of deleted topic", "dir", name, "err", err)
			continue
		}
		l.n.log.Info("removing data of deleted topic", "dir", name)
	}
}

func (l *leader) applyRetention() {
	l.mu.RLock()
	parts := make([]*partition.Partition, 0, len(l.m))
	for _, e := range l.m {
		parts = append(parts, e.p)
	}
	l.mu.RUnlock()
	for _, p := range parts {
		if err := p.ApplyRetention(); err != nil {
			l.n.log.Warn("retention failed", "topic", p.Topic().Name, "err", err)
		}
	}
}

func (l *leader) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, e := range l.m {
		e.p.Close()
		if err := e.log.Close(); err != nil {
			l.n.log.Error("closing partition", "topic", k.topic, "partition", k.partition, "err", err)
		}
		delete(l.m, k)
	}
}

// keepsReplica reports whether this node should keep its data of a
// partition it stops following or leading: yes while the topic exists and
// this node is one of the partition's replicas (it may follow or lead it
// again); no once the topic is deleted or a reassignment moved the
// partition off this node (Kafka deletes such a replica's log too).
func (n *Node) keepsReplica(id meta.TopicID, k partKey) bool {
	if _, alive := n.cache.TopicByID(id); !alive {
		return false
	}
	pa, ok := n.cache.Partition(k.topic, k.partition)
	if !ok || pa.TopicID != id {
		return true // being re-created or deleted: the next pass decides
	}
	return pa.IsReplica(n.cfg.ID) || len(pa.Replicas) == 0
}
