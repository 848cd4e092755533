// Package groups is the consumer-group coordinator of a gateway: the
// classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, with
// eager and cooperative clients alike, static membership and session and
// rebalance timeouts), committed offsets, and the admin views of groups
// (DescribeGroups, ListGroups, DeleteGroups, OffsetDelete).
//
// Exactly one gateway coordinates a group at a time. Groups hash onto
// meta.GroupShards shards; shards.go assigns each shard to one live gateway
// and makes that gateway hold the shard key in etcd under its lease. Every
// group write - committed offsets, and the group's membership at each
// completed join and sync - is an etcd transaction guarded by that key, so
// a gateway that lost a shard cannot write to it, and the next coordinator
// resumes the group from etcd (same members, generation and assignments;
// members just keep heartbeating) after a gateway dies or a shard moves.
// Nothing is stored on a gateway's disk.
//
// The state machine follows Kafka's GroupCoordinator and franz-go's kfake
// (groups.go), with one mutex per group instead of a single run loop:
// JoinGroup and SyncGroup calls park on a channel until the rebalance step
// that answers them completes.
package groups

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Defaults as in Kafka's broker configuration.
const (
	DefaultMinSessionTimeout = 6 * time.Second  // group.min.session.timeout.ms
	DefaultMaxSessionTimeout = 30 * time.Minute // group.max.session.timeout.ms
	// DefaultMaxGroupSize bounds members per group (group.max.size; Kafka's
	// default is unbounded, but a group's state is one etcd value here).
	DefaultMaxGroupSize = 1000
	// MaxOffsetMetadataBytes is offset.metadata.max.bytes.
	MaxOffsetMetadataBytes = 4096
	defaultShardSessionTTL = 10               // seconds
	persistTimeout         = 10 * time.Second // bounds one etcd write of group state
	loadTimeout            = 10 * time.Second // bounds reading a group when a gateway takes it over
)

// Config configures a Coordinator.
type Config struct {
	Store *meta.Store
	Cache *meta.Cache
	Etcd  *clientv3.Client
	// GatewayID is this gateway's registered id; shard keys name it.
	GatewayID string
	// SessionTTL (seconds) of the shard-ownership lease: how long a dead
	// gateway's groups wait before another gateway coordinates them.
	SessionTTL int
	// MinSessionTimeout and MaxSessionTimeout bound a member's
	// session.timeout.ms (INVALID_SESSION_TIMEOUT outside).
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	MaxGroupSize      int
	Logger            *slog.Logger
	// CommitLatency, if set, observes the seconds each offset commit's
	// etcd transaction takes.
	CommitLatency interface{ Observe(float64) }
}

// Coordinator coordinates the groups of the shards this gateway holds.
type Coordinator struct {
	cfg    Config
	store  *meta.Store
	cache  *meta.Cache
	log    *slog.Logger
	shards *shards

	mu     sync.Mutex
	groups map[string]*group

	// Shard listeners (OnShardLost, OnShardGained), registered before
	// Start and read-only afterwards.
	lostFns   []func(shard int)
	gainedFns []func(g meta.ShardGuard)

	// rescan asks the marker loop (txnoffsets.go) to read every
	// transaction marker again.
	rescan chan struct{}

	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a coordinator; Start begins claiming shards.
func New(cfg Config) (*Coordinator, error) {
	if cfg.Store == nil || cfg.Cache == nil || cfg.Etcd == nil || cfg.GatewayID == "" {
		return nil, errors.New("groups: Store, Cache, Etcd and GatewayID are required")
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = defaultShardSessionTTL
	}
	if cfg.MinSessionTimeout <= 0 {
		cfg.MinSessionTimeout = DefaultMinSessionTimeout
	}
	if cfg.MaxSessionTimeout <= 0 {
		cfg.MaxSessionTimeout = DefaultMaxSessionTimeout
	}
	if cfg.MaxGroupSize <= 0 {
		cfg.MaxGroupSize = DefaultMaxGroupSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Coordinator{
		cfg: cfg, store: cfg.Store, cache: cfg.Cache,
		log: cfg.Logger.With("component", "groups"), groups: map[string]*group{},
		rescan: make(chan struct{}, 1),
	}
	c.shards = &shards{
		store: cfg.Store, cache: cfg.Cache, cli: cfg.Etcd, self: cfg.GatewayID,
		ttl: cfg.SessionTTL, log: c.log, onLost: c.shardLost, onGained: c.shardGained,
		held: map[int]meta.ShardGuard{}, reconciled: make(chan struct{}),
	}
	return c, nil
}

// OnShardLost registers fn to run when this gateway stops holding a shard
// (released to another gateway, lost with its lease, or found taken by a
// failed guarded write), after the shard's groups are dropped and, on a
// release, before the shard key is deleted: whatever fn drops is gone
// before another gateway can claim the shard. fn runs on the goroutine
// that found the loss (the shard goroutine, or a ShardLost caller) and
// must not call ShardLost. Register before Start.
func (c *Coordinator) OnShardLost(fn func(shard int)) { c.lostFns = append(c.lostFns, fn) }

// OnShardGained registers fn to run right after this gateway claims a
// shard, with the guard of the claim. fn runs on the shard goroutine and
// should hand long work (loading from etcd) to a goroutine of its own.
// Register before Start.
func (c *Coordinator) OnShardGained(fn func(g meta.ShardGuard)) {
	c.gainedFns = append(c.gainedFns, fn)
}

// Guard is this gateway's proof of ownership of key's shard
// (meta.GroupShard(key)), if it holds it. Other coordinators sharing the
// group shards (transactions) guard their etcd writes with it.
func (c *Coordinator) Guard(key string) (meta.ShardGuard, bool) {
	return c.shards.guard(meta.GroupShard(key))
}

// ShardLost reports that a write guarded by g found the shard owned by
// someone else: if g is still the held guard, the shard is dropped (and
// the OnShardLost listeners run). It must not be called from a listener.
func (c *Coordinator) ShardLost(g meta.ShardGuard) { c.shards.lost(g) }

func (c *Coordinator) shardLost(shard int) {
	c.dropShard(shard)
	for _, fn := range c.lostFns {
		fn(shard)
	}
}

func (c *Coordinator) shardGained(g meta.ShardGuard) {
	for _, fn := range c.gainedFns {
		fn(g)
	}
	c.rescanMarkers() // markers written while nobody coordinated the shard
}

// Start claims this gateway's shards in the background until Close.
func (c *Coordinator) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.done = make(chan struct{})
	markers := make(chan struct{})
	go func() {
		defer close(markers)
		c.watchMarkers(ctx)
	}()
	go func() {
		defer close(c.done)
		c.shards.run(ctx)
		<-markers
	}()
}

// Close drops every group (parked members get NOT_COORDINATOR and go to the
// next coordinator) and gives the shards up. Idempotent.
func (c *Coordinator) Close() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
		c.cancel = nil
	}
}

