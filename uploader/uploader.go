// Package uploader is the uploader service: the fleet that will write
// batches of hybrid and diskless topics to object storage and commit their
// manifests to etcd, fenced by leader epochs.
//
// An uploader registers itself in etcd under a lease, serves the
// UploadService (Write: one object per flush, with the batches of many
// partitions; UploadSegment: one partition's sealed segment of a hybrid
// topic as one segment object, streamed through a spool file (package
// segupload); Commit: each partition's coordinates into etcd, fenced by
// its leader revision and its committed end) and the standard gRPC health
// service. It keeps no state: any live uploader can serve any call.
//
// With an object store that can list and delete, every uploader is also a
// candidate garbage collector (package gc): the one elected through etcd
// deletes objects no manifest references once they are older than the GC
// grace period, and every uploader refuses to commit objects older than
// half of it, so a collected object can never become referenced. With one
// it can read, every uploader is also a candidate merger (package merge):
// the elected one rewrites old intake ranges into per-partition segment
// objects and swaps them into the manifests.
package uploader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	uploadv1 "github.com/streamline-dev/streamline/proto/gen/streamline/upload/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/rpc"
	"github.com/streamline-dev/streamline/shared/rpc/inproc"
	"github.com/streamline-dev/streamline/shared/telemetry"
	"github.com/streamline-dev/streamline/uploader/gc"
	"github.com/streamline-dev/streamline/uploader/merge"
	"github.com/streamline-dev/streamline/uploader/upload"
	"github.com/streamline-dev/streamline/uploader/uploadrpc"
)

// Config configures an Uploader.
type Config struct {
	// ID names the uploader in etcd; empty generates one.
	ID             string
	ListenAddr     string // gRPC; port 0 picks one
	AdvertisedAddr string
	Etcd           *clientv3.Client
	EtcdPrefix     string
	SessionTTL     time.Duration
	// Objects is the object store flushes are written to; nil means none is
	// configured, and Upload calls fail with FailedPrecondition.
	Objects upload.ObjectWriter
	// SpoolDir is where UploadSegment spools a segment while it arrives
	// (package segupload: one file per upload in flight, removed when it
	// ends); empty is os.TempDir().
	SpoolDir string
	// GRPCOptions are added to the gRPC server's options (interceptors for
	// tracing, or for fault injection in tests).
	GRPCOptions []grpc.ServerOption
	// TakeOverID replaces an existing registration of ID instead of waiting
	// for it to expire. Set it only when the previous holder is known to be
	// dead (the all-in-one, whose etcd lives in the same process).
	TakeOverID bool
	// GCGrace is the age below which an unreferenced object is never
	// garbage-collected (it may be uploaded and not yet committed); commits
	// of objects older than half of it are refused. Zero is gc.DefaultGrace.
	// Use the same value on every uploader of a cluster.
	GCGrace time.Duration
	// GCInterval is the time between garbage-collection passes of the
	// elected uploader; zero is gc.DefaultInterval.
	GCInterval time.Duration
	// GCLinger is how long an old enough object must have been seen
	// unreferenced before it is deleted; zero is gc.DefaultLinger.
	GCLinger time.Duration
	// Merge configures the merger (package merge) every uploader with a
	// readable object store runs as a candidate.
	Merge  MergeConfig
	Logger *slog.Logger
	// TracerProvider traces the UploadService calls and, inside them, the
	// object PUTs and etcd commits; nil or no-op: no tracing, no cost.
	TracerProvider trace.TracerProvider
	// Metrics is where the uploader registers its series
	// (streamline_etcd_commit_duration_seconds{op="diskless_commit"},
	// streamline_uploader_segments_total, _segment_bytes_total, and the
	// garbage collector's and merger's); nil: not exported.
	Metrics prometheus.Registerer
}

// MergeConfig configures merging; zero fields take merge's defaults.
type MergeConfig struct {
	// Disabled turns merging off on this uploader (benchmarks compare).
	Disabled    bool
	MinAge      time.Duration
	TargetBytes int64
	Interval    time.Duration
	Parallelism int
	// Failpoint is passed to merge.Config.Failpoint and to the segment
	// uploads of the UploadService (crash tests).
	Failpoint func(step string)
	enabled   *bool // set by AddFlags
}

