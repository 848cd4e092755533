// Package logsvc is a log-service node: it leads the partitions etcd assigns
// to it, owns their WAL, segments and buffers, and serves the gRPC
// LogService that gateways forward produce, fetch and list-offsets to.
//
// A Node is embeddable: New + Start run it inside any process (the
// all-in-one binary, tests), and Close is idempotent.
package logsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/streamline-dev/streamline/logsvc/buffer"
	"github.com/streamline-dev/streamline/logsvc/controller"
	"github.com/streamline-dev/streamline/logsvc/logrpc"
	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/logsvc/storage/disklessstore"
	"github.com/streamline-dev/streamline/logsvc/storage/hybridstore"
	"github.com/streamline-dev/streamline/logsvc/storage/localstore"
	"github.com/streamline-dev/streamline/logsvc/wal"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/dirlock"
	"github.com/streamline-dev/streamline/shared/etcdhealth"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/rpc"
	"github.com/streamline-dev/streamline/shared/rpc/inproc"
	"github.com/streamline-dev/streamline/shared/telemetry"
)

// Config configures a Node.
type Config struct {
	// ID names the node in etcd. Empty: read from DataDir/node-id, or
	// generated and saved there on first start.
	ID      string
	DataDir string
	// ListenAddr is the gRPC address (host:port; port 0 picks one).
	ListenAddr string
	// AdvertisedAddr is what gateways dial; default: the bound address.
	AdvertisedAddr string
	// Rack is the node's rack (Kafka's broker.rack), registered in etcd for
	// rack-aware replica placement (meta.AssignReplicas).
	Rack string

	Etcd       *clientv3.Client
	EtcdPrefix string
	// EtcdHealth is the client etcd's health is polled and kept through
	// (member status, alarms, defragmentation: package etcdhealth);
	// default Etcd. The all-in-one's Etcd is an in-process client (etcd's
	// v3client), which names no members and whose Defragment panics in
	// etcd v3.7 (v3client builds its maintenance server without a health
	// notifier), so it passes a client dialed to the embedded etcd.
	EtcdHealth *clientv3.Client
	// SessionTTL is the etcd lease TTL of the node's registration: how long
	// after a crash other processes consider it gone.
	SessionTTL time.Duration

	// Objects is the object store diskless partitions are read from; nil
	// means this node has none and cannot lead diskless partitions.
	Objects disklessstore.Objects
	// Diskless sizes the buffer that batches diskless appends into one
	// object per flush (batch size and timeout, upload parallelism, memory).
	Diskless buffer.Config
	// ReadCacheBytes bounds the cache of object ranges for diskless reads.
	ReadCacheBytes int64
	// LocalUploaders are uploaders in the node's process, by the address
	// they register (uploader.Uploader.Addr): flushes go to them through
	// the given connection (uploader.Uploader.InProcess) instead of gRPC
	// over the network. The all-in-one sets it.
	LocalUploaders map[string]grpc.ClientConnInterface
	// Hybrid tunes hybrid partitions' uploads (the bound on local bytes
	// not in the object tier yet, how often leaders look for rolled
	// segments); Local, Tier, Uploaders and NodeID are filled in by the node.
	Hybrid hybridstore.Options

	WAL                wal.Options
	CheckpointInterval time.Duration
	// MinFreeBytes is the free space kept on the data filesystem: below
	// it, local appends are refused with KAFKA_STORAGE_ERROR until space
	// is freed (0: localstore.DefaultMinFreeBytes; negative: no check).
	MinFreeBytes           int64
	RetentionCheckInterval time.Duration
	// ReplicaLagTime is Kafka's replica.lag.time.max.ms: a follower that
	// has not caught up with the leader for this long leaves the ISR
	// (default 30s).
	ReplicaLagTime time.Duration
	// LeaderRebalanceInterval is how often the controller (when this node
	// is it) hands local partitions back to their preferred replicas once
	// those are in sync again (Kafka's auto leader rebalance; default 5m,
	// negative: never).
	LeaderRebalanceInterval time.Duration
	// RebuildThrottle bounds, in bytes per second, what this node fetches
	// as a follower for partitions whose ISR it is not in (rebuilding an
	// emptied disk, catching up after downtime, a new reassignment
	// target), so that does not starve the leaders' disks and network;
	// followers in sync are never throttled. 0: unlimited.
	RebuildThrottle int64
	TopicDefaults   meta.Defaults
	Logger          *slog.Logger
	// TracerProvider traces the LogService calls and a traced produce's
	// way through the diskless buffer and uploaders; nil or no-op: no
	// tracing, no cost.
	TracerProvider trace.TracerProvider
	// Metrics is where the node registers its series
	// (streamline_logsvc_*); nil: not exported.
	Metrics prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.ListenAddr == "" {
		c.ListenAddr = "127.0.0.1:0"
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = 10 * time.Second
	}
	switch {
	case c.LeaderRebalanceInterval == 0:
		c.LeaderRebalanceInterval = DefaultLeaderRebalanceInterval
	case c.LeaderRebalanceInterval < 0:
		c.LeaderRebalanceInterval = 0
	}
	if c.ReplicaLagTime == 0 {
		c.ReplicaLagTime = DefaultReplicaLagTime
	}
	if c.RetentionCheckInterval == 0 {
		c.RetentionCheckInterval = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// DefaultReplicaLagTime is Kafka's default replica.lag.time.max.ms.
const DefaultReplicaLagTime = 30 * time.Second

// DefaultLeaderRebalanceInterval is Kafka's default
// leader.imbalance.check.interval.seconds.
const DefaultLeaderRebalanceInterval = 5 * time.Minute

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("logsvc: data dir is required")
	case c.Etcd == nil:
		return errors.New("logsvc: etcd client is required")
	case c.SessionTTL < time.Second:
		return fmt.Errorf("logsvc: session TTL %v is below 1s", c.SessionTTL)
	}
	return nil
}

