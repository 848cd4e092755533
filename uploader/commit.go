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
	"github.com/streamline-dev/streamline/uploader/merge"
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

// AdvanceLogStart passes a trim (DeleteRecords, retention) through.
func (t *timedCommitter) AdvanceLogStart(ctx context.Context, topic string, id meta.TopicID, p int32, leaderRevision, start int64) (int64, error) {
	return t.c.AdvanceLogStart(ctx, topic, id, p, leaderRevision, start)
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
		Help: "Objects the elected garbage collector judged, by result: deleted (unreferenced, older than the grace period), kept, skipped (key of no known format), failed (deletion failed; retried next pass), waiting (unreferenced, lingering before deletion).",
	}, []string{"result"}))
	passes := telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: telemetry.Namespace, Subsystem: "uploader", Name: "gc_passes_total",
		Help: "Garbage collection passes, by result (ok, error).",
	}, []string{"result"}))
	reaped := telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: telemetry.Namespace, Subsystem: "uploader", Name: "gc_deleted_topic_manifest_keys_total",
		Help: "Manifest keys of deleted topics the elected garbage collector deleted (a large manifest is deleted a chunk at a time after its topic).",
	}))
	return func(st gc.Stats, err error) {
		reaped.Add(float64(st.ReapedKeys))
		objects.WithLabelValues("deleted").Add(float64(st.Deleted))
		objects.WithLabelValues("kept").Add(float64(st.Kept))
		objects.WithLabelValues("skipped").Add(float64(st.Skipped))
		objects.WithLabelValues("failed").Add(float64(st.Failed))
		objects.WithLabelValues("waiting").Add(float64(st.Waiting))
		result := "ok"
		if err != nil {
			result = "error"
		}
		passes.WithLabelValues(result).Inc()
	}
}

// segmentMetrics counts the segments UploadSegment stored (hybrid topics'
// sealed segments): streamline_uploader_segments_total and
// streamline_uploader_segment_bytes_total (their record batch bytes).
func segmentMetrics(reg prometheus.Registerer) func(meta.Coords) {
	segments := telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: telemetry.Namespace, Subsystem: "uploader", Name: "segments_total",
		Help: "Segment objects UploadSegment stored (hybrid topics' sealed segments; committed or not).",
	}))
	bytes := telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: telemetry.Namespace, Subsystem: "uploader", Name: "segment_bytes_total",
		Help: "Bytes of record batches in the segment objects UploadSegment stored.",
	}))
	return func(c meta.Coords) {
		segments.Inc()
		bytes.Add(float64(c.Length))
	}
}

// mergeMetrics exports what the merger's passes see and do:
// streamline_manifest_entries{topic} and streamline_manifest_bytes{topic}
// (etcd keys and bytes of diskless manifests), streamline_merge_lag_seconds
// (age of the oldest range not merged yet), and counters of segments
// written, entries replaced, bytes merged, lost races and failures.
func mergeMetrics(reg prometheus.Registerer) func(merge.Stats, error) {
	entries := telemetry.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: telemetry.Namespace, Subsystem: "manifest", Name: "entries",
		Help: "Manifest entries (etcd keys of committed ranges and segments) of diskless partitions, by topic, as the elected merger last scanned them.",
	}, []string{"topic"}))
	bytes := telemetry.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: telemetry.Namespace, Subsystem: "manifest", Name: "bytes",
		Help: "Bytes of manifest keys and values in etcd, by topic, as the elected merger last scanned them.",
	}, []string{"topic"}))
	lag := telemetry.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: telemetry.Namespace, Subsystem: "merge", Name: "lag_seconds",
		Help: "Age of the oldest committed intake range not yet merged into a segment (the elected merger's last pass).",
	}))
	count := func(name, help string) prometheus.Counter {
		return telemetry.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Subsystem: "merge", Name: name, Help: help}))
	}
	segments := count("segments_total", "Segment objects the merger wrote and swapped into manifests.")
	sources := count("replaced_entries_total", "Manifest entries replaced by merged segments.")
	merged := count("bytes_total", "Bytes of record batches merged into segment objects.")
	conflicts := count("conflicts_total", "Merges whose swap lost a race with retention, DeleteRecords, a topic deletion or another merge (their objects are garbage).")
	failed := count("failures_total", "Merges that failed (a read, a corrupt source, a PUT); their sources are left in place.")
	passes := telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: telemetry.Namespace, Subsystem: "merge", Name: "passes_total",
		Help: "Merge passes, by result (ok, error).",
	}, []string{"result"}))
	return func(st merge.Stats, err error) {
		entries.Reset()
		bytes.Reset()
		for topic, ts := range st.PerTopic {
			entries.WithLabelValues(topic).Set(float64(ts.Entries))
			bytes.WithLabelValues(topic).Set(float64(ts.Bytes))
		}
		lag.Set(st.Lag.Seconds())
		segments.Add(float64(st.Segments))
		sources.Add(float64(st.Sources))
		merged.Add(float64(st.Bytes))
		conflicts.Add(float64(st.Conflicts))
		failed.Add(float64(st.Failed))
		result := "ok"
		if err != nil {
			result = "error"
		}
		passes.WithLabelValues(result).Inc()
	}
}
