package gateway

import (
	"time"

	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"

	"github.com/streamline-dev/streamline/gateway/groups"
	"github.com/streamline-dev/streamline/gateway/handlers"
	"github.com/streamline-dev/streamline/gateway/txns"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/rpc"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// Defaults.
const (
	DefaultListenAddr = ":9092"
	DefaultClusterID  = "streamline"
	// DefaultSessionTTL is the etcd lease TTL, in seconds, of the
	// gateway's registration: how long a crashed gateway stays listed.
	DefaultSessionTTL = 10
)

// Config configures a gateway. The zero value plus Etcd is usable: every
// other field has a default (see withDefaults).
type Config struct {
	// ID names the gateway in etcd; default "gateway-<NodeID>".
	ID string
	// NodeID is the Kafka broker id clients see; unique among gateways.
	NodeID int32
	// ListenAddr is the Kafka listener (default ":9092").
	ListenAddr string
	// AdvertisedAddr is the host:port clients are told to connect to.
	// Default: the listen host, or this machine's hostname when listening
	// on all interfaces, with the bound port.
	AdvertisedAddr string
	Rack           string
	// ClusterID is reported in Metadata and DescribeCluster (default
	// "streamline"); it must be the same on every gateway of a cluster.
	ClusterID string
	// AutoCreateTopics lets Metadata requests create missing topics.
	AutoCreateTopics bool
	// DefaultPartitions is used for auto-created topics and CreateTopics
	// with -1 partitions (default 1).
	DefaultPartitions int32
	// DefaultReplicationFactor is the replication factor of topics created
	// with -1 or auto-created; 0 means min(3, live log-service nodes).
	DefaultReplicationFactor int16
	// DefaultStorageMode is the storage mode of topics that do not set
	// storage.mode, auto-created ones included (default local; hybrid and
	// diskless topics are created only while the cluster has an object
	// store: see meta.Cache.ObjectStoreReady). IncrementalAlterConfigs
	// DELETE of storage.mode sets it.
	DefaultStorageMode meta.StorageMode
	// TopicDefaults override built-in topic config defaults (Kafka names;
	// storage.mode is set through DefaultStorageMode instead).
	TopicDefaults meta.Defaults
	// MaxRequestBytes bounds one Kafka request (default 100 MiB, Kafka's
	// socket.request.max.bytes).
	MaxRequestBytes int32
	// LocalLogServices are log-service nodes in the gateway's process, by
	// the address they register (logsvc.Node.Addr): calls to them go
	// through the given connection (logsvc.Node.InProcess) instead of
	// gRPC over the network. The all-in-one sets it.
	LocalLogServices map[string]grpc.ClientConnInterface
	// Etcd is the metadata store's client (required; not closed by the gateway).
	Etcd *clientv3.Client
	// EtcdPrefix is the metadata key prefix (default meta.DefaultPrefix).
	EtcdPrefix string
	// SessionTTL is the registration lease TTL in seconds (default 10). It
	// also bounds how long the groups of a crashed gateway wait for a new
	// coordinator.
	SessionTTL int
	// GroupMinSessionTimeout and GroupMaxSessionTimeout bound a consumer's
	// session.timeout.ms (Kafka's group.min/max.session.timeout.ms;
	// defaults 6 s and 30 min).
	// AdminAddr is where the admin gRPC API (streamline.admin.v1, with
	// reflection and health) listens; "" serves none.
	AdminAddr string
	// AdvertisedAdminAddr is the host:port other gateways reach this
	// gateway's admin API at (it forwards group changes to the group's
	// coordinator). Default: as AdvertisedAddr's host rule, with the admin
	// listener's bound port.
	AdvertisedAdminAddr    string
	GroupMinSessionTimeout time.Duration
	GroupMaxSessionTimeout time.Duration
	// TransactionMaxTimeout bounds a transactional producer's
	// transaction.timeout.ms (Kafka's transaction.max.timeout.ms; default
	// 15 min).
	TransactionMaxTimeout time.Duration
	// TransactionVersion is the transaction.version feature level the
	// gateway advertises: 2 (the default) lets clients that know KIP-890
	// part 2 use it, 1 keeps every client on the classic protocol.
	TransactionVersion int16
	// TransactionAbortInterval is how often transactions past their
	// timeout are aborted (Kafka's
	// transaction.abort.timed.out.transaction.cleanup.interval.ms;
	// default 10 s).
	TransactionAbortInterval time.Duration
	// TransactionalIDExpiration is Kafka's
	// transactional.id.expiration.ms (default 7 days): an id with no
	// transaction open and no state change for this long is deleted.
	TransactionalIDExpiration time.Duration
	// Failpoint, if set, is called at each step of ending a transaction
	// (txns.Config.Failpoint; crash tests).
	Failpoint func(step string)
	Logger    *slog.Logger
	// TracerProvider traces Kafka requests (a span per request) and the
	// gRPC calls to log-service nodes; nil or no-op: no tracing, no cost.
	TracerProvider trace.TracerProvider
	// Metrics is where the gateway registers its series
	// (streamline_gateway_*, streamline_etcd_commit_duration_seconds);
	// nil: not exported.
	Metrics prometheus.Registerer
}

func (c Config) withDefaults() Config {
	if c.ID == "" {
		c.ID = fmt.Sprintf("gateway-%d", c.NodeID)
	}
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if c.ClusterID == "" {
		c.ClusterID = DefaultClusterID
	}
	if c.DefaultPartitions == 0 {
		c.DefaultPartitions = 1
	}
	if c.DefaultStorageMode == "" {
		c.DefaultStorageMode = meta.StorageLocal
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = kafkaserver.DefaultMaxRequestBytes
	}
	if c.EtcdPrefix == "" {
		c.EtcdPrefix = meta.DefaultPrefix
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.GroupMinSessionTimeout == 0 {
		c.GroupMinSessionTimeout = groups.DefaultMinSessionTimeout
	}
	if c.GroupMaxSessionTimeout == 0 {
		c.GroupMaxSessionTimeout = groups.DefaultMaxSessionTimeout
	}
	if c.TransactionVersion == 0 {
		c.TransactionVersion = handlers.MaxTransactionVersion
	}
	if c.TransactionMaxTimeout == 0 {
		c.TransactionMaxTimeout = txns.DefaultMaxTimeout
	}
	if c.TransactionAbortInterval == 0 {
		c.TransactionAbortInterval = txns.DefaultAbortInterval
	}
	if c.TransactionalIDExpiration == 0 {
		c.TransactionalIDExpiration = txns.DefaultIDExpiration
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first problem with c (after defaults are applied).
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Etcd == nil {
		return errors.New("gateway: Etcd client is required")
	}
	if c.NodeID < 0 {
		return fmt.Errorf("gateway: NodeID %d must not be negative", c.NodeID)
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		return fmt.Errorf("gateway: ListenAddr %q: %w", c.ListenAddr, err)
	}
	if c.AdvertisedAddr != "" {
		if _, _, err := splitHostPort(c.AdvertisedAddr); err != nil {
			return fmt.Errorf("gateway: AdvertisedAddr: %w", err)
		}
	}
	if c.DefaultPartitions < 1 || c.DefaultPartitions > meta.MaxPartitions {
		return fmt.Errorf("gateway: DefaultPartitions %d must be between 1 and %d", c.DefaultPartitions, meta.MaxPartitions)
	}
	if _, err := meta.ParseStorageMode(string(c.DefaultStorageMode)); err != nil {
		return fmt.Errorf("gateway: DefaultStorageMode: %w", err)
	}
	if err := c.DefaultStorageMode.Supported(); err != nil {
		return fmt.Errorf("gateway: DefaultStorageMode: %w", err)
	}
	for k, v := range c.TopicDefaults {
		if k == meta.ConfigStorageMode {
			return errors.New("gateway: set the default storage mode with DefaultStorageMode, not TopicDefaults")
		}
		if err := meta.ValidateTopicConfig(k, v); err != nil {
			return fmt.Errorf("gateway: TopicDefaults: %w", err)
		}
	}
	if err := meta.ValidateTopicConfigs(&meta.Topic{StorageMode: c.DefaultStorageMode}, c.TopicDefaults); err != nil {
		return fmt.Errorf("gateway: TopicDefaults: %w", err)
	}
	// A produce is forwarded to logsvc as one gRPC message.
	if c.MaxRequestBytes < 0 || c.MaxRequestBytes > rpc.MaxMessageBytes-(1<<20) {
		return fmt.Errorf("gateway: MaxRequestBytes %d must be positive and below the gRPC limit %d", c.MaxRequestBytes, rpc.MaxMessageBytes-(1<<20))
	}
	if c.SessionTTL < 1 {
		return fmt.Errorf("gateway: SessionTTL %d must be at least 1 second", c.SessionTTL)
	}
	if c.AdvertisedAdminAddr != "" {
		if _, _, err := splitHostPort(c.AdvertisedAdminAddr); err != nil {
			return fmt.Errorf("gateway: AdvertisedAdminAddr: %w", err)
		}
	}
	if c.AdminAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
			return fmt.Errorf("gateway: AdminAddr %q: %w", c.AdminAddr, err)
		}
	}
	if c.GroupMinSessionTimeout < 0 || c.GroupMaxSessionTimeout < c.GroupMinSessionTimeout {
		return fmt.Errorf("gateway: group session timeout bounds [%v, %v] are not a range", c.GroupMinSessionTimeout, c.GroupMaxSessionTimeout)
	}
	if c.TransactionMaxTimeout < time.Millisecond || c.TransactionMaxTimeout > math.MaxInt32*time.Millisecond {
		return fmt.Errorf("gateway: TransactionMaxTimeout %v must be between 1ms and %v", c.TransactionMaxTimeout, math.MaxInt32*time.Millisecond)
	}
	if c.TransactionVersion < 1 || c.TransactionVersion > handlers.MaxTransactionVersion {
		return fmt.Errorf("gateway: TransactionVersion %d must be 1 or %d", c.TransactionVersion, handlers.MaxTransactionVersion)
	}
	if c.TransactionalIDExpiration < time.Millisecond {
		return fmt.Errorf("gateway: TransactionalIDExpiration %v must be at least 1ms", c.TransactionalIDExpiration)
	}
	if c.TransactionAbortInterval < 0 {
		return fmt.Errorf("gateway: TransactionAbortInterval %v must not be negative", c.TransactionAbortInterval)
	}
	return nil
}

// splitHostPort parses host:port with a non-empty host and a valid port.
func splitHostPort(addr string) (string, int32, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || port == 0 {
		return "", 0, fmt.Errorf("%q: port must be 1-65535", addr)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q: host is required", addr)
	}
	return host, int32(port), nil
}
