package bench

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestSpanBreakdownSteps drives the breakdown with the diskless write
// path's spans, as the log service starts and ends them (a flush's upload
// and commit are children of its first batch's wait span), at chosen
// times, and checks the steps between them and the per-name durations.
func TestSpanBreakdownSteps(t *testing.T) {
	b := NewSpanBreakdown()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
	defer tp.Shutdown(context.Background())
	tr := tp.Tracer("test")
	t0 := time.Unix(1000, 0)
	at := func(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }

	// Flush 1: added at 0, cut and uploaded 3..10, committed 11..13 (a
	// second, partial commit 14..15 must not count as another turn),
	// result delivered at 13.5.
	ctx, wait := tr.Start(context.Background(), spanBufferWait, trace.WithTimestamp(at(0)))
	_, up := tr.Start(ctx, spanFlushUpload, trace.WithTimestamp(at(3)))
	up.End(trace.WithTimestamp(at(10)))
	_, c := tr.Start(ctx, spanFlushCommit, trace.WithTimestamp(at(11)))
	c.End(trace.WithTimestamp(at(13)))
	_, c2 := tr.Start(ctx, spanFlushCommit, trace.WithTimestamp(at(14)))
	c2.End(trace.WithTimestamp(at(15)))
	wait.End(trace.WithTimestamp(at(15.5)))
	// An unrelated span counts by name only.
	_, other := tr.Start(context.Background(), "kafka.Produce", trace.WithTimestamp(at(0)))
	other.End(trace.WithTimestamp(at(16)))

	got := map[string]StepStats{}
	for _, s := range b.Stats() {
		got[s.Name] = s
	}
	want := map[string]struct {
		count int
		p50   time.Duration
	}{
		stepCutWait:       {1, 3 * time.Millisecond},
		spanFlushUpload:   {1, 7 * time.Millisecond},
		stepCommitTurn:    {1, time.Millisecond},
		spanFlushCommit:   {2, time.Millisecond},       // 2 ms and 1 ms: nearest rank takes the lower
		stepResultHandOff: {1, 500 * time.Microsecond}, // from the last commit's end
		spanBufferWait:    {1, 15500 * time.Microsecond},
		"kafka.Produce":   {1, 16 * time.Millisecond},
	}
	for name, w := range want {
		s, ok := got[name]
		if !ok {
			t.Errorf("%s: not recorded; got %v", name, b.Stats())
			continue
		}
		if s.Count != w.count || s.P50 != w.p50 {
			t.Errorf("%s: count %d p50 %v, want %d and %v", name, s.Count, s.P50, w.count, w.p50)
		}
	}
	if s := got[spanFlushCommit]; s.P999 != time.Millisecond || s.Max != 2*time.Millisecond {
		t.Errorf("%s: p999 %v max %v, want 1ms (the rank rounds down, as p50's) and 2ms", spanFlushCommit, s.P999, s.Max)
	}
	if len(got) != len(want) {
		t.Errorf("recorded %d names, want %d: %v", len(got), len(want), b.Stats())
	}
	// The per-batch state is dropped when the batch's wait span ends.
	if len(b.waitStart)+len(b.uploadEnd)+len(b.commitEnds) != 0 {
		t.Errorf("state left after the batch ended: %d %d %d", len(b.waitStart), len(b.uploadEnd), len(b.commitEnds))
	}
	b.Reset()
	if s := b.Stats(); len(s) != 0 {
		t.Errorf("after Reset: %v", s)
	}
}
