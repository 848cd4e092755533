package meta

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// register puts a node's record under its session lease, so it disappears
// when the process dies or stops renewing. If the id is already registered
// under another lease, the record is taken over only when takeover is true
// (the caller has proof the old holder is dead, such as the data-directory
// lock of a log-service node) or when the old record is identical (the same
// process restarted at the same address before its old lease expired).
// Otherwise another live process holds the id and register fails.
func (s *Store) register(ctx context.Context, sess *concurrency.Session, kind, id string, v any, takeover bool) error {
	key := s.k.node(kind, id)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, mustJSON(v), clientv3.WithLease(sess.Lease()))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return err
	}
	if resp.Succeeded {
		return nil
	}
	// The key exists: ours from an earlier lease of this process is fine to
	// replace only if its lease is gone; otherwise another node has the id.
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) > 0 && clientv3.LeaseID(kvs[0].Lease) == sess.Lease() {
		return nil
	}
	if takeover || (len(kvs) > 0 && string(kvs[0].Value) == mustJSON(v)) {
		_, err := s.cli.Put(ctx, key, mustJSON(v), clientv3.WithLease(sess.Lease()))
		return err
	}
	return fmt.Errorf("a live %s with id %q is already registered (key %s); give each process its own id", kind, id, key)
}

// RegisterLogNode registers a log-service node under sess's lease. The node
// must hold its data directory's lock, which proves any older registration
// of the same id belongs to a dead process, so it takes the id over.
func (s *Store) RegisterLogNode(ctx context.Context, sess *concurrency.Session, n LogNode) error {
	return s.register(ctx, sess, kindLogsvc, n.ID, n, true)
}

// RegisterGateway registers a gateway under sess's lease.
func (s *Store) RegisterGateway(ctx context.Context, sess *concurrency.Session, g Gateway) error {
	return s.register(ctx, sess, kindGateway, g.ID, g, false)
}

// RegisterUploader registers an uploader under sess's lease.
func (s *Store) RegisterUploader(ctx context.Context, sess *concurrency.Session, u Uploader) error {
	return s.register(ctx, sess, kindUploader, u.ID, u, false)
}