// Node is a running log-service node.
type Node struct {
	cfg   Config
	log   *slog.Logger
	store *meta.Store
	cache *meta.Cache

	lock     *dirlock.Lock
	engines  storage.Engines
	local    *localstore.Engine
	diskless *disklessstore.Engine
	hybrid   *hybridstore.Engine
	uploads  *uploaderPool
	parts    *leader
	follow   *followers
	metrics  *nodeMetrics

	lis  net.Listener
	grpc *grpc.Server
	// inproc serves the same LogService to callers in this process
	// (InProcess).
	inproc *inproc.Server
	fence  atomic.Pointer[fencer]                // nil while not registered
	ctrl   atomic.Pointer[controller.Controller] // this node's candidacy
	// etcdHealth reports etcd's size and alarms; the controller's node
	// also defragments and recovers from NOSPACE.
	etcdHealth *etcdhealth.Monitor

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New validates cfg and returns an unstarted node.
func New(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	store := meta.NewStore(cfg.Etcd, cfg.EtcdPrefix)
	return &Node{cfg: cfg, log: cfg.Logger, store: store, cache: meta.NewCache(store, cfg.Logger), metrics: newNodeMetrics(cfg.Metrics)}, nil
}

// Start recovers local storage, starts serving and registers the node. On
// error everything started so far is closed.
func (n *Node) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := os.MkdirAll(n.cfg.DataDir, 0o755); err != nil {
		return err
	}
	if n.lock, err = dirlock.Acquire(n.cfg.DataDir); err != nil {
		return fmt.Errorf("logsvc: %w", err)
	}
	if n.cfg.ID == "" {
		if n.cfg.ID, err = loadOrCreateID(n.cfg.DataDir); err != nil {
			return err
		}
	}
	n.log = n.log.With("node", n.cfg.ID)
	n.local, err = localstore.Open(localstore.Options{
		DataDir: n.cfg.DataDir, WAL: n.cfg.WAL, CheckpointInterval: n.cfg.CheckpointInterval, Logger: n.log,
		MinFreeBytes: n.cfg.MinFreeBytes,
	})
	if err != nil {
		return err
	}
	n.engines = storage.Engines{meta.StorageLocal: n.local}
	if n.cfg.Objects != nil {
		n.uploads = newUploaderPool(n.cache, n.cfg.LocalUploaders, telemetry.GRPCDialOptions(n.cfg.TracerProvider)...)
		n.diskless = disklessstore.New(disklessstore.Options{
			NodeID: n.cfg.ID, Store: n.store, Objects: n.cfg.Objects, Uploaders: n.uploads.clients,
			Buffer: n.cfg.Diskless, ReadCacheBytes: n.cfg.ReadCacheBytes, Logger: n.log,
			TracerProvider: n.cfg.TracerProvider,
		})
		n.metrics.add(n.diskless.Collector())
		n.engines[meta.StorageDiskless] = n.diskless
		hy := n.cfg.Hybrid
		hy.Local, hy.Tier, hy.Store, hy.Uploaders, hy.NodeID, hy.Logger = n.local, n.diskless, n.store, n.uploads.clients, n.cfg.ID, n.log
		hy.LeaderRevision = n.leaderRevision
		n.hybrid = hybridstore.New(hy)
		n.metrics.add(n.hybrid.Collector())
		n.engines[meta.StorageHybrid] = n.hybrid
		n.engines[meta.StorageLocal] = n.hybrid.LocalEngine() // reads what a formerly hybrid topic has in its tier
	}
	n.parts = newLeader(n)
	n.follow = newFollowers(n)
	n.metrics.add(n.parts.collector(n.cfg.ID))

	if n.lis, err = net.Listen("tcp", n.cfg.ListenAddr); err != nil {
		return fmt.Errorf("logsvc: listen %s: %w", n.cfg.ListenAddr, err)
	}
	n.grpc = grpc.NewServer(rpc.ServerOptions(telemetry.GRPCServerOptions(n.cfg.TracerProvider)...)...)
	srv := logrpc.NewServer(n.parts)
	srv.TraceWith(n.cfg.TracerProvider)
	srv.CountReplication(n.metrics.replicationOut)
	logv1.RegisterLogServiceServer(n.grpc, srv)
	n.inproc = inproc.New("log service "+n.cfg.ID, n.cfg.TracerProvider)
	// Fetch responses are built per call, their records read into new
	// buffers, and the gateway only encodes them: no copy in-process.
	n.inproc.MoveResponses(logv1.LogService_Fetch_FullMethodName)
	// Produce requests are built per Kafka request around the batches of
	// that request's own frame, and the gateway never looks at one once
	// sent (routing.ProduceStream.Submit): the log service takes the
	// batches as they are (it patches offsets into them and may keep
	// them), with no copy in-process.
	n.inproc.MoveRequests(logv1.LogService_ProduceStream_FullMethodName)
	logv1.RegisterLogServiceServer(n.inproc, srv)
	go n.grpc.Serve(n.lis)

	if err := n.cache.Start(ctx); err != nil {
		return fmt.Errorf("logsvc: load metadata: %w", err)
	}
	if err := n.leaveISRWithoutData(ctx); err != nil {
		return fmt.Errorf("logsvc: %w", err)
	}
	n.follow.reconcile()
	n.parts.reconcile()
	n.follow.reconcile()
	n.parts.removeOrphans()

	m, err := n.join(ctx)
	if err != nil {
		return err
	}
	bg, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	healthCli := n.cfg.EtcdHealth
	if healthCli == nil {
		healthCli = n.cfg.Etcd
	}
	if n.etcdHealth, err = etcdhealth.New(etcdhealth.Config{Client: healthCli, Upkeep: n.IsController, Logger: n.log}); err != nil {
		return err
	}
	n.metrics.add(n.etcdHealth)
	n.wg.Add(5)
	go func() { defer n.wg.Done(); n.etcdHealth.Run(bg) }()
	go n.maintainISRLoop(bg)
	go n.stayJoined(bg, m)
	go n.watchAssignments(bg)
	go n.retentionLoop(bg)
	n.log.Info("log service started", "grpc", n.Addr(), "data_dir", n.cfg.DataDir)
	return nil
}

