package buffer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func TestFlushBySize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(false)
		b := New(Config{MaxBatchBytes: 100, MaxDelay: time.Hour}, s.flush)
		start := time.Now()
		a0 := mustAdd(t, b, item("a", 0, 60))
		synctest.Wait()
		if up, _ := s.snapshot(); len(up) != 0 {
			t.Fatalf("flushed %d times below MaxBatchBytes", len(up))
		}
		a1 := mustAdd(t, b, item("a", 1, 60))
		synctest.Wait()
		up, commits := s.snapshot()
		if len(up) != 1 || up[0].Seq != 1 || up[0].Bytes != 120 || len(up[0].Items) != 2 {
			t.Fatalf("uploads = %+v, want one flush of both batches (120 bytes)", up)
		}
		if s.uploadedAt[0] != start {
			t.Errorf("flush after %v, want at once", s.uploadedAt[0].Sub(start))
		}
		if len(commits) != 1 || !slices.Equal(commits[0].streams, []string{"a"}) {
			t.Errorf("commits = %+v", commits)
		}
		for name, ch := range map[string]<-chan error{"a0": a0, "a1": a1} {
			if err := mustResult(t, name, ch); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if st := b.Stats(); st.Flushes != 1 || st.FlushedBytes != 120 || st.CommittedItems != 2 || st.BufferedBytes != 0 {
			t.Errorf("stats = %+v", st)
		}
		mustClose(t, b)
	})
}

// With every upload slot busy, batches accumulate; when a slot frees the
// flush takes only a prefix reaching MaxBatchBytes, and the rest waits for
// its own threshold.
func TestFlushTakesPrefixWhenUploadsSaturated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(true)
		b := New(Config{MaxBatchBytes: 100, MaxDelay: time.Second, MaxInFlight: 1}, s.flush)
		start := time.Now()
		mustAdd(t, b, item("a", 0, 100)) // flush 1, held
		for i := range 3 {
			mustAdd(t, b, item("b", int64(i), 60))
		}
		synctest.Wait()
		if up, _ := s.snapshot(); len(up) != 1 {
			t.Fatalf("%d uploads with MaxInFlight 1", len(up))
		}
		s.release(1, nil)
		synctest.Wait()
		up, _ := s.snapshot()
		if len(up) != 2 || !slices.Equal(keys(up[1]), []string{"b@0", "b@1"}) {
			t.Fatalf("second flush = %v, want b@0 b@1", keys(up[len(up)-1]))
		}
		s.release(2, nil)
		synctest.Wait()
		if up, _ := s.snapshot(); len(up) != 2 {
			t.Fatalf("b@2 (60 bytes) flushed before its deadline")
		}
		time.Sleep(time.Second - time.Since(start))
		synctest.Wait()
		up, _ = s.snapshot()
		if len(up) != 3 || !slices.Equal(keys(up[2]), []string{"b@2"}) {
			t.Fatalf("uploads = %d, want third flush b@2 at its deadline", len(up))
		}
		if got := s.uploadedAt[2].Sub(start); got != time.Second {
			t.Errorf("third flush after %v, want 1s", got)
		}
		s.release(3, nil)
		mustClose(t, b)
	})
}

func TestFlushByTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(false)
		b := New(Config{MaxDelay: 100 * time.Millisecond}, s.flush)
		start := time.Now()
		a0 := mustAdd(t, b, item("a", 0, 10))
		time.Sleep(50 * time.Millisecond)
		mustAdd(t, b, item("b", 0, 10)) // does not restart the window
		time.Sleep(49 * time.Millisecond)
		synctest.Wait()
		if up, _ := s.snapshot(); len(up) != 0 {
			t.Fatalf("flushed after 99ms")
		}
		if _, ok := result(a0); ok {
			t.Fatal("result before flush")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		up, _ := s.snapshot()
		if len(up) != 1 || len(up[0].Items) != 2 {
			t.Fatalf("uploads = %d, want one with both batches", len(up))
		}
		if got := s.uploadedAt[0].Sub(start); got != 100*time.Millisecond {
			t.Errorf("flushed after %v, want 100ms", got)
		}
		if err := mustResult(t, "a0", a0); err != nil {
			t.Error(err)
		}
		// The next window starts with the next batch.
		second := time.Now()
		time.Sleep(30 * time.Millisecond)
		mustAdd(t, b, item("a", 1, 10))
		time.Sleep(99 * time.Millisecond)
		synctest.Wait()
		if up, _ := s.snapshot(); len(up) != 1 {
			t.Fatalf("second flush too early")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if up, _ := s.snapshot(); len(up) != 2 || s.uploadedAt[1].Sub(second) != 130*time.Millisecond {
			t.Fatalf("second flush: %d uploads", len(up))
		}
		mustClose(t, b)
	})
}

func TestFlushGroupsStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(false)
		b := New(Config{MaxDelay: time.Millisecond}, s.flush)
		var chans []<-chan error
		for _, it := range []Item{item("a", 0, 1), item("b", 0, 2), item("a", 1, 3), item("c", 0, 4), item("b", 1, 5)} {
			chans = append(chans, mustAdd(t, b, it))
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		up, commits := s.snapshot()
		if len(up) != 1 {
			t.Fatalf("%d uploads, want 1", len(up))
		}
		f := up[0]
		if want := []string{"a@0", "a@1", "b@0", "b@1", "c@0"}; !slices.Equal(keys(f), want) {
			t.Errorf("items = %v, want %v", keys(f), want)
		}
		if want := []Span{{"a", 0, 2}, {"b", 2, 4}, {"c", 4, 5}}; !slices.Equal(f.Streams, want) {
			t.Errorf("spans = %v, want %v", f.Streams, want)
		}
		if f.Bytes != 15 {
			t.Errorf("Bytes = %d, want 15", f.Bytes)
		}
		if len(commits) != 1 || !slices.Equal(commits[0].streams, []string{"a", "b", "c"}) {
			t.Errorf("commits = %+v", commits)
		}
		for i, ch := range chans {
			if err := mustResult(t, "item", ch); err != nil {
				t.Errorf("item %d: %v", i, err)
			}
		}
		mustClose(t, b)
	})
}

func TestBackpressureBlocksUntilCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(true)
		b := New(Config{MaxBatchBytes: 50, MaxBufferedBytes: 100}, s.flush)
		mustAdd(t, b, item("a", 0, 50)) // flush 1
		mustAdd(t, b, item("a", 1, 50)) // flush 2
		done := make(chan error, 1)
		go func() {
			ch, err := b.Add(context.Background(), item("b", 0, 10))
			if err == nil {
				_, ok := result(ch) // nothing delivered yet: flush 3 not cut
				if ok {
					err = errors.New("result before its flush")
				}
			}
			done <- err
		}()
		synctest.Wait()
		if _, ok := result(done); ok {
			t.Fatal("Add did not block at MaxBufferedBytes")
		}
		if st := b.Stats(); st.Waiting != 1 || st.OverflowWaits != 1 || st.BufferedBytes != 100 {
			t.Fatalf("stats = %+v", st)
		}
		// Upload 2 finishing frees nothing: its bytes are held until its
		// commit, which waits for flush 1.
		s.release(2, nil)
		synctest.Wait()
		if _, ok := result(done); ok {
			t.Fatal("Add resumed before any commit")
		}
		s.release(1, nil)
		synctest.Wait()
		err, ok := result(done)
		if !ok || err != nil {
			t.Fatalf("Add after commits: done=%v err=%v", ok, err)
		}
		if st := b.Stats(); st.BufferedBytes != 10 || st.Waiting != 0 {
			t.Errorf("stats = %+v", st)
		}
		s.release(3, nil)
		mustClose(t, b)
	})
}

func TestBackpressureContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(true)
		b := New(Config{MaxBatchBytes: 50, MaxBufferedBytes: 100, MaxDelay: time.Hour}, s.flush)
		mustAdd(t, b, item("a", 0, 50)) // flush 1, held
		mustAdd(t, b, item("a", 1, 40)) // pending: 90 buffered
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		if _, err := b.Add(ctx, item("b", 0, 20)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Add = %v, want DeadlineExceeded", err)
		}
		if got := time.Since(start); got != time.Second {
			t.Errorf("gave up after %v", got)
		}
		if st := b.Stats(); st.Waiting != 0 || st.OverflowGaveUp != 1 || st.BufferedBytes != 90 {
			t.Errorf("stats after giving up = %+v", st)
		}

		// Waiters are admitted in order: a small batch that would fit waits
		// behind a large one, and goes in as soon as the large one gives up.
		bigCtx, cancelBig := context.WithCancel(context.Background())
		big := make(chan error, 1)
		go func() {
			_, err := b.Add(bigCtx, item("b", 0, 20))
			big <- err
		}()
		synctest.Wait()
		small := make(chan error, 1)
		go func() {
			_, err := b.Add(context.Background(), item("c", 0, 5))
			small <- err
		}()
		synctest.Wait()
		if _, ok := result(small); ok {
			t.Fatal("small batch overtook a waiting large one")
		}
		cancelBig()
		synctest.Wait()
		if err := mustResult(t, "big", big); !errors.Is(err, context.Canceled) {
			t.Errorf("big Add = %v, want Canceled", err)
		}
		if err := mustResult(t, "small", small); err != nil {
			t.Errorf("small Add = %v", err)
		}
		if st := b.Stats(); st.BufferedBytes != 95 {
			t.Errorf("buffered = %d, want 95", st.BufferedBytes)
		}
		s.release(1, nil)
		s.release(2, nil)
		mustClose(t, b)
	})
}

