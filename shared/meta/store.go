package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Sentinel errors; callers map them to Kafka codes and gRPC statuses.
var (
	ErrTopicExists       = errors.New("topic already exists")
	ErrTopicNotFound     = errors.New("topic not found")
	ErrInvalidTopicName  = errors.New("invalid topic name")
	ErrInvalidPartitions = errors.New("invalid number of partitions")
	ErrNoLogNodes        = errors.New("no live log-service nodes to place partitions on")
	ErrConflict          = errors.New("concurrent metadata change, retry")
)

// MaxPartitions bounds partitions per topic so that one CreateTopics cannot
// exceed etcd's per-transaction operation limit (128 by default) or flood
// the cluster.
const MaxPartitions = 100

var legalTopicName = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// ValidateTopicName applies Kafka's topic name rules.
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidTopicName)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q is not allowed", ErrInvalidTopicName, name)
	case len(name) > 249:
		return fmt.Errorf("%w: longer than 249 characters", ErrInvalidTopicName)
	case !legalTopicName.MatchString(name):
		return fmt.Errorf("%w: %q may only contain ASCII letters, digits, '.', '_' and '-'", ErrInvalidTopicName, name)
	}
	return nil
}

// Store reads and writes metadata in etcd. It is safe for concurrent use.
type Store struct {
	cli *clientv3.Client
	k   keys
}

// NewStore returns a Store using keys under prefix ("" means DefaultPrefix).
func NewStore(cli *clientv3.Client, prefix string) *Store {
	return &Store{cli: cli, k: newKeys(prefix)}
}

// Client is the underlying etcd client.
func (s *Store) Client() *clientv3.Client { return s.cli }

// Prefix is the key prefix this store uses.
func (s *Store) Prefix() string { return s.k.prefix }

// CreateTopic stores t and places its partitions on nodes round-robin, all
// in one transaction that fails with ErrTopicExists if the name is taken
// and with ErrTopicCollision if it collides with another topic's name
// (collision.go).
// It fills in t.ID. It returns the etcd revision of the write, which a
// Cache can wait for.
func (s *Store) CreateTopic(ctx context.Context, t *Topic, nodes []LogNode) (int64, error) {
	if err := ValidateTopicName(t.Name); err != nil {
		return 0, err
	}
	if t.Partitions < 1 || t.Partitions > MaxPartitions {
		return 0, fmt.Errorf("%w: %d (must be 1..%d)", ErrInvalidPartitions, t.Partitions, MaxPartitions)
	}
	if len(nodes) == 0 {
		return 0, ErrNoLogNodes
	}
	if t.ID.IsZero() {
		t.ID = NewTopicID()
	}
	if t.StorageMode == "" {
		t.StorageMode = StorageLocal
	}
	if other, err := s.collidingTopic(ctx, t.Name); err != nil {
		return 0, err
	} else if other != "" {
		return 0, CollisionError(t.Name, other)
	}
	topicKey, collKey := s.k.topic(t.Name), s.k.topicCollision(t.Name)
	ops := []clientv3.Op{clientv3.OpPut(topicKey, mustJSON(t)), clientv3.OpPut(collKey, t.Name)}
	placed, err := s.placeOps(t, 0, t.Partitions, nodes)
	if err != nil {
		return 0, err
	}
	ops = append(ops, placed...)
	// A stale collision key is removed by explainFailedCreate; one retry
	// after that is enough unless others keep racing us.
	for attempt := 0; ; attempt++ {
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(topicKey), "=", 0),
				clientv3.Compare(clientv3.CreateRevision(collKey), "=", 0)).
			Then(ops...).
			Else(clientv3.OpGet(topicKey, clientv3.WithKeysOnly()), clientv3.OpGet(collKey)).
			Commit()
		if err != nil {
			return 0, err
		}
		if resp.Succeeded {
			return resp.Header.Revision, nil
		}
		err = s.explainFailedCreate(ctx, t.Name, resp)
		if !errors.Is(err, ErrConflict) || attempt >= 3 {
			return 0, err
		}
	}
}