// InProcess is a connection to the node's LogService for callers in this
// process (the all-in-one's gateway): the same handlers as on the network
// address, without a socket (see package inproc). Nil before Start.
func (n *Node) InProcess() grpc.ClientConnInterface {
	if n.inproc == nil {
		return nil
	}
	return n.inproc
}

// ID is the node's id in etcd.
func (n *Node) ID() string { return n.cfg.ID }

// Addr is the advertised gRPC address.
func (n *Node) Addr() string {
	if n.cfg.AdvertisedAddr != "" {
		return n.cfg.AdvertisedAddr
	}
	if n.lis == nil {
		return ""
	}
	return n.lis.Addr().String()
}

// EtcdProblem is non-nil while etcd refuses writes (a NOSPACE or CORRUPT
// alarm): /readyz reports it.
func (n *Node) EtcdProblem() error {
	if n.etcdHealth == nil {
		return nil
	}
	return n.etcdHealth.Problem()
}

// IsController reports whether this node is the elected controller.
func (n *Node) IsController() bool {
	c := n.ctrl.Load()
	return c != nil && c.IsLeader()
}

// watchAssignments reconciles on every metadata change, and every second
// so that a partition whose storage failed is reopened (reloading its log
// end) without waiting for a change.
func (n *Node) watchAssignments(ctx context.Context) {
	defer n.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		ch := n.cache.Changed()
		// Followers first (a partition this node now leads stops being
		// followed), then leaders, then followers again (one it stopped
		// leading is followed from its new leader).
		n.follow.reconcile()
		n.parts.reconcile()
		n.follow.reconcile()
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-tick.C:
		}
	}
}

