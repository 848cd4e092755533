// Package ops is the gateway's protocol-neutral operations layer: topics,
// topic configs, partitions, offsets, sizes and consumer groups, with every
// rule that governs them (names and their collisions, limits, config
// validation, storage modes and what each needs).
//
// Both front ends of a gateway call it: the Kafka handlers (package
// handlers), which turn requests into calls and answers into Kafka
// responses, and the admin gRPC API (package adminapi), which does the
// same for streamline.admin.v1. Neither goes through the other, so the
// admin API works wherever the gateway runs, whatever Kafka address it
// advertises, and the two can never disagree on a rule.
//
// Every failure is an *Error: the Kafka error that names it (both
// protocols map from that code), the request field it is about, and one
// sentence for a person that does not repeat the code.
//
// Metadata is read from the etcd-watched meta.Cache and written through
// meta.Store; data questions (offsets, sizes, DeleteRecords) go to the
// log-service node leading each partition, one gRPC call per node, in
// parallel.
package ops

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/streamline-dev/streamline/gateway/groups"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// LogClients hands out LogService clients by node address (routing.Pool
// implements it).
type LogClients interface {
	Client(addr string) (logv1.LogServiceClient, error)
}

// Config is what the operations need from the gateway.
type Config struct {
	Store *meta.Store
	Cache *meta.Cache
	Logs  LogClients
	// Groups coordinates the consumer groups of this gateway's shards;
	// nil: group operations answer COORDINATOR_NOT_AVAILABLE.
	Groups *groups.Coordinator
	// GatewayID is this gateway's registered id.
	GatewayID         string
	DefaultPartitions int32
	// DefaultReplicationFactor is the replication factor of topics created
	// with -1 (and auto-created ones); 0 means min(3, live log-service
	// nodes), Kafka's production default where the cluster allows it.
	DefaultReplicationFactor int16
	DefaultStorageMode       meta.StorageMode
	TopicDefaults            meta.Defaults
	Logger                   *slog.Logger
}

// Ops runs operations for one gateway. It is safe for concurrent use.
type Ops struct {
	cfg   Config
	store *meta.Store
	cache *meta.Cache
	log   *slog.Logger
}

