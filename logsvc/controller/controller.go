// Package controller keeps every partition led by a live node. Every
// log-service node runs one as a candidate; the one elected through etcd's
// concurrency.Election acts, the others wait. The controller watches node
// registrations (leases) and partition records and, when a node's lease is
// gone, fences its partitions by bumping their leader epoch in etcd (one
// compare-and-swap transaction per batch of partitions):
//
//   - a partition whose data lives on its replicas' disks (local, hybrid)
//     is led by the first live member of its ISR in replica order; with
//     none it goes offline (no leader) and keeps its ISR until a member is
//     back (KIP-966) — it is never moved to a node without its data, which
//     would start an empty log at a lower offset (electLocal). The
//     controller also drops dead followers from ISRs, completes
//     reassignments whose new replicas caught up, and, every
//     RebalanceInterval, hands partitions back to their preferred replica;
//   - a partition whose data is shared (diskless) moves to the least
//     loaded live node at a new epoch.
//
// The epoch bump is what fences a deposed leader: a log-service node
// confirms its epoch in etcd before acknowledging a write (see package
// logsvc), so a paused "zombie" that wakes up after its lease expired cannot
// acknowledge anything.
package controller

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/streamline-dev/streamline/shared/meta"
)

// Config configures a controller candidate.
type Config struct {
	// NodeID is this candidate's node id (the election value).
	NodeID string
	Store  *meta.Store
	Cache  *meta.Cache
	// Session is the node's etcd session: the candidacy ends with it.
	Session *concurrency.Session
	Logger  *slog.Logger
	// RebalanceInterval is how often the controller hands healthy local
	// partitions back to their preferred replicas (Kafka's
	// leader.imbalance.check.interval.seconds); 0 never does.
	RebalanceInterval time.Duration
}

// Controller is one candidate.
type Controller struct {
	cfg    Config
	log    *slog.Logger
	leader atomic.Bool
}

// New returns a candidate; Run makes it campaign.
func New(cfg Config) *Controller {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Controller{cfg: cfg, log: cfg.Logger.With("component", "controller")}
}

// IsLeader reports whether this candidate is the acting controller.
func (c *Controller) IsLeader() bool { return c.leader.Load() }

// ElectionKey is where candidates campaign, under the metadata prefix.
func ElectionKey(store *meta.Store) string { return store.Prefix() + meta.ControllerElection }

// Run campaigns until elected, then controls until ctx ends or the session
// is lost. It returns nil when ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	el := concurrency.NewElection(c.cfg.Session, ElectionKey(c.cfg.Store))
	if err := el.Campaign(ctx, c.cfg.NodeID); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// Every write of this term is guarded by the election key: once it is
	// gone (session lost, resigned), the writes fail instead of racing the
	// next controller.
	guard := clientv3.Compare(clientv3.CreateRevision(el.Key()), "=", el.Rev())
	c.leader.Store(true)
	defer c.leader.Store(false)
	c.log.Info("elected controller", "node", c.cfg.NodeID)
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = el.Resign(rctx)
	}()
	var rebalance <-chan time.Time
	if c.cfg.RebalanceInterval > 0 {
		tick := time.NewTicker(c.cfg.RebalanceInterval)
		defer tick.Stop()
		rebalance = tick.C
	}
	balance := false
	for {
		changed := c.cfg.Cache.Changed()
		if err := c.reconcile(ctx, guard, balance); err != nil && ctx.Err() == nil {
			c.log.Warn("controller pass failed; retrying", "err", err)
			select {
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
			}
		}
		balance = false
		select {
		case <-ctx.Done():
			return nil
		case <-c.cfg.Session.Done():
			return errors.New("controller: etcd session lost")
		case <-changed:
		case <-rebalance:
			balance = true
		}
	}
}

// reconcile computes and applies one pass of leadership changes.
func (c *Controller) reconcile(ctx context.Context, guard clientv3.Cmp, rebalance bool) error {
	updates := plan(c.cfg.Cache.AllPartitions(), c.cfg.Cache.LogNodes(), c.cfg.Cache.Topic, rebalance)
	if len(updates) == 0 {
		return nil
	}
	applied, err := c.cfg.Store.UpdatePartitions(ctx, updates, guard)
	for _, u := range updates[:min(applied, len(updates))] {
		switch {
		case !u.New.Online():
			c.log.Warn("partition offline: its home node's lease expired; fenced at a new epoch until it returns",
				"topic", u.New.Topic, "partition", u.New.Partition, "home", u.New.Home, "epoch", u.New.LeaderEpoch)
		case u.New.Leader == u.Old.Leader:
			c.log.Info("partition record updated", "topic", u.New.Topic, "partition", u.New.Partition,
				"isr", u.New.ISR, "was", u.Old.ISR)
		default:
			c.log.Info("partition leader assigned", "topic", u.New.Topic, "partition", u.New.Partition,
				"leader", u.New.Leader, "was", u.Old.Leader, "epoch", u.New.LeaderEpoch)
		}
	}
	return err
}

// Plan is the pure decision of one controller pass: for every partition
// whose leader is not what the live nodes call for, the update that fixes
// it, with the leader epoch bumped. topic looks up a partition's topic.
func Plan(parts []meta.Partition, live []meta.LogNode, topic func(string) (meta.Topic, bool)) []meta.PartitionUpdate {
	return plan(parts, live, topic, false)
}

// PlanRebalance is Plan plus Kafka's preferred-leader election
// (auto.leader.rebalance.enable): a healthy local partition whose
// preferred replica is alive and in the ISR but not leading is handed back
// to it at a new epoch.
func PlanRebalance(parts []meta.Partition, live []meta.LogNode, topic func(string) (meta.Topic, bool)) []meta.PartitionUpdate {
	return plan(parts, live, topic, true)
}

