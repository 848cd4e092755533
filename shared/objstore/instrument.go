package objstore

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamline-dev/streamline/shared/telemetry"
)

// Operations as metric labels and span names.
const (
	opPut = iota
	opGet
	opHead
	opList
	opDelete
	numOps
)

var (
	opLabels    = [numOps]string{"put", "get", "head", "list", "delete"}
	opSpanNames = [numOps]string{"objstore.PUT", "objstore.GET", "objstore.HEAD", "objstore.LIST", "objstore.DELETE"}
)

// Instrument returns b measured and traced: every operation's latency
// (streamline_objstore_op_duration_seconds{op}, op put, get, head, list or
// delete; Put and PutReader are both put, Get and GetRange both get),
// failures (streamline_objstore_op_errors_total{op}; a missing object and a
// canceled context, such as the losing attempt of a hedged upload, are not
// failures) and bytes moved (streamline_objstore_bytes_total{op} for put
// and get), registered with reg (nil: not exported). With tracing on (tp,
// see telemetry.Enabled), an operation whose context carries a recording
// span gets a child span objstore.PUT, objstore.GET, ...; background work
// without one (garbage collection, prefetch) starts no trace. Closing the
// result closes b.
func Instrument(b Bucket, reg prometheus.Registerer, tp trace.TracerProvider) Bucket {
	dur := telemetry.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: telemetry.Namespace, Subsystem: "objstore", Name: "op_duration_seconds",
		Help:    "Latency of object store operations by op (put, get, head, list, delete).",
		Buckets: telemetry.LatencyBuckets,
	}, []string{"op"}))
	errs := telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: telemetry.Namespace, Subsystem: "objstore", Name: "op_errors_total",
		Help: "Failed object store operations by op (not counted: missing objects, canceled contexts).",
	}, []string{"op"}))
	bytes := telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: telemetry.Namespace, Subsystem: "objstore", Name: "bytes_total",
		Help: "Bytes written (op=put) and read (op=get) through the object store.",
	}, []string{"op"}))
	in := &instrumented{b: b, tracer: telemetry.Tracer(tp, "github.com/streamline-dev/streamline/shared/objstore")}
	for op := range numOps {
		in.dur[op] = dur.WithLabelValues(opLabels[op])
		in.errs[op] = errs.WithLabelValues(opLabels[op])
	}
	in.putBytes, in.getBytes = bytes.WithLabelValues("put"), bytes.WithLabelValues("get")
	return in
}

type instrumented struct {
	b                  Bucket
	tracer             trace.Tracer // nil: tracing off
	dur                [numOps]prometheus.Observer
	errs               [numOps]prometheus.Counter
	putBytes, getBytes prometheus.Counter
}

// start begins an operation: its span, if the caller is traced.
func (in *instrumented) start(ctx context.Context, op int, key string) (context.Context, trace.Span, time.Time) {
	var span trace.Span
	if in.tracer != nil && telemetry.Recording(ctx) {
		ctx, span = in.tracer.Start(ctx, opSpanNames[op], trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("objstore.key", key)))
	}
	return ctx, span, time.Now()
}

// end records an operation's outcome.
func (in *instrumented) end(op int, span trace.Span, began time.Time, n int64, err error) {
	in.dur[op].Observe(time.Since(began).Seconds())
	failed := err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, context.Canceled)
	if failed {
		in.errs[op].Inc()
	}
	switch {
	case err != nil:
	case op == opPut:
		in.putBytes.Add(float64(n))
	case op == opGet:
		in.getBytes.Add(float64(n))
	}
	if span != nil {
		span.SetAttributes(attribute.Int64("objstore.bytes", n))
		if err != nil {
			span.RecordError(err)
			if failed {
				span.SetStatus(codes.Error, err.Error())
			}
		}
		span.End()
	}
}

func (in *instrumented) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, span, began := in.start(ctx, opGet, key)
	b, err := in.b.Get(ctx, key)
	in.end(opGet, span, began, int64(len(b)), err)
	return b, err
}

func (in *instrumented) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	ctx, span, began := in.start(ctx, opGet, key)
	if span != nil {
		span.SetAttributes(attribute.Int64("objstore.range.offset", off), attribute.Int64("objstore.range.length", length))
	}
	b, err := in.b.GetRange(ctx, key, off, length)
	in.end(opGet, span, began, int64(len(b)), err)
	return b, err
}

func (in *instrumented) Size(ctx context.Context, key string) (int64, error) {
	ctx, span, began := in.start(ctx, opHead, key)
	n, err := in.b.Size(ctx, key)
	in.end(opHead, span, began, 0, err)
	return n, err
}

// Iter's time includes fn's: the walk and its consumer interleave.
func (in *instrumented) Iter(ctx context.Context, prefix string, fn func(key string) error) error {
	ctx, span, began := in.start(ctx, opList, prefix)
	err := in.b.Iter(ctx, prefix, fn)
	in.end(opList, span, began, 0, err)
	return err
}

func (in *instrumented) Put(ctx context.Context, key string, data []byte) error {
	ctx, span, began := in.start(ctx, opPut, key)
	err := in.b.Put(ctx, key, data)
	in.end(opPut, span, began, int64(len(data)), err)
	return err
}

// PutReader is a put like any other: op put, size bytes.
func (in *instrumented) PutReader(ctx context.Context, key string, r io.Reader, size int64) error {
	ctx, span, began := in.start(ctx, opPut, key)
	err := in.b.PutReader(ctx, key, r, size)
	in.end(opPut, span, began, size, err)
	return err
}

func (in *instrumented) Delete(ctx context.Context, key string) error {
	ctx, span, began := in.start(ctx, opDelete, key)
	err := in.b.Delete(ctx, key)
	in.end(opDelete, span, began, 0, err)
	return err
}

func (in *instrumented) Close() error { return in.b.Close() }

// SpreadsKeys implements KeySpreading for the wrapped bucket.
func (in *instrumented) SpreadsKeys() bool { return SpreadsKeys(in.b) }
