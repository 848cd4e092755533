// Package cluster starts Streamline for tests: in-process all-in-one servers
// (fast, for protocol tests), real OS processes of the built binaries (for
// crash tests: SIGKILL, restart on the same data directory), and whole
// multi-process clusters (StartCluster: etcd, logsvc nodes, uploaders and
// gateways, each its own process with a stable node name).
package cluster

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/streamline-dev/streamline/services/allinone"
)

// FreeAddr returns a free 127.0.0.1 port. The port is released before use,
// which is racy in theory; tests accept that to avoid fixed ports, and the
// port is picked below the kernel's ephemeral range so no outgoing
// connection takes it meanwhile (see freePort). Ports handed out in this
// process are distinct.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return freeAddrs(t, 1)[0]
}

// Option adjusts an all-in-one config before start.
type Option func(*allinone.Config)

// WithoutAutoCreate turns auto.create.topics.enable off.
func WithoutAutoCreate() Option { return func(c *allinone.Config) { c.AutoCreateTopics = false } }

// WithDataDir uses dir instead of a fresh temp dir (restart tests).
func WithDataDir(dir string) Option { return func(c *allinone.Config) { c.DataDir = dir } }

// WithAdvertisedAddr makes the gateway tell clients to connect to addr
// (for example a fault-injecting proxy in front of it).
func WithAdvertisedAddr(addr string) Option {
	return func(c *allinone.Config) { c.AdvertisedKafkaAddr = addr }
}

// WithObjectStore uses the object store at url for diskless topics.
func WithObjectStore(url string) Option { return func(c *allinone.Config) { c.ObjectStore = url } }

// WithTracerProvider traces the server's services with tp (for example an
// sdktrace provider with a tracetest.SpanRecorder).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *allinone.Config) { c.TracerProvider = tp }
}

// WithHTTPAddr serves /metrics, /healthz and /readyz on addr (off by
// default in tests; "127.0.0.1:0" picks a port, see Server.HTTPAddr).
func WithHTTPAddr(addr string) Option { return func(c *allinone.Config) { c.HTTPAddr = addr } }

// WithLoopbackRPC puts loopback gRPC connections between the all-in-one's
// services instead of its in-process channels (allinone.Config.LoopbackRPC).
func WithLoopbackRPC() Option { return func(c *allinone.Config) { c.LoopbackRPC = true } }

// StartAllInOne runs an all-in-one server inside the test process on free
// loopback ports, closed when the test ends. It serves no metrics over HTTP
// unless WithHTTPAddr says so.
func StartAllInOne(t testing.TB, opts ...Option) *allinone.Server {
	t.Helper()
	cfg := allinone.Default()
	cfg.DataDir = t.TempDir()
	ports := FreeAddrs(t, 4)
	cfg.KafkaAddr, cfg.EtcdClientAddr, cfg.EtcdPeerAddr, cfg.AdminAddr = ports[0], ports[1], ports[2], ports[3]
	cfg.HTTPAddr = ""
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := allinone.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start all-in-one: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}
