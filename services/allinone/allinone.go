// Package allinone runs a whole Streamline cluster in one process: an
// embedded etcd, one log-service node, one uploader and one gateway. They
// talk to each other as separate processes do — an etcd client and the
// services' gRPC APIs — so the all-in-one exercises the same code paths as
// a cluster. The gateway calls the log service, and the log service the
// uploader, through in-process gRPC channels (shared/rpc/inproc): the same
// generated clients, handlers and tracing, with messages copied instead of
// sent through a loopback socket, which was a quarter of a saturated
// all-in-one's CPU. Their etcd client calls the embedded etcd's handlers
// the same way (etcd's v3client). Config.LoopbackRPC restores the sockets
// for both.
package allinone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/streamline-dev/streamline/gateway"
	"github.com/streamline-dev/streamline/logsvc"
	"github.com/streamline-dev/streamline/logsvc/buffer"
	"github.com/streamline-dev/streamline/logsvc/storage/hybridstore"
	"github.com/streamline-dev/streamline/logsvc/wal"
	"github.com/streamline-dev/streamline/shared/dirlock"
	"github.com/streamline-dev/streamline/shared/etcdembed"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/objstore"
	_ "github.com/streamline-dev/streamline/shared/objstore/objstorefs" // file:// URLs
	_ "github.com/streamline-dev/streamline/shared/objstore/objstores3" // s3:// URLs
	"github.com/streamline-dev/streamline/shared/telemetry"
	"github.com/streamline-dev/streamline/uploader"
)

// Config configures the all-in-one server.
type Config struct {
	DataDir             string // default ./streamline-data
	KafkaAddr           string // default 127.0.0.1:9092
	AdvertisedKafkaAddr string // default KafkaAddr
	EtcdClientAddr      string // default 127.0.0.1:2379
	EtcdPeerAddr        string // default 127.0.0.1:2380
	AdminAddr           string // admin gRPC API; default 127.0.0.1:9095, "" for none
	HTTPAddr            string // /metrics, /healthz, /readyz; default 127.0.0.1:9094, "" for none
	LogsvcAddr          string // default 127.0.0.1:0
	UploaderAddr        string // default 127.0.0.1:0
	ClusterID           string
	AutoCreateTopics    bool
	DefaultPartitions   int32
	DefaultStorageMode  meta.StorageMode
	// TransactionMaxTimeout bounds transaction.timeout.ms (0: the
	// gateway's default, 15 min).
	TransactionMaxTimeout time.Duration
	// TransactionVersion is the transaction.version feature level
	// advertised (0: the gateway's default, 2).
	TransactionVersion int16
	// TransactionalIDExpiration is transactional.id.expiration.ms (0: the
	// gateway's default, 7 days).
	TransactionalIDExpiration time.Duration
	// TransactionAbortInterval is how often timed-out transactions are
	// aborted and idle transactional ids expired (0: the gateway's
	// default, 10 s); tests shorten it.
	TransactionAbortInterval time.Duration
	// ObjectStore is the object store URL for hybrid and diskless topics (file:///dir
	// or s3://bucket/prefix?endpoint=...); default file://<DataDir>/objects.
	ObjectStore string
	// Diskless sizes the log service's diskless buffer (batch size and
	// timeout, upload parallelism, memory bound); zero values take the
	// defaults.
	Diskless buffer.Config
	// ReadCacheBytes bounds the log service's cache of object ranges for
	// diskless reads (0: the default, 100 MiB).
	ReadCacheBytes int64
	// Merge configures the uploader's merging of diskless ranges into
	// segment objects.
	Merge uploader.MergeConfig
	// Hybrid tunes hybrid partitions' uploads (logsvc.Config.Hybrid):
	// the bound on local bytes not in the tier yet, the upload interval.
	Hybrid hybridstore.Options
	// LoopbackRPC makes the gateway call the log service, the log service
	// the uploader, and every service etcd, over gRPC on loopback, as
	// separate processes do, instead of in-process (the default; see
	// shared/rpc/inproc and etcd's v3client). For comparisons and
	// debugging.
	LoopbackRPC bool
	// UnsafeNoFsync skips WAL fsync: benchmarks only.
	UnsafeNoFsync bool
	// WALPreallocate starts each WAL file from a zero-filled spare
	// (wal.Options.Preallocate).
	WALPreallocate bool
	// WALDirectIO writes WAL files with O_DIRECT (wal.Options.DirectIO).
	WALDirectIO bool
	// MinFreeBytes is the free space kept on the data filesystem (see
	// logsvc.Config.MinFreeBytes).
	MinFreeBytes int64
	Logger       *slog.Logger
	// TracerProvider traces every service of the process (one
	// service.name, "streamline"); nil: no tracing, no cost. Tests inject a
	// provider with a tracetest.SpanRecorder.
	TracerProvider trace.TracerProvider
	// Metrics receives every service's series and is what HTTPAddr serves;
	// nil: a new registry (Server.Metrics).
	Metrics *prometheus.Registry
}