// AllInOneMergeParallelism is the all-in-one's default
// --merge-parallelism. The all-in-one shares its two or so cores and its
// disk with the produce path, as for hybrid uploads: merges of 2 s old
// ranges at 2,000 records/s on 12 partitions (directory store), produce
// p999 94 / 102 ms with 4 writers against 27 / 35 ms with 1, p99 22.7 /
// 21.0 against 20.2 / 20.1 ms, alternating.
const AllInOneMergeParallelism = 1

// AddFlags defines the merge flags on fs (the uploader's and the
// all-in-one's): --merge, --merge-min-age, --merge-target-bytes,
// --merge-interval, --merge-parallelism (default parallelism).
func (m *MergeConfig) AddFlags(fs *flag.FlagSet, parallelism int) {
	enabled := fs.Bool("merge", true, "merge old diskless ranges into per-partition segment objects (the elected uploader does it; false: this uploader never merges)")
	fs.DurationVar(&m.MinAge, "merge-min-age", merge.DefaultMinAge, "merge committed diskless ranges once they are this old")
	fs.Int64Var(&m.TargetBytes, "merge-target-bytes", merge.DefaultTargetBytes, "size merged segment objects grow to (at least 1 MiB)")
	fs.DurationVar(&m.Interval, "merge-interval", merge.DefaultInterval, "time between merge passes of the elected uploader")
	fs.IntVar(&m.Parallelism, "merge-parallelism", parallelism, "merged objects written at once (S3's PUT latency needs several; 1, the all-in-one's default, is gentlest on cores and a disk shared with the produce path)")
	m.enabled = enabled
}

// Validate reports the first invalid setting, naming its flag.
func (m *MergeConfig) Validate() error {
	if m.enabled != nil {
		m.Disabled = !*m.enabled
	}
	switch {
	case m.MinAge < 0:
		return fmt.Errorf("invalid value %v for flag --merge-min-age: must not be negative", m.MinAge)
	case m.Interval < 0:
		return fmt.Errorf("invalid value %v for flag --merge-interval: must not be negative", m.Interval)
	case m.Parallelism < 0:
		return fmt.Errorf("invalid value %d for flag --merge-parallelism: must not be negative", m.Parallelism)
	case m.TargetBytes != 0 && m.TargetBytes < 1<<20:
		return fmt.Errorf("invalid value %d for flag --merge-target-bytes: must be at least 1 MiB (1048576)", m.TargetBytes)
	}
	return nil
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	if c.Etcd == nil {
		return errors.New("uploader: etcd client is required")
	}
	if c.SessionTTL != 0 && c.SessionTTL < time.Second {
		return fmt.Errorf("uploader: session TTL %v is below 1s", c.SessionTTL)
	}
	if c.GCGrace < 0 || c.GCInterval < 0 || c.GCLinger < 0 {
		return fmt.Errorf("uploader: negative GC grace %v, interval %v or linger %v", c.GCGrace, c.GCInterval, c.GCLinger)
	}
	if err := c.Merge.Validate(); err != nil {
		return fmt.Errorf("uploader: %w", err)
	}
	return nil
}

// Uploader is a running uploader.
type Uploader struct {
	cfg Config
	lis net.Listener
	srv *grpc.Server
	// inproc serves the same UploadService to callers in this process
	// (InProcess).
	inproc *inproc.Server
	sess   *concurrency.Session
	once   sync.Once

	gc       *gc.Collector // nil without a listable object store
	merger   *merge.Merger // nil without a readable object store, or disabled
	gcCancel context.CancelFunc
	gcDone   chan struct{}

	stopKeep chan struct{} // closed by Close: keepRegistered ends
	keepDone chan struct{}
}

