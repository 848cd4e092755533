package ops

import (
	"context"
	"errors"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ConfigEntry is one requested topic config. Kafka allows a null value on
// the wire; it is refused (INVALID_CONFIG).
type ConfigEntry struct {
	Name  string
	Value *string
}

// TopicSpec is a topic to create.
type TopicSpec struct {
	Name string
	// Partitions -1 is the gateway default.
	Partitions int32
	// ReplicationFactor -1 is the default (Config.DefaultReplicationFactor).
	ReplicationFactor int16
	// Configs may set storage.mode; the others are stored on the topic.
	Configs []ConfigEntry
}

// buildTopic validates spec the way Kafka orders its checks (name,
// partitions, replication factor, configs) and then the storage mode's
// needs, and returns the definition to store.
func (o *Ops) buildTopic(spec TopicSpec) (*meta.Topic, *Error) {
	if e := ValidateTopicName(spec.Name); e != nil {
		return nil, e
	}
	partitions := spec.Partitions
	if partitions == -1 {
		partitions = o.cfg.DefaultPartitions
	}
	if partitions < 1 || partitions > meta.MaxPartitions {
		return nil, fail(kerr.InvalidPartitions, "partitions", "number of partitions %d must be between 1 and %d", partitions, meta.MaxPartitions)
	}
	if rf := spec.ReplicationFactor; rf != -1 && rf < 1 {
		return nil, fail(kerr.InvalidReplicationFactor, "replication_factor",
			"replication factor %d must be at least 1, or -1 for the default", rf)
	}
	t := &meta.Topic{Name: spec.Name, Partitions: partitions, ReplicationFactor: spec.ReplicationFactor, StorageMode: o.cfg.DefaultStorageMode}
	seen := map[string]bool{}
	for _, c := range spec.Configs {
		switch {
		case seen[c.Name]:
			return nil, fail(kerr.InvalidConfig, "configs", "config %s is given more than once", c.Name)
		case c.Value == nil:
			return nil, fail(kerr.InvalidConfig, "configs", "config %s has a null value", c.Name)
		}
		seen[c.Name] = true
		if err := meta.ValidateTopicConfig(c.Name, *c.Value); err != nil {
			return nil, fail(kerr.InvalidConfig, "configs", "%v", err)
		}
		if c.Name == meta.ConfigStorageMode {
			t.StorageMode = meta.StorageMode(*c.Value) // validated just above
			continue
		}
		if t.Configs == nil {
			t.Configs = map[string]string{}
		}
		t.Configs[c.Name] = *c.Value
	}
	if err := meta.ValidateTopicConfigs(t, o.cfg.TopicDefaults); err != nil {
		return nil, fail(kerr.InvalidConfig, "configs", "%v", err)
	}
	if e := o.storageModeUsable(t.StorageMode); e != nil {
		return nil, e
	}
	if e := o.resolveReplicationFactor(t); e != nil {
		return nil, e
	}
	return t, nil
}

// defaultReplicationFactor caps the default factor when the gateway sets
// none (Kafka's recommended production factor).
const defaultReplicationFactor = 3

// resolveReplicationFactor settles t.ReplicationFactor (-1: the default)
// against the live log-service nodes. A topic whose data is local (local,
// hybrid: its WAL and recent segments are on the replicas' disks) needs
// that many distinct nodes (INVALID_REPLICATION_FACTOR otherwise, as
// Kafka answers with too few brokers). A diskless topic has one logical
// copy in object storage, which is its durability: it accepts any factor
// a tool asks for (Kafka Streams and connectors ask for 3) and stores and
// reports 1.
func (o *Ops) resolveReplicationFactor(t *meta.Topic) *Error {
	live := len(o.cache.LogNodes())
	if live == 0 {
		return fail(kerr.InvalidReplicationFactor, "", "%v", meta.ErrNoLogNodes)
	}
	if !t.StorageMode.KeepsLocalData() {
		t.ReplicationFactor = 1
		return nil
	}
	if t.ReplicationFactor == -1 {
		t.ReplicationFactor = o.cfg.DefaultReplicationFactor
		if t.ReplicationFactor <= 0 {
			t.ReplicationFactor = int16(min(defaultReplicationFactor, live))
		}
	}
	if int(t.ReplicationFactor) > live {
		return fail(kerr.InvalidReplicationFactor, "replication_factor",
			"replication factor %d is larger than the %d live log-service nodes", t.ReplicationFactor, live)
	}
	return nil
}

// storageModeUsable is every rule about whether a topic may get mode (at
// creation, or by a change of an existing topic's mode): this build must
// serve it, and hybrid and diskless need an object store that the
// cluster's uploaders and log-service nodes have (INVALID_CONFIG
// "storage.mode=hybrid needs an object store: <what is missing>").
func (o *Ops) storageModeUsable(mode meta.StorageMode) *Error {
	if err := mode.Supported(); err != nil {
		return fail(kerr.InvalidConfig, "storage_mode", "%v", err)
	}
	if mode.NeedsObjectStore() {
		if err := o.cache.ObjectStoreReady(); err != nil {
			return fail(kerr.InvalidConfig, "storage_mode", "storage.mode=%s needs an object store: %v", mode, err)
		}
	}
	return nil
}

// CreateTopic checks spec and, unless validateOnly, stores the topic,
// placing its partitions on the live log-service nodes. It returns the
// topic and the etcd revision to wait for (0 when nothing was written).
//
// An existing topic is TOPIC_ALREADY_EXISTS; a name colliding with an
// existing topic's ('.' and '_' are the same: col.x and col_x) is
// INVALID_TOPIC_EXCEPTION with Kafka's message (the creating transaction
// enforces it against concurrent creators); no live log-service node is
// INVALID_REPLICATION_FACTOR (Kafka's answer when there are fewer brokers
// than replicas). validateOnly runs every check and writes nothing.
func (o *Ops) CreateTopic(ctx context.Context, spec TopicSpec, validateOnly bool) (*meta.Topic, int64, *Error) {
	t, e := o.buildTopic(spec)
	if e != nil {
		return nil, 0, e
	}
	if _, exists := o.cache.Topic(t.Name); exists {
		return nil, 0, fail(kerr.TopicAlreadyExists, "name", "topic %s already exists", t.Name)
	}
	if other, ok := o.cache.CollidingTopic(t.Name); ok {
		return nil, 0, fail(kerr.InvalidTopicException, "name", "%v", meta.CollisionError(t.Name, other))
	}
	if validateOnly {
		return t, 0, nil
	}
	rev, err := o.store.CreateTopic(ctx, t, o.cache.LogNodesByLoad())
	switch {
	case err == nil:
		o.log.Info("created topic", "topic", t.Name, "partitions", t.Partitions, "storage_mode", t.StorageMode)
		return t, rev, nil
	case errors.Is(err, meta.ErrTopicExists):
		return nil, 0, fail(kerr.TopicAlreadyExists, "name", "topic %s already exists", t.Name)
	case errors.Is(err, meta.ErrNoLogNodes), errors.Is(err, meta.ErrReplicationFactor):
		return nil, 0, fail(kerr.InvalidReplicationFactor, "replication_factor", "%v", err)
	case errors.Is(err, meta.ErrInvalidTopicName), errors.Is(err, meta.ErrTopicCollision):
		return nil, 0, fail(kerr.InvalidTopicException, "name", "%v", err)
	case errors.Is(err, meta.ErrInvalidPartitions):
		return nil, 0, fail(kerr.InvalidPartitions, "partitions", "%v", err)
	}
	return nil, 0, metaError("", err)
}

// DeleteTopic deletes a topic and all its partition assignments in one
// etcd transaction (log-service nodes drop the data when they see it) and
// returns the revision to wait for. An unknown topic is
// UNKNOWN_TOPIC_OR_PARTITION.
func (o *Ops) DeleteTopic(ctx context.Context, name string) (int64, *Error) {
	if e := ValidateTopicName(name); e != nil {
		return 0, e
	}
	rev, err := o.store.DeleteTopic(ctx, name)
	switch {
	case errors.Is(err, meta.ErrTopicNotFound):
		return 0, fail(kerr.UnknownTopicOrPartition, "name", "topic %s does not exist", name)
	case err != nil:
		return 0, metaError("", err)
	}
	o.log.Info("deleted topic", "topic", name)
	return rev, nil
}

// addPartitionsAttempts bounds retries of AddPartitions after ErrConflict
// (another admin changed the topic between our read and our write).
const addPartitionsAttempts = 5

// AddPartitions grows a topic to count partitions, placing the new ones on
// live log-service nodes, and returns the revision to wait for. count must
// exceed the current count and be at most meta.MaxPartitions
// (INVALID_PARTITIONS); validateOnly checks without writing.
func (o *Ops) AddPartitions(ctx context.Context, name string, count int32, validateOnly bool) (int64, *Error) {
	if e := ValidateTopicName(name); e != nil {
		return 0, e
	}
	t, ok := o.cache.Topic(name)
	if !ok {
		return 0, fail(kerr.UnknownTopicOrPartition, "name", "topic %s does not exist", name)
	}
	if count <= t.Partitions || count > meta.MaxPartitions {
		return 0, fail(kerr.InvalidPartitions, "partitions", "topic %s has %d partitions; the new count %d must be larger and at most %d",
			name, t.Partitions, count, meta.MaxPartitions)
	}
	if live := len(o.cache.LogNodes()); live == 0 {
		return 0, fail(kerr.InvalidReplicationFactor, "", "%v", meta.ErrNoLogNodes)
	} else if t.StorageMode.KeepsLocalData() && int(t.ReplicationFactor) > live {
		return 0, fail(kerr.InvalidReplicationFactor, "replication_factor",
			"topic %s has replication factor %d; only %d log-service nodes are live to place new partitions on", name, t.ReplicationFactor, live)
	}
	if validateOnly {
		return 0, nil
	}
	var err error
	for range addPartitionsAttempts {
		var rev int64
		rev, err = o.store.AddPartitions(ctx, name, count, o.cache.LogNodesByLoad())
		if errors.Is(err, meta.ErrConflict) {
			continue
		}
		switch {
		case err == nil:
			o.log.Info("added partitions", "topic", name, "partitions", count)
			return rev, nil
		case errors.Is(err, meta.ErrTopicNotFound):
			return 0, fail(kerr.UnknownTopicOrPartition, "name", "%v", err)
		case errors.Is(err, meta.ErrInvalidPartitions):
			return 0, fail(kerr.InvalidPartitions, "partitions", "%v", err)
		case errors.Is(err, meta.ErrNoLogNodes), errors.Is(err, meta.ErrReplicationFactor):
			return 0, fail(kerr.InvalidReplicationFactor, "replication_factor", "%v", err)
		}
		break
	}
	return 0, metaError("", err)
}