// New returns the operations for cfg.
func New(cfg Config) (*Ops, error) {
	if cfg.Store == nil || cfg.Cache == nil || cfg.Logs == nil {
		return nil, errors.New("ops: Store, Cache and Logs are required")
	}
	if cfg.DefaultPartitions <= 0 {
		cfg.DefaultPartitions = 1
	}
	if cfg.DefaultStorageMode == "" {
		cfg.DefaultStorageMode = meta.StorageLocal
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Ops{cfg: cfg, store: cfg.Store, cache: cfg.Cache, log: cfg.Logger}, nil
}

// Error is a failed operation.
type Error struct {
	// Code is Kafka's error for the failure; the admin API maps it to a
	// gRPC status code.
	Code *kerr.Error
	// Field is the request field the failure is about ("name",
	// "partitions", "configs", "replication_factor", "group", ...), or "".
	Field string
	// Msg says what is wrong, for a person: it names the thing (topic,
	// config, partition) and never repeats Code's own text.
	Msg string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap makes errors.Is(err, kerr.X) work.
func (e *Error) Unwrap() error { return e.Code }

func fail(code *kerr.Error, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// KafkaCode is e's Kafka error code, 0 for nil.
func (e *Error) KafkaCode() int16 {
	if e == nil {
		return 0
	}
	return e.Code.Code
}

// Message is e's message, nil for nil (Kafka's nullable ErrorMessage).
func (e *Error) Message() *string {
	if e == nil {
		return nil
	}
	return &e.Msg
}

// metaError maps an unexpected etcd failure: retriable REQUEST_TIMED_OUT
// when etcd was slow or unreachable (clients retry), otherwise
// UNKNOWN_SERVER_ERROR.
func metaError(field string, err error) *Error {
	code := kerr.UnknownServerError
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, meta.ErrConflict) {
		code = kerr.RequestTimedOut
	}
	return &Error{Code: code, Field: field, Msg: "metadata store: " + err.Error()}
}

// ValidateTopicName checks a topic name against Kafka's rules
// (INVALID_TOPIC_EXCEPTION).
func ValidateTopicName(name string) *Error {
	if err := meta.ValidateTopicName(name); err != nil {
		return fail(kerr.InvalidTopicException, "name", "%v", err)
	}
	return nil
}

// metadataWait bounds how long an operation waits for the cache to reflect
// its own write when the caller gives no timeout.
const metadataWait = 10 * time.Second

// WaitRevision waits until this gateway's cache reflects rev, so that the
// caller's next read here sees its change. timeout <= 0 uses 10 s.
func (o *Ops) WaitRevision(ctx context.Context, rev int64, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = metadataWait
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return o.cache.WaitRevision(ctx, rev)
}

// Route finds the live log-service node leading a partition. An unknown
// partition is UNKNOWN_TOPIC_OR_PARTITION, a leader that is not live
// NOT_LEADER_OR_FOLLOWER (retriable: the client refreshes metadata, and by
// then leadership has usually moved).
func (o *Ops) Route(topic string, partition int32) (meta.Partition, meta.LogNode, *Error) {
	p, ok := o.cache.Partition(topic, partition)
	if !ok {
		return p, meta.LogNode{}, fail(kerr.UnknownTopicOrPartition, "partition", "topic %s has no partition %d", topic, partition)
	}
	n, ok := o.cache.LogNode(p.Leader)
	if !ok {
		return p, n, fail(kerr.NotLeaderForPartition, "partition", "log-service node %q leading %s/%d is not live", p.Leader, topic, partition)
	}
	return p, n, nil
}

// RPCError is the Kafka error for a whole failed LogService call. A
// deadline means the node may still finish the work: REQUEST_TIMED_OUT.
// Anything else (node unreachable, shutting down, closed connection) means
// the client should find the partition's new home: NOT_LEADER_OR_FOLLOWER.
// Both are retriable.
func RPCError(err error) *kerr.Error {
	if status.Code(err) == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded) {
		return kerr.RequestTimedOut
	}
	return kerr.NotLeaderForPartition
}

// LeaderGateway picks the gateway advertised as a partition's "leader"
// from the live gateways sorted by node id. Every gateway can serve every
// partition because it forwards to logsvc; spreading partitions over
// gateways spreads client connections and load. The choice depends only
// on the sorted gateway list, so all gateways agree.
func LeaderGateway(gws []meta.Gateway, topic string, partition int32) meta.Gateway {
	f := fnv.New32a()
	f.Write([]byte(topic))
	return gws[(f.Sum32()+uint32(partition))%uint32(len(gws))]
}

// ReplicaIDs is how a partition's replicas, ISR and offline replicas
// appear to Kafka clients: the broker ids of its log-service replicas
// (meta.Store.BrokerIDFor), preferred leader first. They are not in
// Metadata's broker list, whose brokers are the gateways clients connect
// to (every gateway serves every partition); Kafka clients keep replica
// ids they have no address for (the Java client makes them address-less
// nodes), and they are the ids AlterPartitionReassignments and
// ElectLeaders take. A replica that never registered since broker ids
// exist is -1.
func (o *Ops) ReplicaIDs(p meta.Partition) (replicas, isr, offline []int32) {
	replicas, isr, offline = []int32{}, []int32{}, []int32{}
	id := func(node string) int32 {
		if b, ok := o.cache.BrokerID(node); ok {
			return b
		}
		return -1
	}
	for _, node := range p.ReplicaSet() {
		replicas = append(replicas, id(node))
		if _, live := o.cache.LogNode(node); !live {
			offline = append(offline, id(node))
		}
	}
	for _, node := range p.InSyncReplicas() {
		isr = append(isr, id(node))
	}
	return replicas, isr, offline
}