// New validates cfg.
func New(cfg Config) (*Uploader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.GCGrace == 0 {
		cfg.GCGrace = gc.DefaultGrace
	}
	if cfg.GCInterval == 0 {
		cfg.GCInterval = gc.DefaultInterval
	}
	if cfg.ID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.ID = "uploader-" + hex.EncodeToString(b[:])
	}
	u := &Uploader{cfg: cfg}
	if b, ok := cfg.Objects.(gc.Bucket); ok {
		c, err := gc.New(gc.Config{Bucket: b, Store: meta.NewStore(cfg.Etcd, cfg.EtcdPrefix), ID: cfg.ID,
			Grace: cfg.GCGrace, Interval: cfg.GCInterval, Linger: cfg.GCLinger, Logger: cfg.Logger, OnPass: gcMetrics(cfg.Metrics)})
		if err != nil {
			return nil, err
		}
		u.gc = c
	}
	if b, ok := cfg.Objects.(merge.Bucket); ok && !cfg.Merge.Disabled {
		m, err := merge.New(merge.Config{Bucket: b, Store: meta.NewStore(cfg.Etcd, cfg.EtcdPrefix), ID: cfg.ID,
			MinAge: cfg.Merge.MinAge, TargetBytes: cfg.Merge.TargetBytes, Interval: cfg.Merge.Interval, Parallelism: cfg.Merge.Parallelism,
			MaxCommitAge: gc.MaxCommitAge(cfg.GCGrace), Logger: cfg.Logger, OnPass: mergeMetrics(cfg.Metrics),
			Failpoint: cfg.Merge.Failpoint})
		if err != nil {
			return nil, err
		}
		u.merger = m
	}
	return u, nil
}

// Start serves health and registers under a lease.
func (u *Uploader) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			u.Close()
		}
	}()
	if u.lis, err = net.Listen("tcp", u.cfg.ListenAddr); err != nil {
		return fmt.Errorf("uploader: listen %s: %w", u.cfg.ListenAddr, err)
	}
	u.srv = grpc.NewServer(rpc.ServerOptions(append(telemetry.GRPCServerOptions(u.cfg.TracerProvider), u.cfg.GRPCOptions...)...)...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(u.srv, hs)
	up := uploadrpc.NewServer(u.cfg.Objects, newTimedCommitter(meta.NewStore(u.cfg.Etcd, u.cfg.EtcdPrefix), u.cfg.Metrics, u.cfg.TracerProvider))
	// Every uploader refuses commits the collector could race, whether or
	// not it collects itself: any uploader may commit any object.
	up.RefuseCommitsOlderThan(gc.MaxCommitAge(u.cfg.GCGrace))
	up.SpoolSegmentsIn(u.cfg.SpoolDir)
	up.OnSegmentUploaded(segmentMetrics(u.cfg.Metrics))
	up.Failpoint(u.cfg.Merge.Failpoint)
	uploadv1.RegisterUploadServiceServer(u.srv, up)
	u.inproc = inproc.New("uploader "+u.cfg.ID, u.cfg.TracerProvider)
	// An upload request holds a flush's record batches, which the handler
	// only reads into the object it writes; the log service builds one
	// per flush and never modifies it (disklessstore's flush), though it
	// may send it again (retries, hedges): no copy in-process.
	u.inproc.ShareRequests(uploadv1.UploadService_Upload_FullMethodName)
	uploadv1.RegisterUploadServiceServer(u.inproc, up)
	go u.srv.Serve(u.lis)
	if u.sess, err = u.register(ctx, u.cfg.TakeOverID); err != nil {
		return err
	}
	u.startJobs()
	u.stopKeep, u.keepDone = make(chan struct{}), make(chan struct{})
	go u.keepRegistered()
	u.cfg.Logger.Info("uploader started", "id", u.cfg.ID, "grpc", u.Addr(), "object_store", u.cfg.Objects != nil, "gc", u.gc != nil)
	return nil
}

