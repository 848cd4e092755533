package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Topic creation shared by CreateTopics and Metadata's auto-creation.

// topicConfig is one requested config (Kafka allows a null value on the
// wire; Streamline refuses it).
type topicConfig struct {
	name  string
	value *string
}

// buildTopic validates a topic request the way Kafka orders its checks
// (name, partitions, replication factor, configs) and returns the
// definition to store. partitions -1 means the server default.
func (h *Handlers) buildTopic(name string, partitions int32, rf int16, configs []topicConfig) (*meta.Topic, *kerr.Error, string) {
	if ke, msg := topicNameError(name); ke != nil {
		return nil, ke, msg
	}
	if partitions == -1 {
		partitions = h.cfg.DefaultPartitions
	}
	if partitions < 1 || partitions > meta.MaxPartitions {
		return nil, kerr.InvalidPartitions, fmt.Sprintf("number of partitions %d must be between 1 and %d", partitions, meta.MaxPartitions)
	}
	if rf != -1 && rf != 1 {
		return nil, kerr.InvalidReplicationFactor, fmt.Sprintf(
			"replication factor %d is not supported: log-service nodes do not replicate yet; use 1 or -1 (the default)", rf)
	}
	t := &meta.Topic{Name: name, Partitions: partitions, ReplicationFactor: 1, StorageMode: h.cfg.DefaultStorageMode}
	seen := map[string]bool{}
	for _, c := range configs {
		switch {
		case seen[c.name]:
			return nil, kerr.InvalidConfig, fmt.Sprintf("config %s is given more than once", c.name)
		case c.value == nil:
			return nil, kerr.InvalidConfig, fmt.Sprintf("config %s has a null value", c.name)
		}
		seen[c.name] = true
		if err := meta.ValidateTopicConfig(c.name, *c.value); err != nil {
			return nil, kerr.InvalidConfig, err.Error()
		}
		if c.name == meta.ConfigStorageMode {
			t.StorageMode = meta.StorageMode(*c.value) // validated just above
			continue
		}
		if t.Configs == nil {
			t.Configs = map[string]string{}
		}
		t.Configs[c.name] = *c.value
	}
	if err := t.StorageMode.Supported(); err != nil {
		return nil, kerr.InvalidConfig, err.Error()
	}
	if t.StorageMode == meta.StorageDiskless {
		if err := h.cache.ObjectStoreReady(); err != nil {
			return nil, kerr.InvalidConfig, fmt.Sprintf("storage.mode=diskless needs an object store: %v", err)
		}
	}
	return t, nil, ""
}

// collisionError is INVALID_TOPIC_EXCEPTION when name collides with an
// existing topic in the cache (Kafka's '.'/'_' rule); the store enforces
// the rule again in the creating transaction.
func (h *Handlers) collisionError(name string) (*kerr.Error, string) {
	if other, ok := h.cache.CollidingTopic(name); ok {
		return kerr.InvalidTopicException, meta.CollisionError(name, other).Error()
	}
	return nil, ""
}

// createTopic stores t, placing partitions on the live log-service nodes,
// and returns the etcd revision to wait for.
func (h *Handlers) createTopic(ctx context.Context, t *meta.Topic) (int64, *kerr.Error, string) {
	rev, err := h.store.CreateTopic(ctx, t, h.cache.LogNodesByLoad())
	switch {
	case err == nil:
		return rev, nil, ""
	case errors.Is(err, meta.ErrTopicExists):
		return 0, kerr.TopicAlreadyExists, fmt.Sprintf("topic %s already exists", t.Name)
	case errors.Is(err, meta.ErrNoLogNodes):
		// Kafka's answer when there are fewer brokers than replicas.
		return 0, kerr.InvalidReplicationFactor, err.Error()
	case errors.Is(err, meta.ErrInvalidTopicName), errors.Is(err, meta.ErrTopicCollision):
		return 0, kerr.InvalidTopicException, err.Error()
	case errors.Is(err, meta.ErrInvalidPartitions):
		return 0, kerr.InvalidPartitions, err.Error()
	}
	return 0, metaError(err), err.Error()
}

// metaError maps an unexpected etcd failure: retriable REQUEST_TIMED_OUT
// when etcd was slow or unreachable (admin clients retry), otherwise
// UNKNOWN_SERVER_ERROR.
func metaError(err error) *kerr.Error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, meta.ErrConflict) {
		return kerr.RequestTimedOut
	}
	return kerr.UnknownServerError
}

// metadataWait bounds how long an admin request waits for the cache to
// reflect its own write when the request has no usable timeout.
const metadataWait = 10 * time.Second

// waitRevision waits until this gateway's cache reflects rev, so that the
// client's next Metadata on this gateway sees its change. timeoutMs <= 0
// uses metadataWait.
func (h *Handlers) waitRevision(ctx context.Context, rev int64, timeoutMs int32) error {
	d := metadataWait
	if timeoutMs > 0 {
		d = time.Duration(timeoutMs) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return h.cache.WaitRevision(ctx, rev)
}
