package buffer

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

var errBoom = errors.New("boom")

func TestFailedCommitFailsLaterBatchesOfStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(true)
		s.failCommit(1, "a", errBoom)
		b := New(Config{MaxBatchBytes: 20}, s.flush)
		ch := map[string]<-chan error{}
		for _, it := range []Item{
			item("a", 0, 10), item("b", 0, 10), // flush 1
			item("a", 1, 10), item("b", 1, 10), // flush 2
			item("a", 2, 10), item("c", 0, 10), // flush 3
		} {
			ch[keys(&Flush{Items: []Item{it}})[0]] = mustAdd(t, b, it)
		}
		// Uploads finish last to first: c, alone in its streams' turn,
		// commits at once; a and b wait for flush 1.
		s.release(3, nil)
		synctest.Wait()
		s.release(2, nil)
		synctest.Wait()
		s.release(1, nil)
		synctest.Wait()

		_, commits := s.snapshot()
		want := []commitCall{{3, []string{"c"}}, {1, []string{"a", "b"}}, {2, []string{"b"}}}
		if !slices.EqualFunc(commits, want, func(x, y commitCall) bool {
			return x.seq == y.seq && slices.Equal(x.streams, y.streams)
		}) {
			t.Errorf("commits = %+v, want %+v", commits, want)
		}
		if err := mustResult(t, "a@0", ch["a@0"]); !errors.Is(err, errBoom) || errors.Is(err, ErrStreamFailed) {
			t.Errorf("a@0 = %v, want the commit error", err)
		}
		for _, k := range []string{"a@1", "a@2"} {
			if err := mustResult(t, k, ch[k]); !errors.Is(err, ErrStreamFailed) || !errors.Is(err, errBoom) {
				t.Errorf("%s = %v, want ErrStreamFailed wrapping boom", k, err)
			}
		}
		for _, k := range []string{"b@0", "b@1", "c@0"} {
			if err := mustResult(t, k, ch[k]); err != nil {
				t.Errorf("%s = %v, want committed", k, err)
			}
		}
		// Until Reset the stream refuses batches at once.
		if _, err := b.Add(context.Background(), item("a", 3, 10)); !errors.Is(err, ErrStreamFailed) {
			t.Fatalf("Add to failed stream = %v", err)
		}
		if err := b.Reset(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
		a1 := mustAdd(t, b, item("a", 1, 20)) // log end reloaded: offset 1 again
		s.release(4, nil)
		synctest.Wait()
		if err := mustResult(t, "a@1 after reset", a1); err != nil {
			t.Errorf("after Reset: %v", err)
		}
		if _, commits := s.snapshot(); !slices.Equal(commits[len(commits)-1].streams, []string{"a"}) {
			t.Errorf("last commit %+v, want stream a", commits[len(commits)-1])
		}
		if st := b.Stats(); st.FailedItems != 3 || st.CommittedItems != 4 {
			t.Errorf("stats = %+v", st)
		}
		mustClose(t, b)
	})
}

func TestUploadFailureFailsItsStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(true)
		b := New(Config{MaxBatchBytes: 20}, s.flush)
		a0 := mustAdd(t, b, item("a", 0, 10))
		b0 := mustAdd(t, b, item("b", 0, 10)) // flush 1
		a1 := mustAdd(t, b, item("a", 1, 10))
		c0 := mustAdd(t, b, item("c", 0, 10)) // flush 2
		s.release(2, nil)
		synctest.Wait()
		// c has no earlier flush and commits; a waits for flush 1.
		if err := mustResult(t, "c0", c0); err != nil {
			t.Errorf("c0 = %v, want committed", err)
		}
		if _, ok := result(a1); ok {
			t.Fatal("a1 resolved before flush 1")
		}
		s.release(1, errBoom)
		synctest.Wait()
		for name, ch := range map[string]<-chan error{"a0": a0, "b0": b0} {
			if err := mustResult(t, name, ch); !errors.Is(err, errBoom) {
				t.Errorf("%s = %v, want upload error", name, err)
			}
		}
		if err := mustResult(t, "a1", a1); !errors.Is(err, ErrStreamFailed) {
			t.Errorf("a1 = %v, want ErrStreamFailed", err)
		}
		if _, commits := s.snapshot(); len(commits) != 1 || commits[0].seq != 2 || !slices.Equal(commits[0].streams, []string{"c"}) {
			t.Errorf("commits = %+v, want only flush 2 for c", commits)
		}
		mustClose(t, b)
	})
}

