package buffer

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestPerItemThresholds: a batch's own MaxDelay (its topic's
// batch_timeout_ms) cuts the flush when it is shorter than the buffer's,
// even if it arrived after a batch with the default; and its own
// MaxBatchBytes (batch_size_bytes) cuts as soon as the pending bytes reach
// it.
func TestPerItemThresholds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(false)
		b := New(Config{MaxDelay: 100 * time.Millisecond, MaxBatchBytes: 1 << 20}, s.flush)
		start := time.Now()
		mustAdd(t, b, item("slow", 0, 10))
		time.Sleep(10 * time.Millisecond)
		fast := item("fast", 0, 10)
		fast.MaxDelay = 20 * time.Millisecond
		mustAdd(t, b, fast)
		time.Sleep(19 * time.Millisecond)
		synctest.Wait()
		if up, _ := s.snapshot(); len(up) != 0 {
			t.Fatal("flushed before the short deadline")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		up, _ := s.snapshot()
		if len(up) != 1 || len(up[0].Items) != 2 {
			t.Fatalf("uploads %d, want one flush of both batches at the short deadline", len(up))
		}
		if got := s.uploadedAt[0].Sub(start); got != 30*time.Millisecond {
			t.Fatalf("flushed after %v, want 30ms (10ms + the fast batch's 20ms)", got)
		}

		// A small per-item size threshold cuts at once.
		small := item("small", 0, 64)
		small.MaxBatchBytes = 50
		mustAdd(t, b, small)
		synctest.Wait()
		if up, _ := s.snapshot(); len(up) != 2 {
			t.Fatalf("uploads %d, want the small-threshold batch flushed at once", len(up))
		}
		b.Close(t.Context())
	})
}
