package meta

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxUpdateAttempts bounds UpdateTopic's compare-and-swap retries.
const maxUpdateAttempts = 5

// UpdateTopic changes a topic's stored definition (its configs: Kafka
// AlterConfigs and IncrementalAlterConfigs) with a compare-and-swap on the
// topic key. update gets a fresh copy read from etcd and edits it in place;
// an error from it aborts the change and is returned as is. If another
// writer changed the topic between the read and the write, the read and
// update are repeated (up to maxUpdateAttempts times, then ErrConflict),
// so update always applies to the latest definition. A topic that is
// missing, or was deleted and re-created under a new id since update first
// saw it, is ErrTopicNotFound.
//
// update may change Configs and the storage mode only: the name, id,
// partition count and replication factor are checked to be unchanged
// (partitions have their own operation), and a storage mode change must
// be one StorageMode.CanChangeTo allows (local and hybrid into each other;
// its error is returned as is otherwise). The partition records are not
// touched: local and hybrid partitions are placed alike.
//
// It returns the topic as stored and the etcd revision to wait for; when
// update changed nothing, nothing is written and the revision is that of
// the read.
func (s *Store) UpdateTopic(ctx context.Context, name string, update func(t *Topic) error) (*Topic, int64, error) {
	var id TopicID
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		resp, err := s.cli.Get(ctx, s.k.topic(name))
		if err != nil {
			return nil, 0, err
		}
		if len(resp.Kvs) == 0 {
			return nil, 0, fmt.Errorf("%w: %s", ErrTopicNotFound, name)
		}
		old, err := decodeTopic(name, resp.Kvs[0].Value)
		if err != nil {
			return nil, 0, err
		}
		if attempt == 0 {
			id = old.ID
		} else if old.ID != id {
			return nil, 0, fmt.Errorf("%w: %s was deleted and re-created", ErrTopicNotFound, name)
		}
		t, _ := decodeTopic(name, resp.Kvs[0].Value) // a copy update may edit
		if err := update(t); err != nil {
			return nil, 0, err
		}
		if t.Name != old.Name || t.ID != old.ID || t.Partitions != old.Partitions || t.ReplicationFactor != old.ReplicationFactor {
			return nil, 0, fmt.Errorf("meta: UpdateTopic of %s may change configs and the storage mode only", name)
		}
		if err := old.StorageMode.CanChangeTo(t.StorageMode); err != nil {
			return nil, 0, err
		}
		if len(t.Configs) == 0 {
			t.Configs = nil
		}
		val := mustJSON(t)
		if val == mustJSON(old) {
			return t, resp.Header.Revision, nil
		}
		tx, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(s.k.topic(name)), "=", resp.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(s.k.topic(name), val)).Commit()
		if err != nil {
			return nil, 0, err
		}
		if tx.Succeeded {
			return t, tx.Header.Revision, nil
		}
	}
	return nil, 0, fmt.Errorf("%w: topic %s kept changing", ErrConflict, name)
}

func decodeTopic(name string, b []byte) (*Topic, error) {
	t := new(Topic)
	if err := json.Unmarshal(b, t); err != nil {
		return nil, fmt.Errorf("decode topic %s: %w", name, err)
	}
	return t, nil
}
