// Package gc deletes objects nobody references: the uploader fleet's
// background garbage collector for object storage.
//
// An object is garbage when no manifest entry in etcd references it
// (meta.Store.ReferencedObjects) and it is older than a grace period,
// judged by the creation time in its key (objectfmt.KeyTime), so ages cost
// no request per object. That one rule covers both sources of garbage:
//
//   - orphans: objects uploaded but never committed (the committing leader
//     was fenced, crashed, or its commit failed). An object younger than
//     Grace may still be waiting for its commit, so it is never deleted;
//   - replaced and expired data: a merge swaps a partition's entries for
//     one segment's (package merge), retention and DeleteRecords delete
//     expired entries (UploadService.Trim). An object whose
//     every entry (an object holds many partitions) is gone is
//     unreferenced, and the next pass deletes it. No retention logic lives
//     here.
//
// Objects whose keys objectfmt.KeyTime cannot parse (other formats, other
// tools' files) are never deleted; each pass logs them.
//
// # Safety
//
// A pass lists the bucket first and reads the referenced set (one etcd
// snapshot) after the listing, so an object committed while the bucket was
// being listed is seen as referenced. What remains is an object committed
// after the snapshot: that must not be an object old enough to be deleted.
// The commit path guarantees it: an uploader refuses to commit coordinates
// of an object older than MaxCommitAge(Grace) = Grace/2 by its key (the
// batch fails instead and is never acknowledged; see
// uploadrpc.Server.RefuseCommitsOlderThan). A deleted object is therefore
// one whose commit could only land if that commit stalled in flight for
// more than Grace/2 plus the clock skew between uploaders. Grace must be the
// same on every uploader of the fleet.
//
// Deleting is idempotent and only ever removes objects that are garbage by
// the rule above, so two collectors running at once would be wasteful, not
// unsafe. Still, only one uploader collects at a time: candidates campaign
// in an etcd concurrency.Election on "<prefix>gc" with their uploader's
// session, and the elected one runs a pass every Interval until its session
// ends or it is stopped.
//
// The bucket must belong to one Streamline cluster (one etcd prefix): a
// collector deletes whatever its own cluster's manifests do not reference.
package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
	"golang.org/x/sync/errgroup"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/uploader/elected"
	"github.com/streamline-dev/streamline/uploader/objectfmt"
)

// Defaults for zero Config fields.
const (
	DefaultGrace    = 10 * time.Minute
	DefaultInterval = time.Minute
	// DefaultLinger is how long an object stays after it was first seen
	// unreferenced. A reader (a fetch, a prefetch, a merge) that read an
	// entry just before a merge swap or retention removed it still GETs
	// the object within one RPC timeout (30 s); a minute covers that.
	DefaultLinger = time.Minute
)

// deleteParallelism bounds concurrent DELETEs in a pass.
const deleteParallelism = 8

// maxLoggedSkips bounds how many unparsable keys one pass names in its log.
const maxLoggedSkips = 5

// MaxCommitAge is how old, by its key time, an object may be when its
// coordinates are committed, given the fleet's GC grace period: half of
// it, leaving the other half for a commit in flight and clock skew.
func MaxCommitAge(grace time.Duration) time.Duration { return grace / 2 }

// Bucket is what the collector needs of object storage (objstore.Bucket
// implementations satisfy it).
type Bucket interface {
	Iter(ctx context.Context, prefix string, fn func(key string) error) error
	Delete(ctx context.Context, key string) error
}

// Config configures a Collector.
type Config struct {
	Bucket Bucket
	// Store lists the referenced objects; its prefix also names the
	// election.
	Store *meta.Store
	// ID is this candidate's value in the election (the uploader id).
	ID string
	// Grace is the age below which an object is never deleted; zero means
	// DefaultGrace. It must exceed the longest time between an object's PUT
	// and its commit, and be the same on every uploader.
	Grace time.Duration
	// Interval is the time between passes of the elected collector; zero
	// means DefaultInterval.
	Interval time.Duration
	Logger   *slog.Logger
	// Now is the clock objects' ages are measured with; nil is time.Now.
	Now func() time.Time
	// OnPass, if set, is called after every pass Run makes (metrics).
	OnPass func(Stats, error)
	// Linger is how long an object old enough to collect must have been
	// seen unreferenced (by this collector, in an earlier pass) before it
	// is deleted: objects replaced by a merge are old by their key time,
	// yet a reader may hold their coordinates for a moment longer. Zero is
	// DefaultLinger; negative deletes on first sight (tests).
	Linger time.Duration
}

// Stats counts what one pass did with the objects it listed.
type Stats struct {
	Kept    int // referenced, or younger than Grace
	Deleted int // unreferenced and older than Grace: deleted
	Skipped int // key without a parsable time: left alone
	Failed  int // deletion failed; retried by the next pass
	Waiting int // unreferenced and old enough, but not yet for Linger
	// Manifest keys of deleted topics deleted by the pass, and topics
	// whose manifests are now gone (meta.Store.ReapDeletedTopics).
	ReapedKeys, ReapedTopics int
}

// reapPause is the pause after each transaction deleting a chunk of a
// deleted topic's manifest (meta.ReapChunkKeys keys, ~2.5 ms of etcd's
// apply loop): etcd spends at most about a tenth of its time on it.
const reapPause = 25 * time.Millisecond

// Collector is one uploader's garbage collector candidate.
type Collector struct {
	cfg    Config
	log    *slog.Logger
	leader atomic.Bool
	// unrefSince is when each collectable object was first seen
	// unreferenced. It lives in memory: a new collector starts the clocks
	// again, which only ever delays a deletion.
	unrefSince map[string]time.Time
}

