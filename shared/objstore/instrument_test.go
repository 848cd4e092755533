package objstore_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/streamline-dev/streamline/shared/objstore"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
	"github.com/streamline-dev/streamline/shared/objstore/objstoretest"
)

// The instrumented bucket is still a conforming bucket.
func TestInstrumentedConformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket {
		inner, err := objstorefs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		b := objstore.Instrument(inner, prometheus.NewRegistry(), nil)
		t.Cleanup(func() { b.Close() })
		return b
	})
}

// instrumented returns a directory bucket instrumented with a fresh
// registry and a tracer provider whose ended spans rec records.
func instrumented(t *testing.T) (objstore.Bucket, *prometheus.Registry, *tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	inner, err := objstorefs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	b := objstore.Instrument(inner, reg, tp)
	t.Cleanup(func() { b.Close() })
	return b, reg, rec, tp
}

// TestInstrumentMeasuresAndTraces: every operation is timed by op, real
// failures counted (not a missing object), bytes counted, and an
// operation inside a recording span gets a child span; one without starts
// no trace.
func TestInstrumentMeasuresAndTraces(t *testing.T) {
	b, reg, rec, tp := instrumented(t)

	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	if err := b.Put(ctx, "a/b", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if got, err := b.GetRange(ctx, "a/b", 1, 3); err != nil || string(got) != "ell" {
		t.Fatalf("GetRange: %q %v", got, err)
	}
	parent.End()
	// Untraced: measured, no span.
	if _, err := b.Get(context.Background(), "a/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(context.Background(), "missing"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if err := b.Put(context.Background(), "/bad", []byte("x")); err == nil {
		t.Fatal("invalid key accepted")
	}
	if _, err := b.Size(context.Background(), "a/b"); err != nil {
		t.Fatal(err)
	}
	if err := b.Iter(context.Background(), "a/", func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(context.Background(), "a/b"); err != nil {
		t.Fatal(err)
	}

	for op, want := range map[string]int{"put": 2, "get": 3, "head": 1, "list": 1, "delete": 1} {
		if got := value(t, reg, "streamline_objstore_op_duration_seconds", op); got != float64(want) {
			t.Errorf("op %s: %v observations, want %d", op, got, want)
		}
	}
	errs := map[string]float64{"put": 1, "get": 0}
	for op, want := range errs {
		if got := value(t, reg, "streamline_objstore_op_errors_total", op); got != want {
			t.Errorf("errors of %s: %v, want %v", op, got, want)
		}
	}
	if got := value(t, reg, "streamline_objstore_bytes_total", "put"); got != 5 {
		t.Errorf("put bytes %v, want 5", got)
	}
	if got := value(t, reg, "streamline_objstore_bytes_total", "get"); got != 3+5 {
		t.Errorf("get bytes %v, want 8", got)
	}

	names := map[string]bool{}
	for _, sp := range rec.Ended() {
		names[sp.Name()] = true
		if sp.Name() != "parent" && sp.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("%s is not a child of the caller's span", sp.Name())
		}
	}
	if len(rec.Ended()) != 3 || !names["objstore.PUT"] || !names["objstore.GET"] {
		t.Errorf("spans %v: want parent, objstore.PUT and objstore.GET only (untraced calls start none)", names)
	}
}

// TestInstrumentPutReader: PutReader is measured and traced as a put of
// size bytes, and a failed one (the reader is short) counts as a failure.
func TestInstrumentPutReader(t *testing.T) {
	b, reg, rec, tp := instrumented(t)

	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	if err := b.PutReader(ctx, "a/b", strings.NewReader("streamed"), 8); err != nil {
		t.Fatal(err)
	}
	parent.End()
	if err := b.PutReader(context.Background(), "a/c", strings.NewReader("short"), 8); err == nil {
		t.Fatal("short reader accepted")
	}
	for name, want := range map[string]float64{
		"streamline_objstore_op_duration_seconds": 2,
		"streamline_objstore_op_errors_total":     1,
		"streamline_objstore_bytes_total":         8,
	} {
		if got := value(t, reg, name, "put"); got != want {
			t.Errorf("%s{op=put} = %v, want %v", name, got, want)
		}
	}
	var spans []string
	for _, sp := range rec.Ended() {
		spans = append(spans, sp.Name())
	}
	if !slices.Equal(spans, []string{"objstore.PUT", "parent"}) {
		t.Errorf("spans %q, want objstore.PUT and parent", spans)
	}
}

// value is the sample count (histogram) or value (counter) of name{op}.
func value(t *testing.T, reg *prometheus.Registry, name, op string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == op {
					if m.Histogram != nil {
						return float64(m.GetHistogram().GetSampleCount())
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{op=%q}", name, op)
	return 0
}