// Counts reports how many groups this gateway has loaded (groups of its
// shards used since it took them) and how many members they have, for
// metrics.
func (c *Coordinator) Counts() (groups, members int) {
	c.mu.Lock()
	all := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		all = append(all, g)
	}
	c.mu.Unlock()
	for _, g := range all {
		g.mu.Lock()
		if g.state != stateDead {
			groups++
			members += len(g.members)
		}
		g.mu.Unlock()
	}
	return groups, members
}

// WaitClaimed waits until the first claim pass is done (or ctx ends), so a
// gateway that starts alone answers FindCoordinator at once instead of
// COORDINATOR_NOT_AVAILABLE for its first moments.
func (c *Coordinator) WaitClaimed(ctx context.Context) {
	select {
	case <-c.shards.reconciled:
	case <-ctx.Done():
	}
}

// Settled reports whether this gateway holds exactly the group shards it
// should for the live gateways it sees (false while shards move).
func (c *Coordinator) Settled() bool { return c.shards.settled() }

// Owns reports whether this gateway coordinates group now.
func (c *Coordinator) Owns(group string) bool {
	_, ok := c.shards.guard(meta.GroupShard(group))
	return ok
}

// dropShard forgets the groups of shard; members parked in JoinGroup or
// SyncGroup are answered NOT_COORDINATOR.
func (c *Coordinator) dropShard(shard int) {
	c.mu.Lock()
	var drop []*group
	for name, g := range c.groups {
		if g.guard.Shard == shard {
			drop = append(drop, g)
			delete(c.groups, name)
		}
	}
	c.mu.Unlock()
	for _, g := range drop {
		g.mu.Lock()
		g.kill(kerr.NotCoordinator)
		g.mu.Unlock()
	}
}

// group returns the group named name, loading it from etcd the first time
// this gateway serves it. The returned group may die before the caller
// locks it (check g.dead under g.mu).
func (c *Coordinator) group(ctx context.Context, name string) (*group, *kerr.Error) {
	guard, ok := c.shards.guard(meta.GroupShard(name))
	if !ok {
		return nil, kerr.NotCoordinator
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.groups[name]; g != nil && g.guard == guard && !g.isDead() {
		return g, nil
	}
	// Loading under c.mu keeps two requests from loading one group twice;
	// it happens once per group per coordinator tenure.
	lctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	gm, offsets, err := c.store.LoadGroup(lctx, name)
	if errors.Is(err, meta.ErrCorruptGroupState) {
		// Serve what decoded; the group's next write replaces the bad values.
		c.log.Error("group state in etcd is partly undecodable; serving it as empty where unreadable", "group", name, "err", err)
		err = nil
	}
	if err != nil {
		c.log.Warn("loading group failed", "group", name, "err", err)
		return nil, kerr.CoordinatorNotAvailable
	}
	pending, err := c.store.LoadGroupTxnOffsets(lctx, name)
	if errors.Is(err, meta.ErrCorruptGroupState) {
		c.log.Error("pending transactional offsets in etcd are partly undecodable; ignoring those", "group", name, "err", err)
		err = nil
	}
	if err != nil {
		c.log.Warn("loading group failed", "group", name, "err", err)
		return nil, kerr.CoordinatorNotAvailable
	}
	// The shard may have moved while we read.
	if cur, ok := c.shards.guard(guard.Shard); !ok || cur != guard {
		return nil, kerr.NotCoordinator
	}
	g := newGroup(c, name, guard, gm, offsets)
	g.txnPending = pending
	c.groups[name] = g
	return g, nil
}

// persistFailed handles a failed group write: losing the shard drops it;
// any other error kills just this group so the next request reloads it
// from etcd. Called with g.mu held; never takes c.mu (lock order is c.mu
// before g.mu), hence the goroutine.
func (c *Coordinator) persistFailed(g *group, err error) *kerr.Error {
	if errors.Is(err, meta.ErrNotCoordinator) {
		go c.shards.lost(g.guard)
		g.kill(kerr.NotCoordinator)
		return kerr.NotCoordinator
	}
	c.log.Warn("persisting group state failed", "group", g.name, "err", err)
	g.kill(kerr.CoordinatorNotAvailable)
	return kerr.CoordinatorNotAvailable
}