func plan(parts []meta.Partition, live []meta.LogNode, topic func(string) (meta.Topic, bool), rebalance bool) []meta.PartitionUpdate {
	alive := map[string]bool{}
	load := map[string]int{}
	tailOnly := map[string]map[string]bool{} // node -> partitions it holds only the tail of
	for _, n := range live {
		alive[n.ID] = true
		for _, name := range n.TailOnly {
			if tailOnly[n.ID] == nil {
				tailOnly[n.ID] = map[string]bool{}
			}
			tailOnly[n.ID][name] = true
		}
	}
	for _, p := range parts {
		if alive[p.Leader] {
			load[p.Leader]++
		}
	}
	var out []meta.PartitionUpdate
	for _, p := range parts {
		t, ok := topic(p.Topic)
		if !ok || t.ID != p.TopicID {
			continue // being deleted
		}
		next := p
		if t.StorageMode.KeepsLocalData() {
			if next.Home == "" {
				next.Home = p.Leader // records written before homes existed
			}
			if next.Reassigning() && allIn(next.AddingReplicas, next.InSyncReplicas()) {
				// The new replicas caught up: switch to the target
				// (KIP-455); a removed leader steps down here and a
				// new one is elected from the ISR just below.
				next.CompleteReassignment()
			}
			name := meta.PartitionName(p.Topic, p.Partition)
			electLocal(&next, alive, func(node string) bool { return tailOnly[node][name] }, t, rebalance)
		} else if !alive[p.Leader] {
			next.Leader = leastLoaded(live, load)
			if next.Leader != "" {
				load[next.Leader]++
			}
		}
		if next.Leader == p.Leader && next.Home == p.Home && slices.Equal(next.ISR, p.ISR) &&
			slices.Equal(next.Replicas, p.Replicas) && next.Reassigning() == p.Reassigning() {
			continue
		}
		if next.Leader == p.Leader {
			// The home was filled in, or dead followers left the ISR
			// (Kafka's controller does so when a broker is fenced,
			// without waiting for replica.lag.time.max.ms): no
			// leadership change, no new epoch.
			out = append(out, meta.PartitionUpdate{Old: p, New: next})
			continue
		}
		next.LeaderEpoch = p.LeaderEpoch + 1
		out = append(out, meta.PartitionUpdate{Old: p, New: next})
	}
	return out
}

// allIn reports whether every member of s is in set.
func allIn(s, set []string) bool {
	for _, x := range s {
		if !slices.Contains(set, x) {
			return false
		}
	}
	return true
}

// withoutDead is isr without the members whose node is not alive; nil
// stays nil. The caller keeps the live leader, so it is never emptied.
func withoutDead(isr []string, alive map[string]bool) []string {
	if isr == nil {
		return nil
	}
	out := make([]string, 0, len(isr))
	for _, id := range isr {
		if alive[id] {
			out = append(out, id)
		}
	}
	return out
}

// electLocal decides the leader and ISR of a partition whose data is on
// its replicas' disks (Kafka's partition state machine):
//
//   - a live leader stays; dead followers leave the ISR; with rebalance,
//     a live preferred replica in the ISR takes the lead back, unless it
//     holds only the tail of a hybrid partition (lacksHistory: rebuilt
//     from the object tier's end, it would serve the history from object
//     storage rather than disk);
//   - otherwise the first live ISR member in replica order leads - first
//     among those with local history, then among the rest - and the dead
//     members leave the ISR (the new leader stays, so it is never
//     emptied);
//   - with no live ISR member the partition is offline and its ISR stays
//     as it is: the last members are the only replicas holding every
//     acknowledged record, so only they may lead (KIP-966); a replica that
//     returns out of date cannot be elected. Unless the topic sets
//     unclean.leader.election.enable: then the first live replica leads
//     and the ISR is reset to it (acknowledged records may be lost, as in
//     Kafka).
//
// A record without replicas is its home alone, in sync: it waits for it.
func electLocal(next *meta.Partition, alive map[string]bool, lacksHistory func(node string) bool, t meta.Topic, rebalance bool) {
	replicas, isr := next.ReplicaSet(), next.InSyncReplicas()
	if len(replicas) == 0 {
		return
	}
	if next.Leader != "" && alive[next.Leader] {
		next.ISR = withoutDead(next.ISR, alive)
		if pref := replicas[0]; rebalance && pref != next.Leader && alive[pref] && slices.Contains(isr, pref) && !lacksHistory(pref) {
			next.Leader, next.UncleanLeader = pref, false
		}
		return
	}
	for _, withHistory := range []bool{true, false} {
		for _, r := range replicas {
			if alive[r] && slices.Contains(isr, r) && (!withHistory || !lacksHistory(r)) {
				next.Leader, next.UncleanLeader = r, false
				next.ISR = withoutDead(next.ISR, alive)
				return
			}
		}
	}
	next.Leader = ""
	if t.Bool(meta.ConfigUncleanLeaderElection, nil) {
		for _, r := range replicas {
			if alive[r] {
				// It leads with what it has, even an empty disk.
				next.Leader, next.UncleanLeader = r, true
				if next.ISR != nil {
					next.ISR = []string{r}
				}
				return
			}
		}
	}
}

func leastLoaded(live []meta.LogNode, load map[string]int) string {
	if len(live) == 0 {
		return ""
	}
	nodes := append([]meta.LogNode(nil), live...)
	sort.Slice(nodes, func(i, j int) bool {
		if load[nodes[i].ID] != load[nodes[j].ID] {
			return load[nodes[i].ID] < load[nodes[j].ID]
		}
		return nodes[i].ID < nodes[j].ID
	})
	return nodes[0].ID
}