// New returns a collector; Pass runs one pass, Run campaigns and collects.
func New(cfg Config) (*Collector, error) {
	switch {
	case cfg.Bucket == nil:
		return nil, errors.New("gc: bucket is required")
	case cfg.Store == nil:
		return nil, errors.New("gc: store is required")
	case cfg.Grace < 0 || cfg.Interval < 0:
		return nil, fmt.Errorf("gc: negative grace %v or interval %v", cfg.Grace, cfg.Interval)
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Linger == 0 {
		cfg.Linger = DefaultLinger
	}
	return &Collector{cfg: cfg, log: cfg.Logger.With("component", "gc"), unrefSince: map[string]time.Time{}}, nil
}

// Grace is the effective grace period.
func (c *Collector) Grace() time.Duration { return c.cfg.Grace }

// IsLeader reports whether this candidate is the elected collector.
func (c *Collector) IsLeader() bool { return c.leader.Load() }

// ElectionKey is where collectors campaign, under the metadata prefix.
func ElectionKey(store *meta.Store) string { return store.Prefix() + "gc" }

// Pass first deletes what is left of deleted topics' manifests (large
// manifests are deleted a chunk at a time, here, rather than in the
// topic's deletion: meta.Store.ReapDeletedTopics), then lists the bucket
// and deletes every object that is unreferenced and older than Grace. A
// failed listing or etcd scan deletes nothing and returns the error;
// failed deletions are counted, the others still run, and the first
// failure is returned.
func (c *Collector) Pass(ctx context.Context) (Stats, error) {
	var st Stats
	reaped, err := c.cfg.Store.ReapDeletedTopics(ctx, meta.Pause(reapPause))
	st.ReapedKeys, st.ReapedTopics = reaped.Keys, reaped.Topics
	if err != nil {
		// The objects are still referenced by what is left: collecting
		// the rest of the bucket loses nothing; the next pass resumes.
		c.log.Warn("deleting deleted topics' manifests failed; retrying next pass", "keys_deleted", reaped.Keys, "err", err)
	} else if reaped.Topics > 0 {
		c.log.Info("deleted topics' manifests deleted", "topics", reaped.Topics, "keys", reaped.Keys)
	}
	// Ages are measured against a clock read before listing: an object is
	// only ever judged older than it is at any later moment of the pass.
	now := c.cfg.Now()
	var candidates, skipped []string
	err = c.cfg.Bucket.Iter(ctx, "", func(key string) error {
		t, ok := objectfmt.KeyTime(key)
		switch {
		case !ok:
			st.Skipped++
			if len(skipped) < maxLoggedSkips {
				skipped = append(skipped, key)
			}
		case now.Sub(t) < c.cfg.Grace:
			st.Kept++
		default:
			candidates = append(candidates, key)
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("gc: list bucket: %w", err)
	}
	if st.Skipped > 0 {
		c.log.Warn("objects with keys of no known format are never collected", "count", st.Skipped, "examples", skipped)
	}
	if len(candidates) == 0 {
		return st, nil
	}
	// Only now, after the listing, read what etcd references: an object
	// committed before this snapshot is kept even if it was listed first.
	refs, err := c.cfg.Store.ReferencedObjects(ctx)
	if err != nil {
		return st, fmt.Errorf("gc: referenced objects: %w", err)
	}
	var (
		mu       sync.Mutex
		firstErr error
		g        errgroup.Group
	)
	g.SetLimit(deleteParallelism)
	referenced := 0
	seen := make(map[string]time.Time, len(c.unrefSince))
	defer func() { c.unrefSince = seen }() // forget objects gone or referenced
	for _, key := range candidates {
		if _, ok := refs[key]; ok {
			referenced++
			continue
		}
		since, ok := c.unrefSince[key]
		if !ok {
			since = now
		}
		seen[key] = since
		if c.cfg.Linger > 0 && now.Sub(since) < c.cfg.Linger {
			st.Waiting++
			continue
		}
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			err := c.cfg.Bucket.Delete(ctx, key)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				st.Failed++
				if firstErr == nil {
					firstErr = fmt.Errorf("gc: delete %s: %w", key, err)
				}
				return nil
			}
			st.Deleted++
			c.log.Debug("deleted unreferenced object", "key", key)
			return nil
		})
	}
	_ = g.Wait() // failures are counted, the first returned
	st.Kept += referenced
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return st, firstErr
}

// ErrSessionLost is returned by Run when the etcd session ends.
var ErrSessionLost = elected.ErrSessionLost

// Run campaigns for the collector's election with sess and, once elected,
// runs a pass immediately and then every Interval, until ctx ends (it
// resigns and returns nil) or the session ends (ErrSessionLost).
func (c *Collector) Run(ctx context.Context, sess *concurrency.Session) error {
	return elected.Run(ctx, sess, elected.Job{
		Name: "garbage collector", Key: ElectionKey(c.cfg.Store), ID: c.cfg.ID, Interval: c.cfg.Interval,
		Logger: c.log, Leader: &c.leader,
		Pass: func(ctx context.Context) {
			start := time.Now()
			st, err := c.Pass(ctx)
			if ctx.Err() != nil {
				return
			}
			attrs := []any{"kept", st.Kept, "deleted", st.Deleted, "skipped", st.Skipped, "failed", st.Failed, "manifest_keys_reaped", st.ReapedKeys, "took", time.Since(start)}
			switch {
			case err != nil:
				c.log.Warn("gc pass failed; retrying next interval", append(attrs, "err", err)...)
			case st.Deleted > 0:
				c.log.Info("gc pass", attrs...)
			default:
				c.log.Debug("gc pass", attrs...)
			}
			if c.cfg.OnPass != nil {
				c.cfg.OnPass(st, err)
			}
		},
	})
}
