package meta

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// register puts a node's record under its session lease, so it disappears
// when the process dies or stops renewing. If the id is already registered
// under another lease, the record is taken over only when takeover is true
// (the caller has proof the old holder is dead, such as the data-directory
// lock of a log-service node) or when the old record is identical (the same
// process restarted at the same address before its old lease expired).
// Otherwise it waits up to RegistrationWait for the old registration to
// expire, then fails with ErrIDInUse.
func (s *Store) register(ctx context.Context, sess *concurrency.Session, kind, id string, v any, takeover bool) error {
	key := s.k.node(kind, id)
	deadline := time.Now().Add(RegistrationWait)
	for {
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
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			continue // deleted in between: try again
		}
		if clientv3.LeaseID(kvs[0].Lease) == sess.Lease() {
			return nil
		}
		if takeover || string(kvs[0].Value) == mustJSON(v) {
			_, err := s.cli.Put(ctx, key, mustJSON(v), clientv3.WithLease(sess.Lease()))
			return err
		}
		// Most often the holder is this id's previous process, killed before
		// its lease expired: wait for the lease to run out, as Kafka brokers
		// wait for their old session.
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: a live %s with id %q is registered (key %s) and did not go away within %v; give each process its own id",
				ErrIDInUse, kind, id, key, RegistrationWait)
		}
		wctx, cancel := context.WithDeadline(ctx, deadline)
		wch := s.cli.Watch(wctx, key, clientv3.WithRev(kvs[0].ModRevision+1), clientv3.WithFilterPut())
		select {
		case <-wch:
		case <-wctx.Done():
		}
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// RegistrationWait is how long a process waits for an older registration of
// its id to expire before giving up.
var RegistrationWait = 30 * time.Second

// ErrIDInUse means another live process is registered under the same id.
var ErrIDInUse = errors.New("id in use")

// RegisterLogNode registers a log-service node under sess's lease. The node
// must hold its data directory's lock, which proves any older registration
// of the same id belongs to a dead process, so it takes the id over. The
// registration carries the node's broker id, handed out on its first
// registration (BrokerIDFor).
func (s *Store) RegisterLogNode(ctx context.Context, sess *concurrency.Session, n LogNode) error {
	id, err := s.BrokerIDFor(ctx, n.ID)
	if err != nil {
		return fmt.Errorf("broker id of %s: %w", n.ID, err)
	}
	n.BrokerID = id
	return s.register(ctx, sess, kindLogsvc, n.ID, n, true)
}

// UpdateLogNode replaces this node's registration value, if it is still
// registered under sess's lease (a lost lease is left to the rejoin).
func (s *Store) UpdateLogNode(ctx context.Context, sess *concurrency.Session, n LogNode) error {
	id, err := s.BrokerIDFor(ctx, n.ID)
	if err != nil {
		return fmt.Errorf("broker id of %s: %w", n.ID, err)
	}
	n.BrokerID = id
	key := s.k.node(kindLogsvc, n.ID)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(key), "=", sess.Lease())).
		Then(clientv3.OpPut(key, mustJSON(n), clientv3.WithLease(sess.Lease()))).
		Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("log-service node %s is not registered under lease %x", n.ID, sess.Lease())
	}
	return nil
}

// RegisterGateway registers a gateway under sess's lease.
func (s *Store) RegisterGateway(ctx context.Context, sess *concurrency.Session, g Gateway) error {
	return s.register(ctx, sess, kindGateway, g.ID, g, false)
}

// RegisterUploader registers an uploader under sess's lease. takeover
// replaces a registration of the same id without waiting for it to expire;
// only a caller that knows the old holder is dead may set it.
func (s *Store) RegisterUploader(ctx context.Context, sess *concurrency.Session, u Uploader, takeover bool) error {
	return s.register(ctx, sess, kindUploader, u.ID, u, takeover)
}

// LogNodeKey is the etcd key of a log-service node's registration.
func (s *Store) LogNodeKey(id string) string { return s.k.node(kindLogsvc, id) }

// ControllerElection is the etcd election (concurrency.Election prefix,
// under the metadata prefix) the log-service nodes campaign in.
const ControllerElection = "controller"

// ElectionLeader returns the value (the candidate's id) of the current
// leader of election name, or "" if nobody leads it: the first-created key
// under the election prefix, as concurrency.Election decides.
func (s *Store) ElectionLeader(ctx context.Context, name string) (string, error) {
	resp, err := s.cli.Get(ctx, s.k.prefix+name+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}
