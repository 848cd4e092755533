package telemetry

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
)

// Propagator carries trace context between processes: W3C traceparent and
// tracestate, plus baggage. Every Streamline client and server uses it
// explicitly (never OpenTelemetry's global, which is a no-op by default).
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// TracingConfigured reports whether the environment asks for traces to be
// exported: some OTEL_EXPORTER_OTLP_* variable is set (or
// OTEL_TRACES_EXPORTER=otlp), and neither OTEL_SDK_DISABLED=true nor
// OTEL_TRACES_EXPORTER=none turns it off.
func TracingConfigured() bool {
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER"))) {
	case "none":
		return false
	case "otlp":
		return true
	}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "OTEL_EXPORTER_OTLP_") && v != "" {
			return true
		}
	}
	return false
}

// NewTracerProvider returns the tracer provider of a process whose
// service.name is service (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
// override it), and the function that flushes and stops it.
//
// Without an exporter configured (TracingConfigured false) it is the no-op
// provider. Otherwise spans go in batches to an OTLP/gRPC exporter that
// reads the standard variables itself: OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; http://host:4317 is plaintext),
// _HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE, _INSECURE. Sampling
// follows OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (default: parent
// based, always on). An OTLP protocol other than grpc is an error naming
// the variable.
func NewTracerProvider(ctx context.Context, service string) (trace.TracerProvider, func(context.Context) error, error) {
	noShutdown := func(context.Context) error { return nil }
	if !TracingConfigured() {
		return noop.NewTracerProvider(), noShutdown, nil
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		v := strings.TrimSpace(os.Getenv(k))
		if v == "" {
			continue
		}
		if v != "grpc" {
			return nil, nil, fmt.Errorf("%s=%q: only grpc (OTLP over gRPC, port 4317) is supported", k, v)
		}
		break // the signal-specific variable wins over the general one
	}
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("OTLP trace exporter (OTEL_EXPORTER_OTLP_*): %w", err)
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", service)), resource.WithFromEnv())
	if err != nil {
		exp.Shutdown(ctx)
		return nil, nil, fmt.Errorf("trace resource (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME): %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp, tp.Shutdown, nil
}

// Enabled reports whether tp records anything: false for nil and for
// OpenTelemetry's no-op provider. Components check it once and then skip
// every tracing step, so tracing off costs nothing on hot paths.
func Enabled(tp trace.TracerProvider) bool {
	switch tp.(type) {
	case nil, noop.TracerProvider, *noop.TracerProvider:
		return false
	}
	return true
}

// Tracer returns tp's tracer for the instrumentation scope name, or nil
// when tracing is off (see Enabled): callers test for nil before starting
// spans.
func Tracer(tp trace.TracerProvider, name string) trace.Tracer {
	if !Enabled(tp) {
		return nil
	}
	return tp.Tracer(name)
}

// Recording reports whether ctx carries a span that records: child spans
// of background work are started only then, so a GET run by the garbage
// collector or a prefetch does not start a trace of its own.
func Recording(ctx context.Context) bool { return trace.SpanFromContext(ctx).IsRecording() }

// grpcOptions are the otelgrpc options both sides use. The long-lived
// LogService.ProduceStream gets no span of its own (it would last as long
// as the connection and parent nothing useful): each message on it carries
// its Kafka request's trace context and gets a span from the gateway
// (routing) and the log service (logrpc). Health checks are not traced.
func grpcOptions(tp trace.TracerProvider) []otelgrpc.Option {
	return []otelgrpc.Option{
		otelgrpc.WithTracerProvider(tp),
		otelgrpc.WithPropagators(Propagator),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithFilter(filters.None(filters.HealthCheck(), filters.MethodName("ProduceStream"))),
	}
}

// GRPCServerOptions are the server options that trace incoming calls with
// tp (a server span per call, parented by the caller's trace context);
// none when tracing is off.
func GRPCServerOptions(tp trace.TracerProvider) []grpc.ServerOption {
	if h := GRPCServerHandler(tp); h != nil {
		return []grpc.ServerOption{grpc.StatsHandler(h)}
	}
	return nil
}

// GRPCDialOptions are the client options that trace outgoing calls with tp
// and propagate their trace context; none when tracing is off.
func GRPCDialOptions(tp trace.TracerProvider) []grpc.DialOption {
	if h := GRPCClientHandler(tp); h != nil {
		return []grpc.DialOption{grpc.WithStatsHandler(h)}
	}
	return nil
}

// GRPCServerHandler is the stats handler of GRPCServerOptions (nil when
// tracing is off), for servers that take a handler rather than options.
func GRPCServerHandler(tp trace.TracerProvider) stats.Handler {
	if !Enabled(tp) {
		return nil
	}
	return otelgrpc.NewServerHandler(grpcOptions(tp)...)
}

// GRPCClientHandler is the stats handler of GRPCDialOptions (nil when
// tracing is off).
func GRPCClientHandler(tp trace.TracerProvider) stats.Handler {
	if !Enabled(tp) {
		return nil
	}
	return otelgrpc.NewClientHandler(grpcOptions(tp)...)
}

// InjectMap returns the trace context of ctx for a message field (one
// stream message of many, where gRPC metadata cannot carry it), or nil when
// ctx has no sampled span.
func InjectMap(ctx context.Context) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		return nil
	}
	m := propagation.MapCarrier{}
	Propagator.Inject(ctx, m)
	return m
}

// ExtractMap returns ctx with the remote trace context from m (see
// InjectMap); ctx itself when m is empty.
func ExtractMap(ctx context.Context, m map[string]string) context.Context {
	if len(m) == 0 {
		return ctx
	}
	return Propagator.Extract(ctx, propagation.MapCarrier(m))
}
