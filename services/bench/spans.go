package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Span names of the diskless write path (package disklessstore): a batch's
// time in the node's buffer, parent of its flush's upload and commit.
const (
	spanBufferWait    = "logsvc.buffer.wait"
	spanFlushUpload   = "logsvc.diskless.upload"
	spanFlushCommit   = "logsvc.diskless.commit"
	stepCutWait       = "diskless: first batch Add -> flush cut (buffer wait before upload)"
	stepCommitTurn    = "diskless: upload end -> commit start (turn)"
	stepResultHandOff = "diskless: commit end -> batch result delivered"
)

// SpanBreakdown is an OpenTelemetry span processor that keeps the duration
// of every span the server under test ends, by span name, and splits a
// diskless batch's time in the buffer into its steps: waiting for its
// flush to be cut, the upload, waiting for the commit's turn, the commit,
// and the hand-off of the result back to the batch. A flush's spans are
// children of its first batch's wait span, so the steps are measured for
// that batch. It answers where a produce request's time goes; with every
// request traced it costs some throughput, so it is for latency runs.
type SpanBreakdown struct {
	mu        sync.Mutex
	durations map[string][]time.Duration
	// Per first batch of a flush (its wait span's ID): when the batch
	// was added, and when its flush's upload and last commit ended.
	waitStart  map[trace.SpanID]time.Time
	uploadEnd  map[trace.SpanID]time.Time
	commitEnds map[trace.SpanID]time.Time
}

var _ sdktrace.SpanProcessor = (*SpanBreakdown)(nil)

// NewSpanBreakdown returns an empty breakdown; register it with
// sdktrace.WithSpanProcessor on the server's TracerProvider.
func NewSpanBreakdown() *SpanBreakdown {
	return &SpanBreakdown{
		durations: map[string][]time.Duration{},
		waitStart: map[trace.SpanID]time.Time{}, uploadEnd: map[trace.SpanID]time.Time{},
		commitEnds: map[trace.SpanID]time.Time{},
	}
}

// OnStart implements sdktrace.SpanProcessor.
func (b *SpanBreakdown) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch s.Name() {
	case spanBufferWait:
		b.waitStart[s.SpanContext().SpanID()] = s.StartTime()
	case spanFlushUpload:
		if at, ok := b.waitStart[s.Parent().SpanID()]; ok {
			b.add(stepCutWait, s.StartTime().Sub(at))
		}
	case spanFlushCommit:
		if at, ok := b.uploadEnd[s.Parent().SpanID()]; ok {
			b.add(stepCommitTurn, s.StartTime().Sub(at))
			// A flush may commit in several calls (a partition at a time
			// when another flush holds an earlier part): the first counts.
			delete(b.uploadEnd, s.Parent().SpanID())
		}
	}
}

// OnEnd implements sdktrace.SpanProcessor.
func (b *SpanBreakdown) OnEnd(s sdktrace.ReadOnlySpan) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.add(s.Name(), s.EndTime().Sub(s.StartTime()))
	switch s.Name() {
	case spanFlushUpload:
		b.uploadEnd[s.Parent().SpanID()] = s.EndTime()
	case spanFlushCommit:
		b.commitEnds[s.Parent().SpanID()] = s.EndTime()
	case spanBufferWait:
		id := s.SpanContext().SpanID()
		if at, ok := b.commitEnds[id]; ok {
			b.add(stepResultHandOff, s.EndTime().Sub(at))
		}
		delete(b.waitStart, id)
		delete(b.uploadEnd, id)
		delete(b.commitEnds, id)
	}
}

func (b *SpanBreakdown) add(name string, d time.Duration) {
	b.durations[name] = append(b.durations[name], d)
}

// Shutdown implements sdktrace.SpanProcessor.
func (b *SpanBreakdown) Shutdown(context.Context) error { return nil }

// ForceFlush implements sdktrace.SpanProcessor.
func (b *SpanBreakdown) ForceFlush(context.Context) error { return nil }

// Reset forgets what was recorded (between runs).
func (b *SpanBreakdown) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.durations)
}

// StepStats are the percentiles of one span name's (or step's) durations.
type StepStats struct {
	Name                     string
	Count                    int
	P50, P90, P99, P999, Max time.Duration
}

// Stats returns every span name's and step's percentiles, by name.
func (b *SpanBreakdown) Stats() []StepStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []StepStats
	for name, ds := range b.durations {
		s := slices.Clone(ds)
		slices.Sort(s)
		out = append(out, StepStats{Name: name, Count: len(s), P50: nearestRank(s, 0.50), P90: nearestRank(s, 0.90), P99: nearestRank(s, 0.99), P999: nearestRank(s, 0.999), Max: s[len(s)-1]})
	}
	slices.SortFunc(out, func(a, b StepStats) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Print writes the breakdown as a table, milliseconds.
func (b *SpanBreakdown) Print(w io.Writer) {
	fmt.Fprintf(w, "%-70s %8s %8s %8s %8s %8s %8s\n", "server span (or diskless step)", "count", "p50 ms", "p90 ms", "p99 ms", "p999 ms", "max ms")
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for _, s := range b.Stats() {
		fmt.Fprintf(w, "%-70s %8d %8.2f %8.2f %8.2f %8.2f %8.2f\n", s.Name, s.Count, ms(s.P50), ms(s.P90), ms(s.P99), ms(s.P999), ms(s.Max))
	}
}