// TestParallelUploadsCommitInStreamOrder: uploads run in parallel and
// finish in any order; a stream commits flush by flush in Seq order, and a
// slow upload holds back only the streams it holds.
func TestParallelUploadsCommitInStreamOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(true)
		b := New(Config{MaxBatchBytes: 10, MaxInFlight: 3}, s.flush)
		a0 := mustAdd(t, b, item("a", 0, 10)) // flush 1
		b0 := mustAdd(t, b, item("b", 0, 10)) // flush 2
		a1 := mustAdd(t, b, item("a", 1, 10)) // flush 3
		c0 := mustAdd(t, b, item("c", 0, 10)) // pending: no free slot
		synctest.Wait()
		if up, _ := s.snapshot(); len(up) != 3 {
			t.Fatalf("%d uploads running, want 3 in parallel", len(up))
		}
		s.release(3, nil)
		synctest.Wait()
		if up, _ := s.snapshot(); len(up) != 4 {
			t.Fatalf("flush 4 not started when a slot freed")
		}
		s.release(2, nil)
		synctest.Wait()
		s.release(4, nil)
		synctest.Wait()
		// Flush 1 (stream a) is still uploading: b and c commit, a1 waits.
		_, commits := s.snapshot()
		if want := []commitCall{{2, []string{"b"}}, {4, []string{"c"}}}; !slices.EqualFunc(commits, want, equalCommit) {
			t.Fatalf("commits %+v while flush 1 uploads, want %+v", commits, want)
		}
		for name, ch := range map[string]<-chan error{"b0": b0, "c0": c0} {
			if err := mustResult(t, name, ch); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if _, ok := result(a1); ok {
			t.Fatal("a1 delivered before a0's flush committed")
		}
		s.release(1, nil)
		synctest.Wait()
		_, commits = s.snapshot()
		var seqs []uint64
		for _, c := range commits {
			seqs = append(seqs, c.seq)
		}
		if !slices.Equal(seqs, []uint64{2, 4, 1, 3}) {
			t.Errorf("commit order %v, want 2 4 1 3", seqs)
		}
		for name, ch := range map[string]<-chan error{"a0": a0, "a1": a1} {
			if err := mustResult(t, name, ch); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if s.maxRunning != 3 {
			t.Errorf("max concurrent uploads %d, want 3", s.maxRunning)
		}
		if st := b.Stats(); st.PartialCommits != 0 {
			t.Errorf("PartialCommits = %d, want 0 (one stream per flush)", st.PartialCommits)
		}
		mustClose(t, b)
	})
}