// Default returns the documented defaults.
func Default() Config {
	return Config{
		DataDir:            "./streamline-data",
		KafkaAddr:          "127.0.0.1:9092",
		EtcdClientAddr:     "127.0.0.1:2379",
		EtcdPeerAddr:       "127.0.0.1:2380",
		AdminAddr:          "127.0.0.1:9095",
		HTTPAddr:           "127.0.0.1:9094",
		LogsvcAddr:         "127.0.0.1:0",
		UploaderAddr:       "127.0.0.1:0",
		ClusterID:          "streamline",
		AutoCreateTopics:   true,
		DefaultPartitions:  1,
		DefaultStorageMode: meta.StorageLocal,
		WALPreallocate:     true,
		WALDirectIO:        true,
	}
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("--data-dir must not be empty")
	case c.KafkaAddr == "":
		return errors.New("--kafka-addr must not be empty")
	case c.DefaultPartitions < 1 || c.DefaultPartitions > meta.MaxPartitions:
		return fmt.Errorf("invalid value %d for flag --default-partitions: must be 1..%d", c.DefaultPartitions, meta.MaxPartitions)
	}
	mode, err := meta.ParseStorageMode(string(c.DefaultStorageMode))
	if err == nil {
		err = mode.Supported()
	}
	if err != nil {
		return fmt.Errorf("invalid value %q for flag --default-storage-mode: %v", c.DefaultStorageMode, err)
	}
	if err := telemetry.ValidateAddr(c.HTTPAddr); err != nil {
		return fmt.Errorf("invalid value %q for flag --http-addr: %v", c.HTTPAddr, err)
	}
	// Every address is checked before anything starts: a typo must not
	// leave an etcd or a data directory behind.
	for _, a := range []struct{ flag, v string }{
		{"--kafka-addr", c.KafkaAddr}, {"--advertised-kafka-addr", c.AdvertisedKafkaAddr},
		{"--etcd-client-addr", c.EtcdClientAddr}, {"--etcd-peer-addr", c.EtcdPeerAddr},
		{"--admin-addr", c.AdminAddr}, {"--logsvc-addr", c.LogsvcAddr}, {"--uploader-addr", c.UploaderAddr},
	} {
		if a.v == "" && a.flag != "--kafka-addr" && a.flag != "--etcd-client-addr" && a.flag != "--etcd-peer-addr" {
			continue // optional: empty means off or the default
		}
		if _, port, err := net.SplitHostPort(a.v); err != nil || port == "" {
			return fmt.Errorf("invalid value %q for flag %s: want host:port", a.v, a.flag)
		}
	}
	switch {
	case c.Diskless.MaxBatchBytes < 0:
		return fmt.Errorf("invalid value %d for flag --diskless-batch-bytes: must not be negative", c.Diskless.MaxBatchBytes)
	case c.Diskless.MaxDelay < 0 || c.Diskless.MaxDelay > meta.MaxBatchTimeout:
		return fmt.Errorf("invalid value %v for flag --diskless-batch-timeout: must be between 0 and %v (a produce waits for its flush)", c.Diskless.MaxDelay, meta.MaxBatchTimeout)
	case c.Diskless.IdleFlush < 0:
		return fmt.Errorf("invalid value %v for flag --diskless-idle-flush: must not be negative (0: off)", c.Diskless.IdleFlush)
	case c.Diskless.MaxInFlight < 0:
		return fmt.Errorf("invalid value %d for flag --diskless-upload-parallelism: must not be negative", c.Diskless.MaxInFlight)
	case c.Diskless.MaxBufferedBytes < 0:
		return fmt.Errorf("invalid value %d for flag --diskless-max-buffered-bytes: must not be negative", c.Diskless.MaxBufferedBytes)
	case c.ReadCacheBytes < 0:
		return fmt.Errorf("invalid value %d for flag --read-cache-bytes: must not be negative", c.ReadCacheBytes)
	}
	return c.Merge.Validate()
}

