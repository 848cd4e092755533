package uploader

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/telemetry"
	"github.com/streamline-dev/streamline/uploader/gc"
	"github.com/streamline-dev/streamline/uploader/upload"
)

// timedCommitter measures and traces the etcd commit of a flush's
// coordinates: streamline_etcd_commit_duration_seconds{op="diskless_commit"}
// and, inside a traced Commit call, a span etcd.commit.
type timedCommitter struct {
	c      upload.Committer
	dur    prometheus.Observer
	tracer trace.Tracer // nil: not tracing
}

func newTimedCommitter(c upload.Committer, reg prometheus.Registerer, tp trace.TracerProvider) *timedCommitter {
	return &timedCommitter{
		c:      c,
		dur:    telemetry.EtcdCommitDuration(reg).WithLabelValues(telemetry.OpDisklessCommit),
		tracer: telemetry.Tracer(tp, "github.com/streamline-dev/streamline/uploader"),
	}
}

func (t *timedCommitter) Commit(ctx context.Context, commits []meta.PartitionCommit) []error {
	var span trace.Span
	if t.tracer != nil && telemetry.Recording(ctx) {
		ctx, span = t.tracer.Start(ctx, "etcd.commit", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
			attribute.String("db.system.name", "etcd"), attribute.String("db.operation.name", "txn"),
			attribute.Int("streamline.partitions", len(commits))))
	}
	began := time.Now()
	errs := t.c.Commit(ctx, commits)
	t.dur.Observe(time.Since(began).Seconds())
	if span != nil {
		failed := 0
		for _, err := range errs {
			if err != nil {
				failed++
				span.RecordError(err)
			}
		}
		span.SetAttributes(attribute.Int("streamline.partitions_failed", failed))
		if failed > 0 {
			span.SetStatus(codes.Error, "some partitions were not committed")
		}
		span.End()
	}
	return errs
}

// gcMetrics counts what the garbage collector's passes do:
// streamline_uploader_gc_objects_total{result} (deleted, kept, skipped,
// failed) and streamline_uploader_gc_passes_total{result} (ok, error).
func gcMetrics(reg prometheus.Registerer) func(gc.Stats, error) {
	objects := telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: telemetry.Namespace, Subsystem: "uploader", Name: "gc_objects_total",
		Help: "Objects the elected garbage collector judged, by result: deleted (unreferenced, older than the grace period), kept, skipped (key of no known format), failed (deletion failed; retried next pass).",
	}, []string{"result"}))
	passes := telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: telemetry.Namespace, Subsystem: "uploader", Name: "gc_passes_total",
		Help: "Garbage collection passes, by result (ok, error).",
	}, []string{"result"}))
	return func(st gc.Stats, err error) {
		objects.WithLabelValues("deleted").Add(float64(st.Deleted))
		objects.WithLabelValues("kept").Add(float64(st.Kept))
		objects.WithLabelValues("skipped").Add(float64(st.Skipped))
		objects.WithLabelValues("failed").Add(float64(st.Failed))
		result := "ok"
		if err != nil {
			result = "error"
		}
		passes.WithLabelValues(result).Inc()
	}
}