// TestSlowUploadHoldsBackOnlyItsStreams: a flush whose streams' earlier
// flush is still uploading commits its other streams at once and the rest
// in their turn; if the earlier flush fails, the held-back stream fails
// with it, never committed out of order.
func TestSlowUploadHoldsBackOnlyItsStreams(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("earlier upload fails=%v", fail), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newFakeStore(true)
				b := New(Config{MaxBatchBytes: 20, MaxInFlight: 2}, s.flush)
				a0 := mustAdd(t, b, item("a", 0, 20)) // flush 1: a
				a1 := mustAdd(t, b, item("a", 1, 10)) // flush 2: a, b
				b0 := mustAdd(t, b, item("b", 0, 10))
				synctest.Wait()
				up, _ := s.snapshot()
				if len(up) != 2 {
					t.Fatalf("%d uploads, want 2", len(up))
				}
				for _, f := range up {
					if f.Seq == 2 && len(f.Streams) != 2 {
						t.Fatalf("flush 2 holds %d streams, want a and b", len(f.Streams))
					}
				}
				s.release(2, nil)
				synctest.Wait()
				_, commits := s.snapshot()
				if want := []commitCall{{2, []string{"b"}}}; !slices.EqualFunc(commits, want, equalCommit) {
					t.Fatalf("commits %+v while flush 1 uploads, want %+v", commits, want)
				}
				if err := mustResult(t, "b0", b0); err != nil {
					t.Errorf("b0: %v", err)
				}
				if _, ok := result(a1); ok {
					t.Fatal("a1 delivered before a0")
				}
				var upErr error
				if fail {
					upErr = errors.New("upload refused")
				}
				s.release(1, upErr)
				synctest.Wait()
				_, commits = s.snapshot()
				want := []commitCall{{2, []string{"b"}}, {1, []string{"a"}}, {2, []string{"a"}}}
				if fail {
					want = want[:1] // a fails in flush 1; a1 fails without a commit
				}
				if !slices.EqualFunc(commits, want, equalCommit) {
					t.Errorf("commits %+v, want %+v", commits, want)
				}
				errA0, errA1 := mustResult(t, "a0", a0), mustResult(t, "a1", a1)
				switch {
				case !fail && (errA0 != nil || errA1 != nil):
					t.Errorf("a0: %v, a1: %v; want both committed", errA0, errA1)
				case fail && (!errors.Is(errA0, upErr) || !errors.Is(errA1, ErrStreamFailed)):
					t.Errorf("a0: %v (want the upload error), a1: %v (want ErrStreamFailed)", errA0, errA1)
				}
				if st := b.Stats(); !fail && st.PartialCommits != 2 {
					t.Errorf("PartialCommits = %d, want 2 (flush 2's b, then its a)", st.PartialCommits)
				}
				if fail {
					if err := b.Reset(context.Background(), "a"); err != nil {
						t.Errorf("Reset: %v", err)
					}
				}
				mustClose(t, b)
			})
		})
	}
}

func equalCommit(x, y commitCall) bool { return x.seq == y.seq && slices.Equal(x.streams, y.streams) }

// TestIdleFlush: with IdleFlush, a flush is cut once Adds stop for
// max(IdleFlush, IdleGaps mean gaps) instead of at MaxDelay, while steady
// arrivals keep the MaxDelay window (one flush for all of them); without
// it the window is always waited out.
func TestIdleFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(false)
		b := New(Config{MaxDelay: 100 * time.Millisecond, IdleFlush: 5 * time.Millisecond}, s.flush)
		start := time.Now()
		a0 := mustAdd(t, b, item("a", 0, 10))
		time.Sleep(4 * time.Millisecond)
		synctest.Wait()
		if up, _ := s.snapshot(); len(up) != 0 {
			t.Fatalf("flushed 4ms after the only batch, want at the 5ms idle time")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if up, _ := s.snapshot(); len(up) != 1 || s.uploadedAt[0].Sub(start) != 5*time.Millisecond {
			t.Fatalf("uploads %d: want one cut after 5ms idle", len(up))
		}
		if err := mustResult(t, "a0", a0); err != nil {
			t.Fatal(err)
		}
		if st := b.Stats(); st.IdleFlushes != 1 {
			t.Fatalf("idle flushes %d, want 1", st.IdleFlushes)
		}

		// Steady arrivals every 10ms: the mean gap converges to 10ms and
		// the idle time to 4 x 10ms, so only the window cuts flushes.
		time.Sleep(200 * time.Millisecond)
		before, _ := s.snapshot()
		for i := range 40 {
			mustAdd(t, b, item("a", int64(1+i), 10))
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		up, _ := s.snapshot()
		if n := len(up) - len(before); n < 3 || n > 5 {
			t.Fatalf("40 batches 10ms apart with a 100ms window: %d flushes, want about 4", n)
		}
		if st := b.Stats(); st.IdleFlushes > 2 {
			// The first few gaps still count the 200ms pause (capped at
			// MaxDelay) in the mean; after that no gap is idle.
			t.Fatalf("idle flushes %d after steady arrivals, want at most one more", st.IdleFlushes)
		}
		mustClose(t, b)

		// Off: the window is waited out.
		s2 := newFakeStore(false)
		b2 := New(Config{MaxDelay: 100 * time.Millisecond}, s2.flush)
		third := time.Now()
		mustAdd(t, b2, item("a", 0, 10))
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if up, _ := s2.snapshot(); len(up) != 1 || s2.uploadedAt[0].Sub(third) != 100*time.Millisecond {
			t.Fatalf("without IdleFlush: %d uploads, want one at 100ms", len(up))
		}
		mustClose(t, b2)
	})
}