// register opens an etcd session and registers the uploader under it.
func (u *Uploader) register(ctx context.Context, takeover bool) (*concurrency.Session, error) {
	sess, err := concurrency.NewSession(u.cfg.Etcd, concurrency.WithTTL(int(u.cfg.SessionTTL.Seconds())))
	if err != nil {
		return nil, fmt.Errorf("uploader: etcd session: %w", err)
	}
	if err := meta.NewStore(u.cfg.Etcd, u.cfg.EtcdPrefix).RegisterUploader(ctx, sess, meta.Uploader{ID: u.cfg.ID, Addr: u.Addr(), ObjectStore: u.cfg.Objects != nil}, takeover); err != nil {
		sess.Close()
		return nil, err
	}
	return sess, nil
}

// keepRegistered holds the registration through etcd outages: when the
// session's lease is lost (etcd unreachable, paused or restarted for longer
// than the TTL), the garbage-collector candidacy ends with it, and the
// uploader registers again under a new lease (retrying every second until
// etcd answers) and campaigns again. An uploader holds no state of its own,
// so there is nothing to recover: it only has to be findable again. While
// unregistered it still serves uploads and commits (every commit is fenced
// in etcd by the partition's leader revision, not by the uploader's lease).
func (u *Uploader) keepRegistered() {
	defer close(u.keepDone)
	for {
		select {
		case <-u.stopKeep:
			return
		case <-u.sess.Done():
		}
		u.cfg.Logger.Warn("etcd session lost; registering again")
		if u.gcCancel != nil {
			u.gcCancel()
			<-u.gcDone
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			sess, err := u.register(ctx, false)
			cancel()
			if err == nil {
				u.sess = sess
				break
			}
			u.cfg.Logger.Warn("re-registering uploader failed; retrying", "err", err)
			select {
			case <-u.stopKeep:
				return
			case <-time.After(time.Second):
			}
		}
		u.startJobs()
		u.cfg.Logger.Info("uploader registered again", "id", u.cfg.ID)
	}
}

// startJobs runs the garbage-collector and merger candidacies on the
// uploader's session until Close or the session's end.
func (u *Uploader) startJobs() {
	if u.gc == nil && u.merger == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	u.gcCancel, u.gcDone = cancel, make(chan struct{})
	var wg sync.WaitGroup
	run := func(name string, fn func(context.Context, *concurrency.Session) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx, u.sess); err != nil {
				u.cfg.Logger.Warn(name+" candidacy ended", "err", err)
			}
		}()
	}
	if u.gc != nil {
		run("garbage-collector", u.gc.Run)
	}
	if u.merger != nil {
		run("merger", u.merger.Run)
	}
	go func() { wg.Wait(); close(u.gcDone) }()
}

// IsMergeLeader reports whether this uploader is the elected merger.
func (u *Uploader) IsMergeLeader() bool { return u.merger != nil && u.merger.IsLeader() }

// IsGCLeader reports whether this uploader is the elected garbage collector.
func (u *Uploader) IsGCLeader() bool { return u.gc != nil && u.gc.IsLeader() }

// ID is the uploader's id.
func (u *Uploader) ID() string { return u.cfg.ID }

// InProcess is a connection to the uploader's UploadService for callers in
// this process (the all-in-one's log service): the same handlers as on the
// network address, without a socket (see package inproc). It does not
// carry Config.GRPCOptions (server options of the network server). Nil
// before Start.
func (u *Uploader) InProcess() grpc.ClientConnInterface {
	if u.inproc == nil {
		return nil
	}
	return u.inproc
}

// Addr is the advertised gRPC address.
func (u *Uploader) Addr() string {
	if u.cfg.AdvertisedAddr != "" {
		return u.cfg.AdvertisedAddr
	}
	if u.lis == nil {
		return ""
	}
	return u.lis.Addr().String()
}

// Close deregisters and stops serving. Idempotent.
func (u *Uploader) Close() error {
	var err error
	u.once.Do(func() {
		if u.stopKeep != nil {
			close(u.stopKeep)
			<-u.keepDone // u.sess and the collector are ours from here
		}
		if u.gcCancel != nil {
			u.gcCancel() // resigns while the session still exists
			<-u.gcDone
		}
		if u.sess != nil {
			err = u.sess.Close()
		}
		if u.inproc != nil {
			u.inproc.Stop()
		}
		if u.srv != nil {
			u.srv.Stop()
		}
	})
	return err
}
