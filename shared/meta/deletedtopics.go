package meta

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Deleting a topic whose manifest has many entries (a large diskless
// topic: one entry per merged segment and per recent flush of each
// partition) must not delete them in the topic's own transaction. etcd
// applies a transaction in one step, and while it deletes N keys (about 5
// µs each on a 2-core VM: 250 ms for 50,000) it applies nothing else and
// answers no linearizable read, so every produce of every topic in the
// cluster, whose acknowledgement waits for one (the leadership check),
// stalls as long; every metadata watch then gets all N events at once.
//
// So DeleteTopic deletes the manifest in its transaction only when it is
// small (at most ReapChunkKeys keys). Otherwise the transaction deletes
// the topic, its partitions and its collision key, as always, and writes
// a tombstone under deleted-topics/<topic id>; the uploader fleet's
// elected garbage collector then deletes the manifest ReapChunkKeys keys
// per transaction, with a pause after each (ReapDeletedTopics), and the
// tombstone last. The manifest is unreachable from the moment the topic is
// gone: it is keyed by the topic's id, never reused (a topic created again
// under the name gets a new one), its partition records are gone (so
// every commit, merge or trim of it fails its compare), the merger skips
// the manifests of tombstoned topics, and the collector keeps their
// objects until the entries are gone, so nothing is read from a deleted
// object. A crash mid-way leaves the tombstone and the rest of the
// manifest; the next pass goes on from there.

// ReapChunkKeys is the most manifest keys one transaction deletes: about
// 2.5 ms of etcd's apply loop on a 2-core VM.
const ReapChunkKeys = 500

// DeletedTopic is the tombstone of a topic whose manifest is still being
// deleted.
type DeletedTopic struct {
	ID        TopicID   `json:"-"`
	Name      string    `json:"name"`
	DeletedAt time.Time `json:"deleted_at"`
}

func (k keys) deletedTopics() string { return k.prefix + "deleted-topics/" }
func (k keys) deletedTopic(id TopicID) string {
	return k.deletedTopics() + id.String()
}

// DeletedTopics lists the tombstones of deleted topics whose manifests
// are still being deleted. A tombstone that does not decode (not written
// by Streamline) is left out, and named in the error returned with the
// others.
func (s *Store) DeletedTopics(ctx context.Context) ([]DeletedTopic, error) {
	resp, err := s.cli.Get(ctx, s.k.deletedTopics(), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]DeletedTopic, 0, len(resp.Kvs))
	var bad []error
	for _, kv := range resp.Kvs {
		raw, err := hex.DecodeString(strings.TrimPrefix(string(kv.Key), s.k.deletedTopics()))
		var d DeletedTopic
		if err != nil || len(raw) != len(d.ID) {
			bad = append(bad, fmt.Errorf("meta: tombstone key %q names no topic id; left alone", kv.Key))
			continue
		}
		if err := json.Unmarshal(kv.Value, &d); err != nil {
			bad = append(bad, fmt.Errorf("meta: tombstone %q does not decode (%v); left alone", kv.Key, err))
			continue
		}
		copy(d.ID[:], raw)
		out = append(out, d)
	}
	return out, errors.Join(bad...)
}

// ReapStats is what ReapDeletedTopics did.
type ReapStats struct {
	Keys   int // manifest keys deleted
	Topics int // tombstones removed: those topics' manifests are gone
}

// ReapDeletedTopics deletes the manifests of deleted topics (their
// tombstones), ReapChunkKeys keys per transaction, calling between after
// each transaction (Pause: wait, so that the deletion takes at most a
// small share of etcd's apply loop). A topic's tombstone is removed, in a
// transaction that also checks the manifest is empty, once its manifest
// is gone. It stops at the first error, between's included, and returns
// what it did; calling it again resumes, whatever state a failure or
// crash left.
func (s *Store) ReapDeletedTopics(ctx context.Context, between func(context.Context) error) (ReapStats, error) {
	var st ReapStats
	dead, badTombstones := s.DeletedTopics(ctx)
	if len(dead) == 0 && badTombstones != nil {
		return st, badTombstones // etcd unreadable, or only bad tombstones
	}
	for _, d := range dead {
		prefix := s.k.topicManifests(d.ID)
		for {
			resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(ReapChunkKeys))
			if err != nil {
				return st, err
			}
			if len(resp.Kvs) == 0 {
				// Nothing writes under a deleted topic's id (every write
				// compares a record that is gone), but only remove the
				// tombstone of a manifest that is empty at that moment.
				_, err := s.cli.Txn(ctx).
					If(clientv3.Compare(clientv3.CreateRevision(prefix), "=", 0).WithPrefix()).
					Then(clientv3.OpDelete(s.k.deletedTopic(d.ID))).
					Commit()
				if err != nil {
					return st, err
				}
				st.Topics++
				break
			}
			first, last := string(resp.Kvs[0].Key), string(resp.Kvs[len(resp.Kvs)-1].Key)
			del, err := s.cli.Delete(ctx, first, clientv3.WithRange(last+"\x00"))
			if err != nil {
				return st, err
			}
			st.Keys += int(del.Deleted)
			if err := between(ctx); err != nil {
				return st, err
			}
		}
	}
	return st, badTombstones
}

// Pause is a between for ReapDeletedTopics: it waits d, or until ctx ends.
func Pause(d time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
}
