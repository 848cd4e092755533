package logsvc

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/streamline-dev/streamline/shared/meta"
)

// ErrFenced means this node may no longer acknowledge writes for a
// partition: its etcd lease is gone or the partition's leader epoch moved.
var ErrFenced = errors.New("fenced")

// fencer confirms, at a linearizable point in etcd, that this node is still
// registered under its own lease. Every acknowledgement waits for a
// confirmation that started after its batch's offset was assigned (it runs
// while the batch is synced and replicated: partition.Pending.Wait); one
// etcd read covers every batch waiting at that moment, so the cost is one
// round trip per group of acks, not per ack. A node paused past its lease ("zombie")
// fails the check on waking and acknowledges nothing.
type fencer struct {
	cli   *clientv3.Client
	key   string
	lease clientv3.LeaseID
	reqs  chan chan fenceResult
	done  chan struct{} // closed when run returns: the membership ended
}

// errMembershipEnded answers the checks of a fencer whose membership ended
// (its lease was lost and the node is rejoining, or the node is stopping):
// a read cut short by that, or a check made after it.
var errMembershipEnded = fmt.Errorf("%w: this node's etcd lease ended (lost, and the node is rejoining under a new one, or the node is stopping)", ErrFenced)

type fenceResult struct {
	rev int64
	err error
}

func newFencer(cli *clientv3.Client, key string, lease clientv3.LeaseID) *fencer {
	return &fencer{cli: cli, key: key, lease: lease, reqs: make(chan chan fenceResult, 1024), done: make(chan struct{})}
}

// run serves check requests in rounds until ctx ends. A request queued
// while a round's read is in flight waits for the next round, so the read
// that answers it always starts after it was made.
func (f *fencer) run(ctx context.Context) {
	defer func() {
		close(f.done)
		for { // answer the checks still queued
			select {
			case r := <-f.reqs:
				r <- fenceResult{err: errMembershipEnded}
			default:
				return
			}
		}
	}()
	for {
		var batch []chan fenceResult
		select {
		case <-ctx.Done():
			return
		case r := <-f.reqs:
			batch = append(batch, r)
		}
	more:
		for {
			select {
			case r := <-f.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		res := f.read(ctx)
		for _, r := range batch {
			r <- res
		}
	}
}

func (f *fencer) read(ctx context.Context) fenceResult {
	resp, err := f.cli.Get(ctx, f.key) // linearizable by default
	switch {
	case err != nil && ctx.Err() != nil:
		return fenceResult{err: errMembershipEnded}
	case err != nil:
		return fenceResult{err: fmt.Errorf("%w: cannot confirm leadership in etcd: %v", ErrFenced, err)}
	case len(resp.Kvs) == 0 || clientv3.LeaseID(resp.Kvs[0].Lease) != f.lease:
		return fenceResult{err: fmt.Errorf("%w: this node's etcd registration is gone (lease expired)", ErrFenced)}
	}
	return fenceResult{rev: resp.Header.Revision}
}

// check returns the etcd revision of a confirmation that started after the
// call, or why leadership could not be confirmed.
func (f *fencer) check(ctx context.Context) (int64, error) {
	ch := make(chan fenceResult, 1)
	select {
	case f.reqs <- ch:
	case <-f.done:
		return 0, errMembershipEnded
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case r := <-ch:
		return r.rev, r.err
	case <-f.done:
		// run answers what it drains; a check queued after that is
		// answered here.
		select {
		case r := <-ch:
			return r.rev, r.err
		default:
			return 0, errMembershipEnded
		}
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// partitionFence returns the Fence of one led partition: the node is still
// registered, and at that same etcd revision the partition's record still
// names this node as leader at this epoch.
func (n *Node) partitionFence(pa meta.Partition) func(context.Context) error {
	return func(ctx context.Context) error {
		f := n.fence.Load()
		if f == nil {
			return fmt.Errorf("%w: this node holds no etcd lease right now (starting, or rejoining after its lease was lost)", ErrFenced)
		}
		rev, err := f.check(ctx)
		if err != nil {
			return err
		}
		if err := n.cache.WaitRevision(ctx, rev); err != nil {
			return err
		}
		cur, ok := n.cache.Partition(pa.Topic, pa.Partition)
		if !ok || cur.TopicID != pa.TopicID {
			return fmt.Errorf("%w: partition %s-%d no longer exists", ErrFenced, pa.Topic, pa.Partition)
		}
		if cur.Leader != n.cfg.ID || cur.LeaderEpoch != pa.LeaderEpoch {
			return fmt.Errorf("%w: partition %s-%d is led by %q at epoch %d, not by this node at epoch %d",
				ErrFenced, pa.Topic, pa.Partition, cur.Leader, cur.LeaderEpoch, pa.LeaderEpoch)
		}
		return nil
	}
}
