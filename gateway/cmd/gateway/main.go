// Command gateway runs one Streamline gateway: a Kafka-protocol endpoint
// that answers metadata from etcd and forwards data to log-service nodes.
//
// Every flag can also be set through an environment variable named
// STREAMLINE_ plus the flag name in upper case with dashes as underscores
// (--etcd-endpoints → STREAMLINE_ETCD_ENDPOINTS); a flag on the command
// line wins over the environment.
package main

import (
	"fmt"
	"math"
	"net"
	"os"
	"time"

	"github.com/streamline-dev/streamline/gateway"
	"github.com/streamline-dev/streamline/gateway/groups"
	"github.com/streamline-dev/streamline/gateway/handlers"
	"github.com/streamline-dev/streamline/gateway/txns"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/svcmain"
)

// options are the parsed flags.
type options struct {
	fs             *svcmain.Flags
	etcdPrefix     *string
	nodeID         *int
	id             *string
	kafkaAddr      *string
	advertisedAddr *string
	rack           *string
	autoCreate     *bool
	partitions     *int
	replication    *int
	storageMode    *string
	clusterID      *string
	sessionTTL     *time.Duration
	adminAddr      *string
	advertAdmin    *string
	groupMinST     *time.Duration
	groupMaxST     *time.Duration
	txnMaxTimeout  *time.Duration
	txnIDExpiry    *time.Duration
	txnVersion     *int
	httpAddr       *string
}

func main() { os.Exit(run(os.Args[1:])) }

func newOptions() *options {
	fs := svcmain.NewFlags("gateway", "gateway: a Streamline Kafka-protocol gateway", true)
	return &options{
		httpAddr:       fs.HTTPAddr(""),
		fs:             fs,
		etcdPrefix:     fs.String("etcd-prefix", meta.DefaultPrefix, "etcd key prefix of the cluster's metadata"),
		nodeID:         fs.Int("node-id", 0, "Kafka broker id of this gateway (unique among gateways)"),
		id:             fs.String("id", "", "gateway id in etcd (default gateway-<node-id>)"),
		kafkaAddr:      fs.String("kafka-addr", gateway.DefaultListenAddr, "Kafka listener address"),
		advertisedAddr: fs.String("advertised-kafka-addr", "", "host:port advertised to clients (default: listen host or hostname, bound port)"),
		rack:           fs.String("rack", "", "rack advertised to clients"),
		autoCreate:     fs.Bool("auto-create-topics", false, "create missing topics on Metadata requests"),
		partitions:     fs.Int("default-partitions", 1, "partitions of topics created without a count"),
		replication:    fs.Int("default-replication-factor", 0, "replication factor of local topics created with -1 or auto-created (0: min(3, live log-service nodes))"),
		storageMode:    fs.String("default-storage-mode", string(meta.StorageLocal), "storage mode of topics that do not set storage.mode (local|hybrid|diskless; hybrid and diskless topics need an object store in the cluster)"),
		clusterID:      fs.String("cluster-id", gateway.DefaultClusterID, "cluster id reported to clients (same on every gateway)"),
		sessionTTL:     fs.Duration("session-ttl", gateway.DefaultSessionTTL*time.Second, "etcd lease TTL of this gateway's registration: how long a crashed gateway stays listed to clients"),
		adminAddr:      fs.String("admin-addr", "127.0.0.1:9095", "admin gRPC API listen address (streamline.admin.v1 with reflection and health); empty: none"),
		advertAdmin:    fs.String("advertised-admin-addr", "", "host:port other gateways reach this gateway's admin API at (default: admin listen host or hostname, bound port)"),
		groupMinST:     fs.Duration("group-min-session-timeout", groups.DefaultMinSessionTimeout, "smallest session.timeout.ms a consumer group member may ask for"),
		groupMaxST:     fs.Duration("group-max-session-timeout", groups.DefaultMaxSessionTimeout, "largest session.timeout.ms a consumer group member may ask for"),
		txnMaxTimeout:  fs.Duration("transaction-max-timeout", txns.DefaultMaxTimeout, "largest transaction.timeout.ms a transactional producer may ask for (Kafka's transaction.max.timeout.ms)"),
		txnIDExpiry:    fs.Duration("transactional-id-expiration", txns.DefaultIDExpiration, "forget a transactional id with no transaction open and no state change for this long (Kafka's transactional.id.expiration.ms): its producer then gets INVALID_PRODUCER_ID_MAPPING and its next InitProducerId a new producer id"),
		txnVersion:     fs.Int("transaction-version", int(handlers.MaxTransactionVersion), "transaction.version feature level advertised to clients: 2 (KIP-890 part 2: clients that know it add partitions implicitly and bump the epoch per transaction) or 1 (the classic protocol for every client); the same on every gateway"),
	}
}