// placeOps assigns partitions [from, to) to nodes, which callers pass
// least-loaded first (Cache.LogNodesByLoad), so new partitions even out
// the cluster. A partition of a mode that keeps data locally gets
// t.ReplicationFactor replicas on distinct nodes, placed as Kafka does
// (AssignReplicas: rack-aware, preferred leaders spread), all in sync (the
// log is empty), its preferred replica leading and as its home. A
// partition whose data is shared (diskless) has one logical replica: its
// leader, round-robin. Too few nodes for the factor is
// ErrReplicationFactor.
func (s *Store) placeOps(t *Topic, from, to int32, nodes []LogNode) ([]clientv3.Op, error) {
	var ops []clientv3.Op
	if !t.StorageMode.KeepsLocalData() {
		for p := from; p < to; p++ {
			node := nodes[int(p-from)%len(nodes)]
			pa := Partition{Topic: t.Name, TopicID: t.ID, Partition: p, Leader: node.ID, LeaderEpoch: 0}
			ops = append(ops, clientv3.OpPut(s.k.partition(t.Name, p), mustJSON(pa)))
		}
		return ops, nil
	}
	rf := max(int(t.ReplicationFactor), 1)
	assigned, err := AssignReplicas(nodes, to-from, rf, 0)
	if err != nil {
		return nil, err
	}
	for i, replicas := range assigned {
		p := from + int32(i)
		pa := Partition{Topic: t.Name, TopicID: t.ID, Partition: p, Leader: replicas[0], LeaderEpoch: 0,
			Home: replicas[0], Materialized: new(bool), Replicas: replicas, ISR: slices.Clone(replicas)}
		ops = append(ops, clientv3.OpPut(s.k.partition(t.Name, p), mustJSON(pa)))
	}
	return ops, nil
}

// PartitionUpdate is one compare-and-swap change of a partition record.
type PartitionUpdate struct {
	// Old is the record as read (its ModRevision is compared).
	Old Partition
	// New replaces it.
	New Partition
}

// MaxUpdatesPerTxn keeps each transaction well under etcd's default limit
// of 128 operations (one compare and one put per update).
const MaxUpdatesPerTxn = 50 // plus a few guards

// UpdatePartitions applies updates in transactions of at most
// MaxUpdatesPerTxn, each succeeding only if none of its partitions changed
// since read and every guard holds (a controller passes "my election key
// still exists", so a deposed controller cannot write). It returns how many
// were applied; a failed transaction is skipped (its partitions are re-read
// by the caller's next pass).
func (s *Store) UpdatePartitions(ctx context.Context, updates []PartitionUpdate, guards ...clientv3.Cmp) (applied int, err error) {
	for len(updates) > 0 {
		n := min(len(updates), MaxUpdatesPerTxn)
		chunk := updates[:n]
		updates = updates[n:]
		cmps := append([]clientv3.Cmp(nil), guards...)
		var ops []clientv3.Op
		for _, u := range chunk {
			key := s.k.partition(u.Old.Topic, u.Old.Partition)
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", u.Old.ModRevision))
			ops = append(ops, clientv3.OpPut(key, mustJSON(u.New)))
		}
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return applied, err
		}
		if resp.Succeeded {
			applied += len(chunk)
		}
	}
	return applied, nil
}

// DeleteTopic removes a topic, its partitions and its manifest (the
// coordinates of its data in object storage; the objects themselves are
// collected as unreferenced) in one transaction. A manifest of more than
// ReapChunkKeys keys is left to ReapDeletedTopics instead, under a
// tombstone the transaction writes (see deletedtopics.go).
func (s *Store) DeleteTopic(ctx context.Context, name string) (int64, error) {
	t, rev, err := s.getTopic(ctx, name)
	if err != nil {
		return 0, err
	}
	manifest := s.k.topicManifests(t.ID)
	count, err := s.cli.Get(ctx, manifest, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	// A commit in flight may add a few keys after the count: the inline
	// delete takes them too.
	dropManifest := clientv3.OpDelete(manifest, clientv3.WithPrefix())
	if count.Count > ReapChunkKeys {
		dropManifest = clientv3.OpPut(s.k.deletedTopic(t.ID), mustJSON(DeletedTopic{Name: name, DeletedAt: time.Now().UTC()}))
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(s.k.topic(name)), "=", rev)).
		Then(
			clientv3.OpDelete(s.k.topic(name)),
			clientv3.OpDelete(s.k.topicPartitions(name), clientv3.WithPrefix()),
			dropManifest,
			s.deleteCollisionKeyOp(name),
		).Commit()
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, ErrConflict
	}
	return resp.Header.Revision, nil
}