func (n *Node) retentionLoop(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.RetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.applyRetention()
		case <-n.parts.retentionNow: // a topic's configs changed
			n.applyRetention()
		}
	}
}

// applyRetention enforces retention on led partitions and on followed
// ones: each copy applies the topic's limits by itself, as in Kafka.
func (n *Node) applyRetention() {
	n.parts.applyRetention()
	n.follow.each(func(f *followed) {
		t, ok := n.cache.TopicByID(f.topic.ID)
		if !ok {
			return
		}
		if err := f.log.ApplyRetention(t.Int64(meta.ConfigRetentionMs, n.cfg.TopicDefaults), t.Int64(meta.ConfigRetentionBytes, n.cfg.TopicDefaults)); err != nil {
			n.log.Warn("retention failed on a followed partition", "topic", t.Name, "err", err)
		}
	})
}

// maintainISRLoop checks the ISR of led partitions several times per
// ReplicaLagTime, so a lagging follower leaves it soon after the limit.
func (n *Node) maintainISRLoop(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(max(n.cfg.ReplicaLagTime/4, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.parts.maintainISR(n.cfg.ReplicaLagTime)
		}
	}
}

// Close stops serving, deregisters, and closes storage (fsyncing it).
// Idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		if n.inproc != nil {
			n.inproc.Stop()
		}
		if n.grpc != nil {
			n.grpc.Stop()
		}
		n.cache.Close()
		n.metrics.close()
		if n.follow != nil {
			n.follow.closeAll()
		}
		if n.parts != nil {
			n.parts.closeAll()
		}
		if n.diskless != nil {
			n.closeErr = errors.Join(n.closeErr, n.diskless.Close())
		}
		if n.uploads != nil {
			n.uploads.close()
		}
		if n.local != nil {
			n.closeErr = errors.Join(n.closeErr, n.local.Close())
		}
		n.lock.Release()
	})
	return n.closeErr
}

func loadOrCreateID(dir string) (string, error) {
	path := filepath.Join(dir, "node-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	}
	var raw [4]byte
	_, _ = rand.Read(raw[:])
	id := "logsvc-" + hex.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", err
	}
	return id, nil
}

// leaderRevision is the current etcd revision of a partition's record if
// this node still leads it at epoch (its cache's view): hybrid uploads
// commit against it, since ISR changes move the revision too.
func (n *Node) leaderRevision(topic string, partition, epoch int32) (int64, bool) {
	pa, ok := n.cache.Partition(topic, partition)
	if !ok || pa.Leader != n.cfg.ID || pa.LeaderEpoch != epoch {
		return 0, false
	}
	return pa.ModRevision, true
}
