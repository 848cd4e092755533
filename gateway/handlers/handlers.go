// Package handlers answers Kafka requests for a gateway, one file per API
// key in the style of franz-go's kfake (NN_<api>.go). Each file opens with
// the versions and behaviour it supports and registers its key and version
// range in init; ApiVersions is built from that registry, never hand-listed.
//
// Metadata-only APIs (Metadata, CreateTopics, DeleteTopics, CreatePartitions,
// DescribeConfigs, AlterConfigs, IncrementalAlterConfigs, DescribeCluster,
// idempotent InitProducerId) are answered from the etcd-watched meta.Cache and
// written through meta.Store. Data APIs (Produce, Fetch, ListOffsets,
// OffsetForLeaderEpoch, DeleteRecords, DescribeLogDirs) are grouped by the
// log-service node leading
// each partition and forwarded over gRPC, one call per node, in parallel.
// Kafka errors are per-partition data; a failed gRPC call becomes a
// retriable per-partition error so clients refresh metadata and retry.
//
// Group APIs (FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups,
// DeleteGroups, OffsetDelete) are thin: package groups coordinates the
// groups of the shards this gateway holds and keeps their state in etcd.
// Transaction APIs (transactional InitProducerId, AddPartitionsToTxn,
// AddOffsetsToTxn, EndTxn, DescribeTransactions, ListTransactions) are as
// thin over package txns, which coordinates the transactional ids of the
// same shards; TxnOffsetCommit goes to package groups (the group's
// coordinator).
package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/streamline-dev/streamline/gateway/groups"
	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/ops"
	"github.com/streamline-dev/streamline/gateway/txns"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamline-dev/streamline/gateway/routing"
)

// LogClients hands out LogService clients and produce streams by node
// address (routing.Pool implements it).
type LogClients interface {
	Client(addr string) (logv1.LogServiceClient, error)
	Producer(addr string) (*routing.ProduceStream, error)
}

// Config is what the handlers need from the gateway.
type Config struct {
	Store *meta.Store
	Cache *meta.Cache
	Logs  LogClients
	// Groups coordinates the consumer groups of this gateway's shards.
	Groups *groups.Coordinator
	// Txns coordinates the transactional ids of the same shards.
	Txns *txns.Coordinator
	// Ops runs topic, config, partition and offset operations with their
	// rules (shared with the admin API).
	Ops *ops.Ops
	// Self is this gateway as registered in etcd; Metadata always lists it,
	// even before the cache has seen its own registration.
	Self               meta.Gateway
	ClusterID          string
	AutoCreateTopics   bool
	DefaultPartitions  int32
	DefaultStorageMode meta.StorageMode
	TopicDefaults      meta.Defaults
	MaxRequestBytes    int32
	// TransactionVersion is the transaction.version feature level
	// advertised (1 or 2; 0: MaxTransactionVersion). See ApiVersions.
	TransactionVersion int16
	Logger             *slog.Logger
	// Tracer, if set, gives every Kafka request a server span
	// (kafka.<Api>), the parent of the gRPC calls it makes; nil: no spans.
	Tracer trace.Tracer
	// Metrics records request and data-path series; nil: NewMetrics(nil).
	Metrics *Metrics
}

// Handlers implements kafkaserver.Handler.
type Handlers struct {
	cfg   Config
	store *meta.Store
	cache *meta.Cache
	ops   *ops.Ops
	log   *slog.Logger
}

var _ kafkaserver.Handler = (*Handlers)(nil)

// New returns the handlers for cfg.
func New(cfg Config) (*Handlers, error) {
	if cfg.Store == nil || cfg.Cache == nil || cfg.Logs == nil || cfg.Groups == nil || cfg.Txns == nil || cfg.Ops == nil {
		return nil, errors.New("handlers: Store, Cache, Logs, Groups, Txns and Ops are required")
	}
	if cfg.DefaultPartitions <= 0 {
		cfg.DefaultPartitions = 1
	}
	if cfg.DefaultStorageMode == "" {
		cfg.DefaultStorageMode = meta.StorageLocal
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = kafkaserver.DefaultMaxRequestBytes
	}
	switch cfg.TransactionVersion {
	case 0:
		cfg.TransactionVersion = MaxTransactionVersion
	case 1, 2:
	default:
		return nil, fmt.Errorf("handlers: transaction version %d: must be 1 or 2", cfg.TransactionVersion)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Handlers{cfg: cfg, store: cfg.Store, cache: cfg.Cache, ops: cfg.Ops, log: cfg.Logger}, nil
}

type handlerFunc func(h *Handlers, ctx context.Context, req *kafkaserver.Request) (kmsg.Response, error)

type entry struct {
	min, max int16
	ordered  bool
	fn       handlerFunc
	span     string // the request's span name: kafka.<Api>
}

// registry is filled by the init functions of the NN_<api>.go files and
// read-only afterwards.
var registry = map[int16]entry{}

// register records that key is served at versions [min, max]. ordered
// requests are handled one at a time per connection (see kafkaserver).
func register(key, min, max int16, ordered bool, fn handlerFunc) {
	probe := kmsg.RequestForKey(key)
	switch {
	case probe == nil:
		panic(fmt.Sprintf("handlers: unknown api key %d", key))
	case min < 0 || max < min || max > probe.MaxVersion():
		panic(fmt.Sprintf("handlers: bad version range %d-%d for %s (kmsg knows up to %d)", min, max, kmsg.NameForKey(key), probe.MaxVersion()))
	}
	if _, dup := registry[key]; dup {
		panic(fmt.Sprintf("handlers: %s registered twice", kmsg.NameForKey(key)))
	}
	registry[key] = entry{min: min, max: max, ordered: ordered, fn: fn, span: "kafka." + kmsg.NameForKey(key)}
}

// SupportedVersions lists every served key and its version range, sorted by
// key: exactly what ApiVersions advertises.
func SupportedVersions() []kmsg.ApiVersionsResponseApiKey {
	out := make([]kmsg.ApiVersionsResponseApiKey, 0, len(registry))
	for key, e := range registry {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = key, e.min, e.max
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ApiKey < out[j].ApiKey })
	return out
}

// Versions implements kafkaserver.Handler.
func (h *Handlers) Versions(key int16) (min, max int16, ok bool) {
	e, ok := registry[key]
	return e.min, e.max, ok
}

// Ordered implements kafkaserver.Handler.
func (h *Handlers) Ordered(key int16) bool { return registry[key].ordered }

// Handle implements kafkaserver.Handler.
func (h *Handlers) Handle(ctx context.Context, req *kafkaserver.Request) (kmsg.Response, error) {
	e, ok := registry[req.Key]
	if !ok {
		return nil, fmt.Errorf("api key %d is not served", req.Key)
	}
	began := time.Now()
	var span trace.Span
	if h.cfg.Tracer != nil {
		clientID := ""
		if req.ClientID != nil {
			clientID = *req.ClientID
		}
		ctx, span = h.cfg.Tracer.Start(ctx, e.span, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			attribute.String("messaging.system", "kafka"), attribute.Int("kafka.api_key", int(req.Key)),
			attribute.Int("kafka.api_version", int(req.Version)), attribute.String("kafka.client_id", clientID),
			attribute.Int("kafka.correlation_id", int(req.CorrelationID)), attribute.String("client.address", req.RemoteAddr)))
	}
	resp, err := e.fn(h, ctx, req)
	h.cfg.Metrics.observeRequest(req.Key, began)
	if span != nil {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	return resp, err
}
