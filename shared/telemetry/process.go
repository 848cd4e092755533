package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// ErrListen wraps a failure to bind the HTTP address (as opposed to an
// invalid one).
var ErrListen = errors.New("listen")

// Options configure a process's telemetry.
type Options struct {
	// Service is the OpenTelemetry service.name (gateway, logsvc, uploader,
	// streamline).
	Service string
	// HTTPAddr serves /metrics, /healthz and /readyz; "" serves nothing
	// (metrics are still collected, and tracing does not depend on it).
	HTTPAddr string
	Logger   *slog.Logger
}

// Process is the telemetry of one binary: its tracer provider, its metrics
// registry and, with an HTTP address, the server exposing them.
type Process struct {
	TracerProvider trace.TracerProvider
	Registry       *prometheus.Registry
	HTTP           *Server // nil without an HTTP address

	shutdown func(context.Context) error
	log      *slog.Logger
}

// Start builds the tracer provider from the environment (see
// NewTracerProvider), a registry, and the HTTP server. An invalid address
// is an error as is; a failure to bind it wraps ErrListen.
func Start(ctx context.Context, o Options) (*Process, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := ValidateAddr(o.HTTPAddr); err != nil {
		return nil, err
	}
	tp, shutdown, err := NewTracerProvider(ctx, o.Service)
	if err != nil {
		return nil, err
	}
	p := &Process{TracerProvider: tp, Registry: NewRegistry(), shutdown: shutdown, log: o.Logger}
	LogTracing(tp, o.Service, o.Logger)
	if o.HTTPAddr != "" {
		if p.HTTP, err = Listen(o.HTTPAddr, p.Registry, o.Logger); err != nil {
			shutdown(ctx)
			return nil, fmt.Errorf("%w: %w", ErrListen, err)
		}
		o.Logger.Info("serving /metrics, /healthz and /readyz", "http", p.HTTP.Addr())
	}
	return p, nil
}

// LogTracing says whether tp exports spans and, if it does, routes
// OpenTelemetry's internal errors (an unreachable collector) to log: they
// are logged, never fatal.
func LogTracing(tp trace.TracerProvider, service string, log *slog.Logger) {
	if !Enabled(tp) {
		return
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("opentelemetry", "err", err) }))
	log.Info("tracing on: exporting spans over OTLP/gRPC", "service", service)
}

// SetReady makes /readyz answer 200: the service started and registered.
func (p *Process) SetReady() {
	if p.HTTP != nil {
		p.HTTP.SetReady(true)
	}
}

// AddReadyCheck makes /readyz fail while check fails (Server.AddReadyCheck).
func (p *Process) AddReadyCheck(check func() error) {
	if p.HTTP != nil {
		p.HTTP.AddReadyCheck(check)
	}
}

// Close flushes buffered spans (for up to 3 s: a collector that is down
// must not hold up a shutdown) and stops the HTTP server.
func (p *Process) Close() error {
	var err error
	if p.HTTP != nil {
		p.HTTP.SetReady(false)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if e := p.shutdown(ctx); e != nil {
		p.log.Warn("flushing spans", "err", e)
	}
	if p.HTTP != nil {
		err = p.HTTP.Close()
	}
	return err
}