// AddPartitions grows a topic to total partitions, placing the new ones on
// nodes. It fails with ErrConflict if the topic changed concurrently.
func (s *Store) AddPartitions(ctx context.Context, name string, total int32, nodes []LogNode) (int64, error) {
	t, rev, err := s.getTopic(ctx, name)
	if err != nil {
		return 0, err
	}
	if total <= t.Partitions || total > MaxPartitions {
		return 0, fmt.Errorf("%w: topic %s has %d partitions; new count %d must be larger and at most %d",
			ErrInvalidPartitions, name, t.Partitions, total, MaxPartitions)
	}
	if len(nodes) == 0 {
		return 0, ErrNoLogNodes
	}
	old := t.Partitions
	t.Partitions = total
	// New partitions get the replica count partition 0 has now (a
	// reassignment may have changed it since the topic was created), as
	// Kafka's CreatePartitions does; the record is brought up to date.
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.k.topic(name)), "=", rev)}
	if t.StorageMode.KeepsLocalData() {
		p0, err := s.cli.Get(ctx, s.k.partition(name, 0))
		if err != nil {
			return 0, err
		}
		var first Partition
		if len(p0.Kvs) == 1 && json.Unmarshal(p0.Kvs[0].Value, &first) == nil {
			if rf := first.ReplicationFactor(); rf > 0 {
				t.ReplicationFactor = rf
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.k.partition(name, 0)), "=", p0.Kvs[0].ModRevision))
		}
	}
	placed, err := s.placeOps(t, old, total, nodes)
	if err != nil {
		return 0, err
	}
	ops := append([]clientv3.Op{clientv3.OpPut(s.k.topic(name), mustJSON(t))}, placed...)
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, ErrConflict
	}
	return resp.Header.Revision, nil
}

// GetTopic reads one topic directly from etcd.
func (s *Store) GetTopic(ctx context.Context, name string) (*Topic, error) {
	t, _, err := s.getTopic(ctx, name)
	return t, err
}

func (s *Store) getTopic(ctx context.Context, name string) (*Topic, int64, error) {
	resp, err := s.cli.Get(ctx, s.k.topic(name))
	if err != nil {
		return nil, 0, err
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("%w: %s", ErrTopicNotFound, name)
	}
	var t Topic
	if err := json.Unmarshal(resp.Kvs[0].Value, &t); err != nil {
		return nil, 0, fmt.Errorf("decode topic %s: %w", name, err)
	}
	return &t, resp.Kvs[0].ModRevision, nil
}

// NextProducerID hands out a cluster-wide unique producer id (a
// compare-and-swap on one counter key, so two gateways never get the same).
//
// A missing or undecodable counter (deleted or overwritten by hand) must
// not restart the ids at 0: log-service nodes still hold the state of the
// producers that had them, and a new producer reusing an id would have its
// first batches taken for duplicates. Every id ever handed out was written
// by its own transaction, so id n was written at an etcd revision above n:
// the current revision is above every id handed out, and counting resumes
// from it. (A fresh cluster starts from its small current revision.)
func (s *Store) NextProducerID(ctx context.Context) (int64, error) {
	key := s.k.producerIDCounter()
	for attempt := 0; attempt < 32; attempt++ {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return 0, err
		}
		cur := resp.Header.Revision
		cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		if len(resp.Kvs) > 0 {
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)
			if v, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64); err == nil && v >= 0 {
				cur = v
			}
		}
		next := cur + 1
		tx, err := s.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, strconv.FormatInt(next, 10))).Commit()
		if err != nil {
			return 0, err
		}
		if tx.Succeeded {
			return next, nil
		}
	}
	return 0, ErrConflict
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("meta: encoding %T: %v", v, err)) // only our own plain structs are encoded
	}
	return string(b)
}
