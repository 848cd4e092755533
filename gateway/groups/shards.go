package groups

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// shards decides which group shards this gateway coordinates. Each shard's
// desired owner is the live gateway with the highest rendezvous hash of
// (gateway id, shard), so shards spread evenly and only the shards of a
// gateway that comes or goes move. Desire is not ownership: a gateway
// coordinates a shard only while it holds the shard key in etcd under its
// own lease (claimed with a create-if-absent transaction), and it releases
// a shard - dropping its groups first - before another gateway can claim
// it. A dead gateway's shards free themselves when its lease expires.
type shards struct {
	store *meta.Store
	cache *meta.Cache
	cli   *clientv3.Client
	self  string
	ttl   int
	log   *slog.Logger
	// onLost runs (outside mu) when a held shard is released or lost, so
	// the coordinator drops the shard's groups; on a release it returns
	// before the key is deleted.
	onLost func(shard int)
	// onGained runs (outside mu) right after a shard is claimed.
	onGained func(g meta.ShardGuard)

	mu   sync.Mutex
	held map[int]meta.ShardGuard

	// reconciled is closed after the first pass has claimed what it could.
	reconciled     chan struct{}
	reconciledOnce sync.Once
}

// guard is this gateway's proof of ownership of shard, if it holds it.
func (s *shards) guard(shard int) (meta.ShardGuard, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.held[shard]
	return g, ok
}

// heldSet is the set of held shards.
func (s *shards) heldSet() map[int]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]bool, len(s.held))
	for n := range s.held {
		out[n] = true
	}
	return out
}

// lost forgets shard if guard is still the held one: a write found the
// shard owned by someone else.
func (s *shards) lost(g meta.ShardGuard) {
	s.mu.Lock()
	cur, ok := s.held[g.Shard]
	if ok && cur == g {
		delete(s.held, g.Shard)
	}
	s.mu.Unlock()
	if ok && cur == g {
		s.log.Warn("lost group coordinator shard", "shard", g.Shard)
		s.onLost(g.Shard)
	}
}

// run claims and releases shards until ctx ends, under an etcd session of
// its own; a lost session drops every shard and starts over.
func (s *shards) run(ctx context.Context) {
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(s.ttl), concurrency.WithContext(ctx))
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("group shards: etcd session failed, retrying", "err", err)
			}
			sleep(ctx, time.Second)
			continue
		}
		s.hold(ctx, sess)
		s.dropAll()
		if ctx.Err() != nil {
			// Stopping: revoke the lease so other gateways take the
			// shards now, not after the TTL.
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, _ = s.cli.Revoke(rctx, sess.Lease())
			cancel()
		}
		sess.Orphan()
	}
}

func (s *shards) hold(ctx context.Context, sess *concurrency.Session) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		changed := s.cache.Changed()
		s.reconcile(ctx, sess.Lease())
		s.reconciledOnce.Do(func() { close(s.reconciled) })
		select {
		case <-ctx.Done():
			return
		case <-sess.Done():
			s.log.Warn("group shards: etcd session lost; dropping every group")
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

// live is this gateway and every other registered one.
func (s *shards) live() []string {
	live := []string{s.self}
	for _, g := range s.cache.Gateways() {
		if g.ID != s.self {
			live = append(live, g.ID)
		}
	}
	return live
}

// settled reports whether this gateway holds exactly the shards it should
// for the gateways it sees.
func (s *shards) settled() bool {
	live := s.live()
	s.mu.Lock()
	defer s.mu.Unlock()
	for shard := range meta.GroupShards {
		_, held := s.held[shard]
		if held != (desiredOwner(shard, live) == s.self) {
			return false
		}
	}
	return true
}

// reconcile moves held shards towards the desired ones.
func (s *shards) reconcile(ctx context.Context, lease clientv3.LeaseID) {
	live := s.live()
	cacheRev := s.cache.Revision()
	for shard := range meta.GroupShards {
		want := desiredOwner(shard, live) == s.self
		owner := s.cache.GroupShardOwner(shard)
		g, held := s.guard(shard)
		switch {
		case held && owner != s.self && (owner != "" || cacheRev >= g.CreateRevision):
			// The key is gone or someone else's: our lease lapsed.
			s.lost(g)
		case held && !want:
			s.release(ctx, g)
		case !held && want && owner == "":
			g, ok, err := s.store.ClaimGroupShard(ctx, lease, shard, s.self)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("claiming group shard failed", "shard", shard, "err", err)
				}
				return
			}
			if ok {
				s.mu.Lock()
				s.held[shard] = g
				s.mu.Unlock()
				s.onGained(g)
			}
		}
	}
}

// release hands a shard over: its groups are dropped before the key is
// deleted, so no two gateways ever serve them at once.
func (s *shards) release(ctx context.Context, g meta.ShardGuard) {
	s.mu.Lock()
	delete(s.held, g.Shard)
	s.mu.Unlock()
	s.onLost(g.Shard)
	if err := s.store.ReleaseGroupShard(ctx, g); err != nil {
		s.log.Warn("releasing group shard failed; it frees with the lease", "shard", g.Shard, "err", err)
	}
}

func (s *shards) dropAll() {
	s.mu.Lock()
	held := s.held
	s.held = map[int]meta.ShardGuard{}
	s.mu.Unlock()
	for n := range held {
		s.onLost(n)
	}
}

// desiredOwner is the rendezvous-hash winner for shard among live.
func desiredOwner(shard int, live []string) string {
	var best string
	var bestScore uint64
	for _, id := range live {
		// A cryptographic hash: FNV of ids differing in one character
		// ("gateway-1", "gateway-2") ranks them the same way for most shards.
		sum := sha256.Sum256([]byte(id + "\x00" + strconv.Itoa(shard)))
		if sc := binary.BigEndian.Uint64(sum[:8]); best == "" || sc > bestScore || sc == bestScore && id < best {
			best, bestScore = id, sc
		}
	}
	return best
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
