// Package telemetry is the observability plumbing every Streamline process
// shares: OpenTelemetry tracing (a tracer provider built from the standard
// OTEL_EXPORTER_OTLP_* environment variables, gRPC stats handlers that
// propagate W3C trace context between services), Prometheus metrics (a
// registry, shared metric definitions, pre-resolved per-storage-mode label
// children) and the HTTP server of /metrics, /healthz and /readyz.
//
// Tracing is off unless the environment configures an exporter: the
// provider is then OpenTelemetry's no-op one, Enabled reports false, the
// services install no gRPC stats handlers and start no spans, so an
// untraced process pays nothing for it. Components take a
// trace.TracerProvider (nil or no-op: off) and a prometheus.Registerer
// (nil: metrics are kept but not exported), so tests can inject a
// tracetest.SpanRecorder and a private registry.
//
// Metric names start with "streamline_"; series of the data path carry a
// storage_mode label (local, hybrid, diskless). See ARCHITECTURE.md,
// "Observability", for the list.
package telemetry