// validate checks values the flag package cannot; errors name the flag.
func (o *options) validate() error {
	if *o.nodeID < 0 || *o.nodeID > 1<<31-1 {
		return fmt.Errorf("invalid value %d for flag --node-id: must be 0..2147483647", *o.nodeID)
	}
	if err := svcmain.CheckHTTPAddr(*o.httpAddr); err != nil {
		return err
	}
	if *o.sessionTTL < time.Second {
		return fmt.Errorf("invalid value %v for flag --session-ttl: must be at least 1s", *o.sessionTTL)
	}
	if *o.adminAddr != "" {
		if _, _, err := net.SplitHostPort(*o.adminAddr); err != nil {
			return fmt.Errorf("invalid value %q for flag --admin-addr: %v", *o.adminAddr, err)
		}
	}
	if *o.advertAdmin != "" {
		if _, _, err := net.SplitHostPort(*o.advertAdmin); err != nil {
			return fmt.Errorf("invalid value %q for flag --advertised-admin-addr: %v", *o.advertAdmin, err)
		}
	}
	if *o.groupMinST < time.Millisecond {
		return fmt.Errorf("invalid value %v for flag --group-min-session-timeout: must be at least 1ms", *o.groupMinST)
	}
	if *o.groupMaxST < *o.groupMinST {
		return fmt.Errorf("invalid value %v for flag --group-max-session-timeout: below --group-min-session-timeout %v", *o.groupMaxST, *o.groupMinST)
	}
	if *o.txnMaxTimeout < time.Millisecond || *o.txnMaxTimeout > math.MaxInt32*time.Millisecond {
		return fmt.Errorf("invalid value %v for flag --transaction-max-timeout: must be between 1ms and %v", *o.txnMaxTimeout, math.MaxInt32*time.Millisecond)
	}
	if *o.txnIDExpiry < time.Millisecond {
		return fmt.Errorf("invalid value %v for flag --transactional-id-expiration: must be at least 1ms", *o.txnIDExpiry)
	}
	if *o.txnVersion < 1 || *o.txnVersion > int(handlers.MaxTransactionVersion) {
		return fmt.Errorf("invalid value %d for flag --transaction-version: must be 1 or %d", *o.txnVersion, handlers.MaxTransactionVersion)
	}
	if *o.partitions < 1 || *o.partitions > meta.MaxPartitions {
		return fmt.Errorf("invalid value %d for flag --default-partitions: must be 1..%d", *o.partitions, meta.MaxPartitions)
	}
	if *o.replication < 0 || *o.replication > 1<<15-1 {
		return fmt.Errorf("invalid value %d for flag --default-replication-factor: must be 0 (automatic) or a positive factor", *o.replication)
	}
	mode, err := meta.ParseStorageMode(*o.storageMode)
	if err == nil {
		err = mode.Supported()
	}
	if err != nil {
		return fmt.Errorf("invalid value for flag --default-storage-mode: %v", err)
	}
	return nil
}

func run(args []string) int {
	o := newOptions()
	if code, ok := o.fs.Parse(args); !ok {
		return code
	}
	if err := o.validate(); err != nil {
		o.fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	log, err := o.fs.Logger()
	if err != nil {
		o.fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	tel, err := o.fs.Telemetry("gateway", log)
	if err != nil {
		o.fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	defer tel.Close()
	cli, err := o.fs.Etcd()
	if err != nil {
		o.fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	defer cli.Close()
	g, err := gateway.New(gateway.Config{
		ID: *o.id, NodeID: int32(*o.nodeID), ListenAddr: *o.kafkaAddr, AdvertisedAddr: *o.advertisedAddr,
		AdminAddr: *o.adminAddr, AdvertisedAdminAddr: *o.advertAdmin, Rack: *o.rack, ClusterID: *o.clusterID, AutoCreateTopics: *o.autoCreate,
		DefaultPartitions: int32(*o.partitions), DefaultReplicationFactor: int16(*o.replication), DefaultStorageMode: meta.StorageMode(*o.storageMode),
		Etcd: cli, EtcdPrefix: *o.etcdPrefix, SessionTTL: int(o.sessionTTL.Seconds()),
		GroupMinSessionTimeout: *o.groupMinST, GroupMaxSessionTimeout: *o.groupMaxST,
		TransactionMaxTimeout: *o.txnMaxTimeout, TransactionVersion: int16(*o.txnVersion), Logger: log,
		TransactionalIDExpiration: *o.txnIDExpiry,
		Failpoint:                 svcmain.Failpoint(os.Getenv("STREAMLINE_FAILPOINT")),
		TracerProvider:            tel.TracerProvider, Metrics: tel.Registry,
	})
	if err != nil {
		o.fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	return svcmain.Run(log, g, tel.SetReady)
}
