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