// Server is a running all-in-one.
type Server struct {
	cfg     Config
	lock    *dirlock.Lock
	objects objstore.Bucket
	etcd    *embed.Etcd
	cli     *clientv3.Client // the services' (in-process unless LoopbackRPC)
	dialed  *clientv3.Client // over the etcd client port
	node    *logsvc.Node
	up      *uploader.Uploader
	gw      *gateway.Gateway
	http    *telemetry.Server // nil without HTTPAddr

	stopping  chan struct{} // closed when Close begins
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Start boots etcd, then the uploader, the log service and the gateway. If any
// step fails, what was started is closed.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = telemetry.NewRegistry()
	}
	s := &Server{cfg: cfg, stopping: make(chan struct{}), done: make(chan struct{})}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	// Lock first: a second all-in-one on the same directory must fail at
	// once, not wait forever on etcd's own database lock.
	if s.lock, err = dirlock.Acquire(cfg.DataDir); err != nil {
		return nil, err
	}
	// Before etcd, so /healthz answers (and /readyz says 503) while etcd and
	// the services start.
	if cfg.HTTPAddr != "" {
		if s.http, err = telemetry.Listen(cfg.HTTPAddr, cfg.Metrics, cfg.Logger); err != nil {
			return nil, fmt.Errorf("--http-addr %s: %w", cfg.HTTPAddr, err)
		}
	}
	if s.etcd, err = startEtcd(cfg); err != nil {
		return nil, err
	}
	url := cfg.ObjectStore
	if url == "" {
		abs, err := filepath.Abs(filepath.Join(cfg.DataDir, "objects"))
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, err
		}
		url = "file://" + abs
	}
	if s.objects, err = objstore.Open(ctx, url); err != nil {
		return nil, fmt.Errorf("--object-store: %w", err)
	}
	s.objects = objstore.Instrument(s.objects, cfg.Metrics, cfg.TracerProvider)
	// The dialed client polls etcd's health (logsvc.Config.EtcdHealth)
	// and, with LoopbackRPC, serves every service.
	eps := []string{"http://" + cfg.EtcdClientAddr}
	if s.dialed, err = clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}); err != nil {
		return nil, err
	}
	s.cli = s.dialed
	if !cfg.LoopbackRPC {
		// The services' etcd client calls the embedded server's gRPC
		// handlers directly (etcd's own v3client): the same clientv3 API,
		// quotas and errors, without HTTP/2 framing and a loopback socket
		// per call. Leadership checks read etcd for every group of acks,
		// and that hop was a tenth of the process's CPU at 10k records/s.
		s.cli = v3client.New(s.etcd.Server)
	}
	log := cfg.Logger
	// The uploader first: the log service is given its in-process
	// connection.
	if s.up, err = uploader.New(uploader.Config{ID: "uploader-1", ListenAddr: cfg.UploaderAddr, Etcd: s.cli, TakeOverID: true, Objects: s.objects,
		Merge: cfg.Merge, Logger: log.With("service", "uploader"), TracerProvider: cfg.TracerProvider, Metrics: cfg.Metrics}); err != nil {
		return nil, err
	}
	if err := s.up.Start(ctx); err != nil {
		return nil, err
	}
	s.node, err = logsvc.New(logsvc.Config{
		ID: "logsvc-1", DataDir: filepath.Join(cfg.DataDir, "logsvc"), ListenAddr: cfg.LogsvcAddr,
		Etcd: s.cli, EtcdHealth: s.dialed, WAL: wal.Options{NoSync: cfg.UnsafeNoFsync, Preallocate: cfg.WALPreallocate, DirectIO: cfg.WALDirectIO}, MinFreeBytes: cfg.MinFreeBytes, Logger: log.With("service", "logsvc"),
		Objects: s.objects, Diskless: cfg.Diskless, ReadCacheBytes: cfg.ReadCacheBytes, Hybrid: cfg.Hybrid, TracerProvider: cfg.TracerProvider, Metrics: cfg.Metrics,
		LocalUploaders: s.localUploaders(),
	})
	if err != nil {
		return nil, err
	}
	if err := s.node.Start(ctx); err != nil {
		return nil, err
	}
	s.gw, err = gateway.New(gateway.Config{
		ID: "gateway-1", NodeID: 1, ListenAddr: cfg.KafkaAddr, AdvertisedAddr: cfg.AdvertisedKafkaAddr, AdminAddr: cfg.AdminAddr,
		ClusterID: cfg.ClusterID, AutoCreateTopics: cfg.AutoCreateTopics, DefaultPartitions: cfg.DefaultPartitions,
		DefaultStorageMode: cfg.DefaultStorageMode, Etcd: s.cli, Logger: log.With("service", "gateway"),
		TracerProvider: cfg.TracerProvider, Metrics: cfg.Metrics, TransactionMaxTimeout: cfg.TransactionMaxTimeout,
		TransactionVersion: cfg.TransactionVersion, TransactionalIDExpiration: cfg.TransactionalIDExpiration,
		TransactionAbortInterval: cfg.TransactionAbortInterval, LocalLogServices: s.localLogServices(),
	})
	if err != nil {
		return nil, err
	}
	if err := s.gw.Start(ctx); err != nil {
		return nil, err
	}
	go s.watch()
	if s.http != nil {
		s.http.AddReadyCheck(s.node.EtcdProblem)
		s.http.SetReady(true) // every service started and registered in etcd
	}
	return s, nil
}

