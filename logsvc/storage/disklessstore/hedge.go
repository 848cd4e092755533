package disklessstore

import (
	"context"
	"slices"
	"sync"
	"time"

	uploadv1 "github.com/streamline-dev/streamline/proto/gen/streamline/upload/v1"
)

// Object-store PUT latency has a long tail (S3 Standard: p50 ~60 ms, p99
// ~250 ms, worse beyond), and every later flush's commit waits for a slow
// one, so the tail, not the median, sets produce latency. An upload still
// running after the recent p90 upload time is hedged: the same flush is
// uploaded again (through the next uploader, under a new unique key) and
// whichever PUT finishes first is committed. The loser's object is never
// referenced and garbage collection removes it. Hedging costs at most ~10%
// more PUTs.

const (
	hedgeWindow   = 128 // recent upload durations kept
	minHedgeAfter = 5 * time.Millisecond
	// defaultHedgeAfter applies until enough uploads were seen.
	defaultHedgeAfter = 200 * time.Millisecond
)

type hedger struct {
	mu   sync.Mutex
	durs []time.Duration
	next int
	// Hedged counts hedged uploads (for tests and metrics).
	hedged int
}

func (h *hedger) observe(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.durs) < hedgeWindow {
		h.durs = append(h.durs, d)
		return
	}
	h.durs[h.next] = d
	h.next = (h.next + 1) % hedgeWindow
}

// after is the recent p90 upload duration.
func (h *hedger) after() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.durs) < 20 {
		return defaultHedgeAfter
	}
	s := slices.Clone(h.durs)
	slices.Sort(s)
	return max(s[len(s)*9/10], minHedgeAfter)
}

// upload runs one flush's upload, hedged after the recent p90.
func (e *Engine) upload(ctx context.Context, req *uploadv1.UploadRequest) (*uploadv1.UploadResponse, error) {
	type result struct {
		resp *uploadv1.UploadResponse
		err  error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the losing attempt
	results := make(chan result, 2)
	start := time.Now()
	launch := func() {
		go func() {
			var resp *uploadv1.UploadResponse
			err := e.callUploader(ctx, func(ctx context.Context, c uploadv1.UploadServiceClient) (err error) {
				resp, err = c.Upload(ctx, req)
				return err
			})
			results <- result{resp, err}
		}()
	}
	launch()
	running, hedged := 1, false
	timer := time.NewTimer(e.hedge.after())
	defer timer.Stop()
	var firstErr error
	for {
		select {
		case r := <-results:
			running--
			if r.err == nil {
				e.hedge.observe(time.Since(start))
				return r.resp, nil
			}
			if firstErr == nil {
				firstErr = r.err
			}
			if running == 0 {
				return nil, firstErr
			}
		case <-timer.C:
			if !hedged {
				hedged = true
				running++
				e.hedge.mu.Lock()
				e.hedge.hedged++
				e.hedge.mu.Unlock()
				launch()
			}
		}
	}
}
