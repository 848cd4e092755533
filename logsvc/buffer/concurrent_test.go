package buffer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestConcurrentAdds runs many writers against real goroutine scheduling
// (no synctest) with uploads finishing in random order and injected commit
// failures, and checks the invariants that matter: every stream commits its
// flushes in Seq order with gapless offsets, results arrive in Add order,
// and the memory bound holds. Run it under -race.
func TestConcurrentAdds(t *testing.T) {
	const (
		streams   = 8
		perStream = 300
	)
	var (
		mu        sync.Mutex
		committed = map[string]int64{}  // next expected offset per stream
		lastSeq   = map[string]uint64{} // per stream: the last flush committed
		commitN   int
	)
	flush := func(ctx context.Context, f *Flush) (CommitFunc, error) {
		for range rand.IntN(3) {
			runtime.Gosched() // uploads finish out of order
		}
		return func(ctx context.Context, names []string) (map[string]error, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, name := range names {
				if f.Seq <= lastSeq[name] {
					t.Errorf("%s: commit of flush %d after %d", name, f.Seq, lastSeq[name])
				}
				lastSeq[name] = f.Seq
			}
			commitN++
			failed := map[string]error{}
			for _, sp := range f.Streams {
				if !slices.Contains(names, sp.Stream) {
					continue
				}
				if commitN%7 == 0 && len(failed) == 0 {
					failed[sp.Stream] = errBoom // fencing-style failure
					continue
				}
				for _, it := range f.Items[sp.Start:sp.End] {
					if it.BaseOffset != committed[sp.Stream] {
						t.Errorf("%s: committed offset %d, want %d", sp.Stream, it.BaseOffset, committed[sp.Stream])
					}
					committed[sp.Stream] = it.LastOffset + 1
				}
			}
			return failed, nil
		}, nil
	}
	b := New(Config{MaxBatchBytes: 4 << 10, MaxDelay: time.Millisecond, MaxBufferedBytes: 16 << 10, MaxInFlight: 3}, flush)

	var wg sync.WaitGroup
	for i := range streams {
		name := fmt.Sprintf("s%d", i)
		wg.Go(func() { writer(t, b, name, perStream) })
	}
	wg.Wait()
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	if st.CommittedItems+st.FailedItems != st.FlushedItems || st.BufferedBytes != 0 {
		t.Errorf("stats = %+v", st)
	}
	t.Logf("stats %+v", st)
	if st.FailedItems == 0 {
		t.Error("no failures injected; the test exercised nothing")
	}
	for i := range streams {
		if got := committed[fmt.Sprintf("s%d", i)]; got != perStream {
			t.Errorf("s%d: committed up to %d, want %d", i, got, perStream)
		}
	}
}

// writer plays a partition: it adds batches in offset order and, when its
// stream fails, waits for its outstanding results, rewinds to the
// committed log end and resets the stream, as the diskless engine will.
func writer(t *testing.T, b *Batching, stream string, n int64) {
	type sent struct {
		offset int64
		ch     <-chan error
	}
	var out []sent
	next, end := int64(0), int64(0) // next offset to add; committed log end
	// drain checks delivery order, then advances end over the committed
	// prefix; it reports whether anything failed.
	drain := func() bool {
		if len(out) == 0 {
			return false
		}
		last := <-out[len(out)-1].ch
		failed := false
		for i, s := range out {
			err := last
			if i < len(out)-1 {
				var ok bool
				if err, ok = result(s.ch); !ok {
					t.Errorf("%s@%d: result not delivered before a later one", stream, s.offset)
					err = <-s.ch
				}
			}
			switch {
			case err == nil && failed:
				t.Errorf("%s@%d committed after an earlier failure", stream, s.offset)
			case err == nil:
				end = s.offset + 1
			case !errors.Is(err, errBoom):
				t.Errorf("%s@%d: %v", stream, s.offset, err)
			default:
				failed = true
			}
		}
		out = out[:0]
		return failed
	}
	for {
		for next < n {
			size := 50 + rand.IntN(450)
			ch, err := b.Add(context.Background(), item(stream, next, size))
			if st := b.Stats(); st.BufferedBytes > b.Config().MaxBufferedBytes {
				t.Errorf("buffered %d bytes, bound %d", st.BufferedBytes, b.Config().MaxBufferedBytes)
			}
			switch {
			case err == nil:
				out = append(out, sent{next, ch})
				next++
				if len(out) < 16 || !drain() {
					continue
				}
			case errors.Is(err, ErrStreamFailed):
				if !drain() {
					t.Errorf("%s: Add failed but no outstanding batch did", stream)
				}
			default:
				t.Errorf("%s: Add: %v", stream, err)
				return
			}
			reset(t, b, stream)
			next = end
		}
		if !drain() {
			return
		}
		reset(t, b, stream)
		next = end
	}
}

func reset(t *testing.T, b *Batching, stream string) {
	if err := b.Reset(context.Background(), stream); err != nil {
		t.Error(err)
	}
}
