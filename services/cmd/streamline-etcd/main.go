// Command streamline-etcd runs a single-member etcd server as its own
// process, for local clusters (deployments/local/cluster.sh) and the
// multi-process test harness (services/cluster.StartCluster), which need an
// etcd they can SIGKILL, SIGSTOP and restart like any other node.
//
//	go run ./services/cmd/streamline-etcd --data-dir /tmp/etcd --client-addr 127.0.0.1:2379
//
// It is the upstream etcd server, not a re-implementation: the same
// go.etcd.io/etcd/server/v3/embed package the all-in-one server and the
// tests already embed, at the version go.mod pins. Building the upstream
// etcd binary instead would need a throwaway wrapper module (its main
// package lives in a module of its own, outside this workspace) and a
// second dependency graph to keep in step; this binary needs neither.
//
// Once the server serves clients it prints one line on stdout:
//
//	etcd ready at http://127.0.0.1:2379 (data in /tmp/etcd)
//
// Every flag can also be set as STREAMLINE_<FLAG> (STREAMLINE_CLIENT_ADDR,
// ...). SIGINT or SIGTERM stops it cleanly (exit 0); if the server fails
// while running it exits 1.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/streamline-dev/streamline/shared/etcdembed"
	"github.com/streamline-dev/streamline/shared/svcmain"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := svcmain.NewFlags("streamline-etcd", "streamline-etcd: a single-member etcd server (upstream etcd, embedded)", false)
	var (
		dataDir    = fs.String("data-dir", "./etcd-data", "etcd data directory (WAL and snapshots)")
		clientAddr = fs.String("client-addr", "127.0.0.1:2379", "host:port clients connect to (advertised as http://host:port)")
		peerAddr   = fs.String("peer-addr", "127.0.0.1:2380", "host:port of the peer (raft) listener")
		name       = fs.String("name", "streamline-etcd", "member name")
		etcdLevel  = fs.String("etcd-log-level", "warn", "level of etcd's own log on stderr (debug, info, warn, error); info is very chatty")
		history    = fs.Duration("history", etcdembed.DefaultHistory, "revision history etcd keeps before compacting it (etcd --auto-compaction-retention, periodic); a negative value keeps every revision until etcd's quota fills")
		noFsync    = fs.Bool("unsafe-no-fsync", false, "skip fsync (tests only: a machine crash may lose or corrupt data; a killed process loses nothing)")
	)
	if code, ok := fs.Parse(args); !ok {
		return code
	}
	log, err := fs.Logger()
	if err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	level, err := zapcore.ParseLevel(*etcdLevel)
	if err != nil || level < zapcore.DebugLevel || level > zapcore.ErrorLevel {
		fs.Fail("invalid value %q for flag --etcd-log-level: debug, info, warn or error", *etcdLevel)
		return svcmain.ExitUsage
	}
	etcdLog := zap.NewAtomicLevelAt(level)
	cfg, err := etcdConfig(*dataDir, *clientAddr, *peerAddr, *name, etcdLog, *noFsync)
	if err != nil {
		fs.Fail("%v", err)
		return svcmain.ExitUsage
	}
	etcdembed.Apply(cfg, *history)
	srv := &server{cfg: cfg, log: log, etcdLog: etcdLog, done: make(chan struct{}), stopping: make(chan struct{})}
	return svcmain.Run(log, srv, func() {
		fmt.Printf("etcd ready at %s (data in %s)\n", cfg.AdvertiseClientUrls[0].String(), cfg.Dir)
	})
}

// etcdConfig builds a single-member configuration; errors name the flag.
// etcd logs JSON on stderr at level.
func etcdConfig(dataDir, clientAddr, peerAddr, name string, level zap.AtomicLevel, noFsync bool) (*embed.Config, error) {
	if dataDir == "" {
		return nil, errors.New("--data-dir must not be empty")
	}
	if name == "" {
		return nil, errors.New("--name must not be empty")
	}
	client, err := httpURL("--client-addr", clientAddr)
	if err != nil {
		return nil, err
	}
	peer, err := httpURL("--peer-addr", peerAddr)
	if err != nil {
		return nil, err
	}
	zc := zap.NewProductionConfig()
	zc.Level = level
	zc.Sampling = nil
	zc.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	zc.OutputPaths, zc.ErrorOutputPaths = []string{"stderr"}, []string{"stderr"}
	lg, err := zc.Build()
	if err != nil {
		return nil, fmt.Errorf("etcd logger: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = dataDir
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	cfg.UnsafeNoFsync = noFsync
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	// Used only when the data directory is new; a restart reads the member
	// list from the data directory.
	cfg.InitialCluster = name + "=" + peer.String()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("etcd configuration: %w", err)
	}
	return cfg, nil
}

func httpURL(flag, hostport string) (url.URL, error) {
	u, err := url.Parse("http://" + hostport)
	if err != nil || u.Host != hostport || u.Port() == "" {
		return url.URL{}, fmt.Errorf("invalid value %q for flag %s: want host:port", hostport, flag)
	}
	return *u, nil
}

// server adapts embed.Etcd to svcmain.Service: Start waits until etcd
// serves clients, Done is closed if etcd fails afterwards.
type server struct {
	cfg     *embed.Config
	log     *slog.Logger
	etcdLog zap.AtomicLevel // etcd's log level, silenced by Close

	e         *embed.Etcd
	done      chan struct{} // closed when etcd failed by itself
	stopping  chan struct{} // closed by Close
	closeOnce sync.Once
}

// readyTimeout bounds how long Start waits for etcd to serve. A fresh
// member elects itself in about a second; replaying a large WAL takes
// longer.
const readyTimeout = 2 * time.Minute

func (s *server) Start(ctx context.Context) error {
	e, err := embed.StartEtcd(s.cfg)
	if err != nil {
		return fmt.Errorf("etcd on %s: %w", s.cfg.ListenClientUrls[0].Host, err)
	}
	s.e = e
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return fmt.Errorf("etcd failed while starting: %w", err)
	case <-e.Server.StopNotify():
		return errors.New("etcd stopped while starting")
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(readyTimeout):
		return fmt.Errorf("etcd not ready after %v", readyTimeout)
	}
	go s.watch()
	return nil
}

// watch closes done when etcd stops serving without Close being called.
func (s *server) watch() {
	select {
	case err := <-s.e.Err():
		s.log.Error("etcd failed", "err", err)
	case <-s.e.Server.StopNotify():
		s.log.Error("etcd server stopped")
	case <-s.stopping:
		return
	}
	select {
	case <-s.stopping: // the failure is Close at work
	default:
		close(s.done)
	}
}

func (s *server) Done() <-chan struct{} { return s.done }

func (s *server) Close() error {
	s.closeOnce.Do(func() {
		close(s.stopping)
		// A clean stop makes etcd log its closing listeners as errors
		// ("setting up serving from embedded etcd failed ... use of closed
		// network connection"); they would only mislead.
		s.etcdLog.SetLevel(zapcore.FatalLevel)
		if s.e != nil {
			s.e.Close()
		}
	})
	return nil
}