// TestIdleFlushClosedLoop: producers at their in-flight limit send their
// next requests right after the answers. The time they wait for an answer
// is the buffer's own delay and must not count as a gap between arrivals;
// if it did, each round's idle time would raise the mean gap and the next
// round's idle time with it (to 20ms here, 4x the IdleFlush floor).
func TestIdleFlushClosedLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(false)
		b := New(Config{MaxDelay: 100 * time.Millisecond, IdleFlush: 5 * time.Millisecond}, s.flush)
		const rounds = 20
		var lastAdds []time.Time
		for r := range rounds {
			// Five requests 1ms apart, then wait for all their answers
			// and send the next round 1ms later.
			var res []<-chan error
			for i := range 5 {
				if i > 0 {
					time.Sleep(time.Millisecond)
				}
				res = append(res, mustAdd(t, b, item(fmt.Sprint("s", i), int64(r), 10)))
			}
			lastAdds = append(lastAdds, time.Now())
			for i, ch := range res {
				if err := <-ch; err != nil {
					t.Fatalf("round %d batch %d: %v", r, i, err)
				}
			}
			time.Sleep(time.Millisecond)
		}
		up, _ := s.snapshot()
		if len(up) != rounds {
			t.Fatalf("%d flushes for %d rounds, want one per round", len(up), rounds)
		}
		for r := rounds / 2; r < rounds; r++ {
			// 1ms gaps: the idle time is the 5ms floor in every round.
			if wait := s.uploadedAt[r].Sub(lastAdds[r]); wait != 5*time.Millisecond {
				t.Fatalf("round %d was cut %v after its last batch, want 5ms (the IdleFlush floor)", r, wait)
			}
		}
		mustClose(t, b)
	})
}

// TestEagerFlush: with EagerFlush, a batch that finds no upload running is
// cut at once; batches arriving while an upload runs wait for it (or for
// MaxDelay, the size or the idle time) and are then cut together, at the
// moment it returns; without it the window is waited out.
func TestEagerFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(true)
		b := New(Config{MaxDelay: 100 * time.Millisecond, MaxInFlight: 4, EagerFlush: true}, s.flush)
		start := time.Now()
		a0 := mustAdd(t, b, item("a", 0, 10))
		synctest.Wait()
		if up, _ := s.snapshot(); len(up) != 1 || s.uploadedAt[0] != start {
			t.Fatalf("%d uploads: want the first batch cut at once (nothing was uploading)", len(up))
		}
		time.Sleep(time.Millisecond)
		a1 := mustAdd(t, b, item("a", 1, 10))
		b0 := mustAdd(t, b, item("b", 0, 10))
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		if up, _ := s.snapshot(); len(up) != 1 {
			t.Fatalf("%d uploads while the first runs: want the new batches to wait for it", len(up))
		}
		s.release(1, nil)
		synctest.Wait()
		up, _ := s.snapshot()
		if len(up) != 2 || s.uploadedAt[1].Sub(start) != 3*time.Millisecond {
			t.Fatalf("%d uploads: want the waiting batches cut together when the first upload returned (3ms)", len(up))
		}
		if got := keys(up[1]); !slices.Equal(got, []string{"a@1", "b@0"}) {
			t.Fatalf("second flush holds %v, want a@1 and b@0", got)
		}
		s.release(2, nil)
		synctest.Wait()
		for name, ch := range map[string]<-chan error{"a0": a0, "a1": a1, "b0": b0} {
			if err := mustResult(t, name, ch); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if st := b.Stats(); st.EagerFlushes != 2 || st.IdleFlushes != 0 {
			t.Errorf("eager flushes %d, idle %d: want 2 and 0", st.EagerFlushes, st.IdleFlushes)
		}
		mustClose(t, b)

		// Off: the window is waited out although nothing uploads.
		s2 := newFakeStore(false)
		b2 := New(Config{MaxDelay: 100 * time.Millisecond, MaxInFlight: 4}, s2.flush)
		second := time.Now()
		mustAdd(t, b2, item("a", 0, 10))
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if up, _ := s2.snapshot(); len(up) != 1 || s2.uploadedAt[0].Sub(second) != 100*time.Millisecond {
			t.Fatalf("without EagerFlush: %d uploads, want one at 100ms", len(up))
		}
		if st := b2.Stats(); st.EagerFlushes != 0 {
			t.Errorf("eager flushes %d without EagerFlush", st.EagerFlushes)
		}
		mustClose(t, b2)
	})
}