// localLogServices is the log service the gateway calls in-process: the
// same LogService handlers as on the node's gRPC address, without the
// loopback socket (see shared/rpc/inproc); none with LoopbackRPC.
func (s *Server) localLogServices() map[string]grpc.ClientConnInterface {
	if s.cfg.LoopbackRPC {
		return nil
	}
	return map[string]grpc.ClientConnInterface{s.node.Addr(): s.node.InProcess()}
}

// localUploaders is the uploader the log service calls in-process (see
// localLogServices); none with LoopbackRPC.
func (s *Server) localUploaders() map[string]grpc.ClientConnInterface {
	if s.cfg.LoopbackRPC {
		return nil
	}
	return map[string]grpc.ClientConnInterface{s.up.Addr(): s.up.InProcess()}
}

func startEtcd(cfg Config) (*embed.Etcd, error) {
	ec := embed.NewConfig()
	ec.Name = "streamline"
	ec.Dir = filepath.Join(cfg.DataDir, "etcd")
	ec.Logger = "zap"
	ec.LogLevel = "error"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	client := url.URL{Scheme: "http", Host: cfg.EtcdClientAddr}
	peer := url.URL{Scheme: "http", Host: cfg.EtcdPeerAddr}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	ec.InitialCluster = ec.Name + "=" + peer.String()
	// A single member elects itself when its randomized election timeout
	// runs out: at etcd's defaults (100 ms ticks, 1 s election) 100-1000
	// ms after the start even with the single-node fast-forward, most of
	// the all-in-one's cold start. With no peer to hear heartbeats, short
	// ticks cost nothing but a wakeup every 10 ms, and the election takes
	// 10-100 ms.
	ec.TickMs, ec.ElectionMs = 10, 100
	etcdembed.Apply(ec, 0)
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd on %s: %w", cfg.EtcdClientAddr, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("embedded etcd not ready after 60s")
	}
}

// watch ends the server if the embedded etcd fails. (A log service that
// loses its lease rejoins by itself.)
func (s *Server) watch() {
	select {
	case err := <-s.etcd.Err():
		s.cfg.Logger.Error("embedded etcd failed", "err", err)
	case <-s.stopping:
		return
	}
	select {
	case <-s.stopping: // a component stopped because Close is stopping it
		return
	default:
	}
	s.Close()
}

// AdminAddr is the admin gRPC API's bound address ("" if not served).
func (s *Server) AdminAddr() string {
	if a := s.gw.AdminAddr(); a != nil {
		return a.String()
	}
	return ""
}

// HTTPAddr is the bound address of /metrics, /healthz and /readyz ("" if
// not served).
func (s *Server) HTTPAddr() string {
	if s.http == nil {
		return ""
	}
	return s.http.Addr()
}

// Metrics is the registry every service of the server reports to.
func (s *Server) Metrics() *prometheus.Registry { return s.cfg.Metrics }

// KafkaAddr is where Kafka clients connect (the advertised address).
func (s *Server) KafkaAddr() string {
	adv := s.gw.Advertised()
	return net.JoinHostPort(adv.Host, strconv.Itoa(int(adv.Port)))
}

// KafkaListenAddr is the address the gateway listens on (which differs
// from KafkaAddr when an advertised address is set).
func (s *Server) KafkaListenAddr() string { return s.gw.Addr().String() }

// LogServiceAddr is the log service's gRPC address (which the gateway
// does not dial unless LoopbackRPC is set).
func (s *Server) LogServiceAddr() string { return s.node.Addr() }

// EtcdEndpoint is the embedded etcd's client URL.
func (s *Server) EtcdEndpoint() string { return "http://" + s.cfg.EtcdClientAddr }

// Done is closed once the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Close stops everything in reverse start order. Idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.stopping)
		if s.http != nil {
			s.http.SetReady(false)
		}
		if s.gw != nil {
			s.closeErr = errors.Join(s.closeErr, s.gw.Close())
		}
		// The log service before the uploader: its last diskless flushes
		// still reach an uploader that is serving.
		if s.node != nil {
			s.closeErr = errors.Join(s.closeErr, s.node.Close())
		}
		if s.up != nil {
			s.closeErr = errors.Join(s.closeErr, s.up.Close())
		}
		if s.cli != nil && s.cli != s.dialed {
			s.cli.Close()
		}
		if s.dialed != nil {
			s.dialed.Close()
		}
		if s.etcd != nil {
			s.etcd.Close()
		}
		if s.objects != nil {
			s.objects.Close()
		}
		s.lock.Release()
		if s.http != nil {
			s.http.Close()
		}
		close(s.done)
	})
	return s.closeErr
}