// Reset must not let a batch added before the failure be committed after
// it: it waits until the stream has nothing left in the buffer.
func TestResetWaitsForInFlightBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(true)
		s.failCommit(1, "a", errBoom)
		b := New(Config{MaxBatchBytes: 10}, s.flush)
		a0 := mustAdd(t, b, item("a", 0, 10)) // flush 1
		a1 := mustAdd(t, b, item("a", 1, 10)) // flush 2, held
		s.release(1, nil)
		synctest.Wait()
		if err := mustResult(t, "a0", a0); !errors.Is(err, errBoom) {
			t.Fatalf("a0 = %v", err)
		}
		reset := make(chan error, 1)
		go func() { reset <- b.Reset(context.Background(), "a") }()
		synctest.Wait()
		if _, ok := result(reset); ok {
			t.Fatal("Reset returned while a@1 was still in flight")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := b.Reset(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Reset with deadline = %v", err)
		}
		s.release(2, nil)
		synctest.Wait()
		if err := mustResult(t, "reset", reset); err != nil {
			t.Fatal(err)
		}
		if err := mustResult(t, "a1", a1); !errors.Is(err, ErrStreamFailed) {
			t.Errorf("a1 = %v, want ErrStreamFailed although its upload succeeded", err)
		}
		if _, commits := s.snapshot(); len(commits) != 1 {
			t.Errorf("commits = %+v, want only flush 1", commits)
		}
		mustAdd(t, b, item("a", 1, 10))
		s.release(3, nil)
		mustClose(t, b)
	})
}

func TestCloseFlushesPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(false)
		b := New(Config{MaxDelay: time.Hour}, s.flush)
		a0 := mustAdd(t, b, item("a", 0, 10))
		b0 := mustAdd(t, b, item("b", 0, 10))
		start := time.Now()
		mustClose(t, b)
		if time.Since(start) != 0 {
			t.Errorf("Close waited %v for the flush window", time.Since(start))
		}
		if up, _ := s.snapshot(); len(up) != 1 || len(up[0].Items) != 2 {
			t.Fatalf("uploads = %d, want one with both batches", len(up))
		}
		for name, ch := range map[string]<-chan error{"a0": a0, "b0": b0} {
			if err := mustResult(t, name, ch); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if _, err := b.Add(context.Background(), item("a", 1, 10)); !errors.Is(err, ErrClosed) {
			t.Errorf("Add after Close = %v", err)
		}
		mustClose(t, b) // idempotent
	})
}

func TestCloseFailsBlockedAdds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(true)
		b := New(Config{MaxBatchBytes: 10, MaxBufferedBytes: 10}, s.flush)
		a0 := mustAdd(t, b, item("a", 0, 10))
		blocked := make(chan error, 1)
		go func() {
			_, err := b.Add(context.Background(), item("b", 0, 10))
			blocked <- err
		}()
		synctest.Wait()
		closed := make(chan error, 1)
		go func() { closed <- b.Close(context.Background()) }()
		synctest.Wait()
		if err := mustResult(t, "blocked Add", blocked); !errors.Is(err, ErrClosed) {
			t.Errorf("blocked Add = %v, want ErrClosed", err)
		}
		if _, ok := result(closed); ok {
			t.Fatal("Close returned with an upload in flight")
		}
		s.release(1, nil)
		synctest.Wait()
		if err := mustResult(t, "Close", closed); err != nil {
			t.Errorf("Close = %v", err)
		}
		if err := mustResult(t, "a0", a0); err != nil {
			t.Errorf("a0 = %v", err)
		}
	})
}

func TestCloseGivesUpOnContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(true) // never released: uploads end with ctx
		b := New(Config{MaxBatchBytes: 10, MaxInFlight: 1}, s.flush)
		a0 := mustAdd(t, b, item("a", 0, 10)) // uploading
		b0 := mustAdd(t, b, item("b", 0, 10)) // pending, no slot
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		if err := b.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close = %v, want DeadlineExceeded", err)
		}
		if time.Since(start) != time.Second {
			t.Errorf("Close took %v", time.Since(start))
		}
		for name, ch := range map[string]<-chan error{"a0": a0, "b0": b0} {
			if err := mustResult(t, name, ch); !errors.Is(err, ErrClosed) {
				t.Errorf("%s = %v, want ErrClosed", name, err)
			}
		}
		if up, commits := s.snapshot(); len(up) != 1 || len(commits) != 0 {
			t.Errorf("uploads %d commits %d, want 1 and 0", len(up), len(commits))
		}
	})
}

func TestAddRejects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newFakeStore(false)
		b := New(Config{MaxBatchBytes: 10, MaxBufferedBytes: 100}, s.flush)
		if _, err := b.Add(context.Background(), item("a", 0, 101)); !errors.Is(err, ErrTooLarge) {
			t.Errorf("too large: %v", err)
		}
		if _, err := b.Add(context.Background(), Item{Stream: "a"}); !errors.Is(err, ErrEmpty) {
			t.Errorf("empty: %v", err)
		}
		// Larger than a batch but within the buffer: flushed alone.
		if err := <-mustAdd(t, b, item("a", 0, 60)); err != nil {
			t.Error(err)
		}
		mustClose(t, b)
	})
}

func TestConfigDefaults(t *testing.T) {
	c := Config{MaxBatchBytes: 2 << 20, MaxBufferedBytes: 1 << 20}.withDefaults()
	want := Config{MaxBatchBytes: 2 << 20, MaxDelay: DefaultMaxDelay, MaxBufferedBytes: 2 << 20, MaxInFlight: DefaultMaxInFlight}
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
	if d := (Config{}).withDefaults(); d.MaxBatchBytes != 1<<20 || d.MaxBufferedBytes != 64<<20 {
		t.Errorf("defaults %+v", d)
	}
}
