package telemetry_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/streamline-dev/streamline/shared/telemetry"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServerEndpoints(t *testing.T) {
	reg := telemetry.NewRegistry()
	c := telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "streamline_test_things_total", Help: "things"}))
	c.Add(3)
	s, err := telemetry.Listen("127.0.0.1:0", reg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr()
	if code, _ := httpGet(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz before ready: %d, want 200", code)
	}
	if code, _ := httpGet(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before ready: %d, want 503", code)
	}
	s.SetReady(true)
	if code, _ := httpGet(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz when ready: %d, want 200", code)
	}
	code, body := httpGet(t, base+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "streamline_test_things_total 3") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, _ := httpGet(t, base+"/nothing"); code != http.StatusNotFound {
		t.Errorf("/nothing: %d, want 404", code)
	}
}

func TestListenErrors(t *testing.T) {
	for _, bad := range []string{"9094", "localhost", "host:port", "127.0.0.1:70000"} {
		if err := telemetry.ValidateAddr(bad); err == nil {
			t.Errorf("ValidateAddr(%q) accepted", bad)
		}
	}
	for _, good := range []string{"", ":9094", "127.0.0.1:0", "[::1]:9094", "localhost:9094"} {
		if err := telemetry.ValidateAddr(good); err != nil {
			t.Errorf("ValidateAddr(%q): %v", good, err)
		}
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, err = telemetry.Start(context.Background(), telemetry.Options{Service: "x", HTTPAddr: busy.Addr().String(), Logger: quiet()})
	if !errors.Is(err, telemetry.ErrListen) {
		t.Fatalf("busy address: %v, want ErrListen", err)
	}
}

func TestRegisterSharesIdenticalCollectors(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "streamline_test_total", Help: "h"}
	a := telemetry.Register(reg, prometheus.NewCounterVec(opts, []string{"op"}))
	b := telemetry.Register(reg, prometheus.NewCounterVec(opts, []string{"op"}))
	if a != b {
		t.Fatal("second identical registration did not return the first collector")
	}
	h1 := telemetry.EtcdCommitDuration(reg)
	h2 := telemetry.EtcdCommitDuration(reg)
	if h1 != h2 {
		t.Fatal("EtcdCommitDuration registered twice")
	}
	if telemetry.Register[prometheus.Counter](nil, prometheus.NewCounter(opts)) == nil {
		t.Fatal("nil registry")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a clashing definition did not panic")
		}
	}()
	telemetry.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "streamline_test_total", Help: "other"}, []string{"x"}))
}

func TestByModeResolvesOnce(t *testing.T) {
	calls := map[string]int{}
	b := telemetry.NewByMode(func(mode string) string { calls[mode]++; return "child-" + mode })
	for range 3 {
		for _, m := range []string{"local", "hybrid", "diskless"} {
			if got := b.For(m); got != "child-"+m {
				t.Fatalf("For(%s) = %s", m, got)
			}
		}
	}
	if b.For("tape") != "child-tape" || calls["local"] != 1 || calls["diskless"] != 1 || calls["tape"] != 1 {
		t.Fatalf("calls %v", calls)
	}
	// A pre-resolved child costs no allocation.
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h", Buckets: telemetry.LatencyBuckets}, []string{"storage_mode"})
	obs := telemetry.NewByMode(func(mode string) prometheus.Observer { return h.WithLabelValues(mode) })
	if n := testing.AllocsPerRun(100, func() { obs.For("diskless").Observe(0.001) }); n != 0 {
		t.Fatalf("%v allocations per observation", n)
	}
}

func TestTracingOffWithoutEnvironment(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"} {
		t.Setenv(k, "")
	}
	tp, shutdown, err := telemetry.NewTracerProvider(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	if telemetry.Enabled(tp) || telemetry.Tracer(tp, "x") != nil {
		t.Fatal("tracing on without any OTEL_EXPORTER_OTLP_* variable")
	}
	if telemetry.GRPCServerOptions(tp) != nil || telemetry.GRPCDialOptions(tp) != nil {
		t.Fatal("gRPC stats handlers installed with tracing off")
	}
	if telemetry.Enabled(nil) || telemetry.Enabled(noop.NewTracerProvider()) {
		t.Fatal("nil or no-op provider reported enabled")
	}

	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
	if !telemetry.TracingConfigured() {
		t.Fatal("OTEL_EXPORTER_OTLP_ENDPOINT set, tracing not configured")
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	if telemetry.TracingConfigured() {
		t.Fatal("OTEL_TRACES_EXPORTER=none did not turn tracing off")
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	if _, _, err := telemetry.NewTracerProvider(context.Background(), "test"); err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_PROTOCOL") {
		t.Fatalf("http/protobuf: %v, want an error naming the variable", err)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	tp, shutdown, err = telemetry.NewTracerProvider(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if !telemetry.Enabled(tp) {
		t.Fatal("OTLP configured but tracing off")
	}
	// Nothing listens there: shutting down must still return.
	ctx, cancel := context.WithTimeout(context.Background(), 1)
	defer cancel()
	shutdown(ctx)
}

func TestMapPropagation(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, parent := tp.Tracer("t").Start(context.Background(), "parent")
	if !telemetry.Recording(ctx) || telemetry.Recording(context.Background()) {
		t.Fatal("Recording")
	}
	m := telemetry.InjectMap(ctx)
	if m["traceparent"] == "" {
		t.Fatalf("no traceparent in %v", m)
	}
	if telemetry.InjectMap(context.Background()) != nil {
		t.Fatal("untraced context injected something")
	}
	remote := telemetry.ExtractMap(context.Background(), m)
	_, child := tp.Tracer("t").Start(remote, "child")
	child.End()
	parent.End()
	if got := trace.SpanContextFromContext(remote); got.TraceID() != parent.SpanContext().TraceID() || !got.IsRemote() {
		t.Fatalf("extracted %v", got)
	}
	ended := rec.Ended()
	if len(ended) != 2 || ended[0].Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("child's parent is not the injected span")
	}
	if telemetry.ExtractMap(ctx, nil) != ctx {
		t.Fatal("empty map changed the context")
	}
}
