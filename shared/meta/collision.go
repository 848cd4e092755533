package meta

import (
	"context"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Kafka's topic-name collision rule: '.' and '_' map to the same metric
// name, so two topics whose names differ only there (col.x and col_x) may
// not coexist. Kafka answers INVALID_TOPIC_EXCEPTION "Topic 'col_x'
// collides with existing topic: col.x".
//
// The rule is enforced in the transaction that creates a topic: it also
// creates a collision key (the name with '.' replaced by '_') holding the
// topic's name, compared to be absent, so two gateways creating a.b and
// a_b at once cannot both succeed. Topics created before collision keys
// existed have none; CreateTopic also checks the existing names, and
// DeleteTopic removes the key only if it holds the deleted topic's name.

// ErrTopicCollision is a name that collides with an existing topic's.
var ErrTopicCollision = errors.New("topic name collides with an existing topic")

// TopicCollisionName is the name two topics may not share: '.' and '_'
// are the same character in it.
func TopicCollisionName(name string) string { return strings.ReplaceAll(name, ".", "_") }

// CollisionError is the error for creating name when existing holds its
// collision name: it is ErrTopicCollision, worded as Kafka words it (the
// message goes to Kafka clients unchanged).
func CollisionError(name, existing string) error { return collisionError{name, existing} }

type collisionError struct{ name, existing string }

func (e collisionError) Error() string {
	return fmt.Sprintf("Topic '%s' collides with existing topic: %s", e.name, e.existing)
}

func (e collisionError) Is(target error) bool { return target == ErrTopicCollision }

func (k keys) topicCollisions() string { return k.prefix + "topic-collisions/" }
func (k keys) topicCollision(name string) string {
	return k.topicCollisions() + TopicCollisionName(name)
}

// collidingTopic returns an existing topic other than name with the same
// collision name, read from the topic keys (the check for topics created
// before collision keys existed).
func (s *Store) collidingTopic(ctx context.Context, name string) (string, error) {
	if !strings.ContainsAny(name, "._") {
		return "", nil
	}
	resp, err := s.cli.Get(ctx, s.k.topics(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return "", err
	}
	want := TopicCollisionName(name)
	for _, kv := range resp.Kvs {
		other := strings.TrimPrefix(string(kv.Key), s.k.topics())
		if other != name && TopicCollisionName(other) == want {
			return other, nil
		}
	}
	return "", nil
}

// explainFailedCreate tells why CreateTopic's transaction failed: the
// name exists, or the collision key names another topic. A collision key
// whose topic is gone (left by a delete of a build that did not know the
// keys) is removed and reported as ErrConflict, so the caller retries.
func (s *Store) explainFailedCreate(ctx context.Context, name string, resp *clientv3.TxnResponse) error {
	topicResp := resp.Responses[0].GetResponseRange()
	collResp := resp.Responses[1].GetResponseRange()
	if topicResp != nil && len(topicResp.Kvs) > 0 {
		return fmt.Errorf("%w: %s", ErrTopicExists, name)
	}
	if collResp == nil || len(collResp.Kvs) == 0 {
		return ErrConflict // both were there at the compare and are gone now
	}
	ckv := collResp.Kvs[0]
	holder := string(ckv.Value)
	if holder == name {
		// The key names the topic we create, which does not exist: stale.
		return s.removeStaleCollisionKey(ctx, string(ckv.Key), holder, ckv.ModRevision)
	}
	got, err := s.cli.Get(ctx, s.k.topic(holder), clientv3.WithKeysOnly())
	if err != nil {
		return err
	}
	if len(got.Kvs) > 0 {
		return CollisionError(name, holder)
	}
	return s.removeStaleCollisionKey(ctx, string(ckv.Key), holder, ckv.ModRevision)
}

// removeStaleCollisionKey deletes a collision key if it is unchanged and
// its topic still does not exist, and returns ErrConflict (retry).
func (s *Store) removeStaleCollisionKey(ctx context.Context, key, holder string, modRev int64) error {
	_, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(key), "=", modRev),
		clientv3.Compare(clientv3.CreateRevision(s.k.topic(holder)), "=", 0),
	).Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return err
	}
	return ErrConflict
}

// deleteCollisionKeyOp removes name's collision key if it holds name: a
// topic from before collision keys has none, and a legacy pair (a.b and
// a_b both created before the rule) must not lose the other's key.
func (s *Store) deleteCollisionKeyOp(name string) clientv3.Op {
	key := s.k.topicCollision(name)
	return clientv3.OpTxn(
		[]clientv3.Cmp{clientv3.Compare(clientv3.Value(key), "=", name)},
		[]clientv3.Op{clientv3.OpDelete(key)}, nil)
}
