package logsvc

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/streamline-dev/streamline/logsvc/controller"
	"github.com/streamline-dev/streamline/shared/meta"
)

// membership is one life of the node in the cluster: an etcd session
// (lease), the registration under it, the fencer that confirms it before
// acks, and the controller candidacy. When the lease is lost — the node was
// partitioned from etcd or paused past the TTL — the membership ends: the
// node steps down from every partition and joins again under a new lease,
// and the controller hands its partitions back at a new epoch. The process
// does not need to restart.
type membership struct {
	sess   *concurrency.Session
	cancel context.CancelFunc
	done   chan struct{}
}

// join starts a membership.
func (n *Node) join(ctx context.Context) (*membership, error) {
	sess, err := concurrency.NewSession(n.cfg.Etcd, concurrency.WithTTL(int(n.cfg.SessionTTL.Seconds())))
	if err != nil {
		return nil, fmt.Errorf("logsvc: etcd session: %w", err)
	}
	tail := n.follow.tailOnly()
	if err := n.store.RegisterLogNode(ctx, sess, n.registration(tail)); err != nil {
		sess.Close()
		return nil, err
	}
	mctx, cancel := context.WithCancel(context.Background())
	m := &membership{sess: sess, cancel: cancel, done: make(chan struct{})}
	f := newFencer(n.cfg.Etcd, n.store.LogNodeKey(n.cfg.ID), sess.Lease())
	ctrl := controller.New(controller.Config{NodeID: n.cfg.ID, Store: n.store, Cache: n.cache, Session: sess, Logger: n.log,
		RebalanceInterval: n.cfg.LeaderRebalanceInterval})
	n.fence.Store(f)
	n.ctrl.Store(ctrl)
	fenceDone := make(chan struct{})
	go func() { defer close(fenceDone); f.run(mctx) }()
	go n.advertiseTailOnly(mctx, sess, tail)
	go func() {
		defer close(m.done)
		if err := ctrl.Run(mctx); err != nil && mctx.Err() == nil {
			n.log.Warn("controller candidacy ended", "err", err)
		}
		<-fenceDone
	}()
	n.log.Info("registered in etcd; if this node's lease is not renewed within the session TTL its partitions are fenced",
		"session_ttl", n.cfg.SessionTTL, "lease", fmt.Sprintf("%x", sess.Lease()))
	return m, nil
}

// registration is this node's etcd registration value.
func (n *Node) registration(tailOnly []string) meta.LogNode {
	return meta.LogNode{ID: n.cfg.ID, Addr: n.Addr(), ObjectStore: n.cfg.Objects != nil, Rack: n.cfg.Rack, TailOnly: tailOnly}
}

// advertiseTailOnly registers the node again, under the same lease, when
// the hybrid partitions it follows without local history change (every
// tailOnlyInterval), so the controller does not prefer it as their leader.
func (n *Node) advertiseTailOnly(ctx context.Context, sess *concurrency.Session, last []string) {
	t := time.NewTicker(tailOnlyInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := n.follow.tailOnly()
		if slices.Equal(cur, last) {
			continue
		}
		if err := n.store.UpdateLogNode(ctx, sess, n.registration(cur)); err != nil {
			if ctx.Err() == nil {
				n.log.Warn("updating the registration (partitions followed without local history) failed; retrying", "err", err)
			}
			continue
		}
		n.log.Info("partitions followed without local history", "tail_only", cur)
		last = cur
	}
}

// tailOnlyInterval is how often advertiseTailOnly looks for a change.
const tailOnlyInterval = 2 * time.Second

// end stops the membership's goroutines; closeSession also revokes the
// lease (a clean shutdown deregisters at once).
func (m *membership) end(closeSession bool) {
	m.cancel()
	<-m.done
	if closeSession {
		m.sess.Close()
	}
}

// stayJoined watches the membership and rejoins after a lost lease, until
// ctx ends.
func (n *Node) stayJoined(ctx context.Context, m *membership) {
	defer n.wg.Done()
	for {
		select {
		case <-ctx.Done():
			m.end(true)
			return
		case <-m.sess.Done():
		}
		n.log.Warn("etcd lease lost: stepping down from every partition and rejoining under a new lease")
		n.fence.Store(nil) // nothing is acknowledged until rejoined
		m.end(false)
		n.parts.closeAll()
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
			var err error
			if m, err = n.join(ctx); err == nil {
				break
			}
			n.log.Warn("rejoin failed; retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		n.parts.reconcile()
	}
}
