package segment

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/recbatch"
)

// TestConcurrentReadsDuringAppendsAndRetention runs readers of every kind
// against one writer that appends, rolls, applies retention and finally
// closes the log. Run under -race. Record k has timestamp 1000+k, so every
// answer can be checked exactly.
func TestConcurrentReadsDuringAppendsAndRetention(t *testing.T) {
	l, err := Open(t.TempDir(), Config{SegmentBytes: 2000, IndexIntervalBytes: 300})
	if err != nil {
		t.Fatal(err)
	}
	const batches = 400
	var closed atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	fail := func(format string, args ...any) {
		select {
		case errs <- fmt.Errorf(format, args...):
		default:
		}
	}
	// ok accepts the errors a racing reader may legitimately see.
	ok := func(err error) bool {
		return err == nil || errors.Is(err, ErrOffsetOutOfRange) || (closed.Load() && errors.Is(err, ErrClosed))
	}

	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for !closed.Load() || rng.IntN(50) != 0 {
				start, end := l.StartOffset(), l.EndOffset()
				if start > end || l.Size() < 0 {
					fail("start %d > end %d", start, end)
					return
				}
				off := start + rng.Int64N(end-start+1)
				maxBytes := 1 + rng.IntN(3000)
				b, err := l.Read(off, maxBytes, end, true)
				if !ok(err) {
					fail("Read(%d): %v", off, err)
					return
				}
				if len(b) > 0 {
					next := int64(-1)
					_, ierr := recbatch.Iterate(b, true, func(h recbatch.Header, _ []byte) error {
						if next == -1 && (h.BaseOffset > off || h.NextOffset() <= off) {
							return fmt.Errorf("first batch [%d,%d) does not contain %d", h.BaseOffset, h.NextOffset(), off)
						}
						if next != -1 && h.BaseOffset != next {
							return fmt.Errorf("gap: %d after %d", h.BaseOffset, next)
						}
						next = h.NextOffset()
						return nil
					})
					if ierr != nil || (len(b) > maxBytes && next-off > 8) {
						fail("Read(%d, %d) returned %d bytes: %v", off, maxBytes, len(b), ierr)
						return
					}
				}
				q := 1000 + off
				o, ts, found, err := l.OffsetForTimestamp(q)
				if !ok(err) || (found && (ts != 1000+o || o < off)) {
					fail("OffsetForTimestamp(%d) = %d %d %v %v", q, o, ts, found, err)
					return
				}
				if o, ts := l.MaxTimestamp(); o >= 0 && ts != 1000+o {
					fail("MaxTimestamp = %d %d", o, ts)
					return
				}
				prev := int64(-1)
				err = l.ScanHeaders(off, func(h recbatch.Header) error {
					// A jump is allowed only to a new log start: segments
					// deleted under the scan are skipped.
					if prev != -1 && h.BaseOffset != prev && h.BaseOffset > l.StartOffset() {
						return fmt.Errorf("scan gap %d after %d", h.BaseOffset, prev)
					}
					prev = h.NextOffset()
					return nil
				})
				if !ok(err) {
					fail("ScanHeaders(%d): %v", off, err)
					return
				}
			}
		}()
	}

	for i := range batches {
		n := 1 + i%4
		if err := l.Append(mkBatch(l.EndOffset(), 1000+l.EndOffset(), n)); err != nil {
			t.Fatal(err)
		}
		if i%25 == 24 {
			if _, err := l.ApplyRetention(-1, 6000); err != nil {
				t.Fatal(err)
			}
		}
		if i%50 == 49 {
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if l.StartOffset() == 0 {
		t.Fatal("retention never deleted anything")
	}
	closed.Store(true)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestSyncDoesNotHoldAppends holds a Sync inside its fsync and checks that
// appends, a roll and reads go on meanwhile (a checkpoint must not stall
// the write path), and that the Sync still succeeds when the segment it
// was syncing is rolled and its index files closed under it.
func TestSyncDoesNotHoldAppends(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 4000, IndexIntervalBytes: 200})
	appendBatches(t, l, 5, 3, 1000)
	inSync, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	syncFile = func(f *os.File) error {
		once.Do(func() {
			close(inSync)
			<-release
		})
		return f.Sync()
	}
	t.Cleanup(func() { syncFile = (*os.File).Sync })
	synced := make(chan error, 1)
	go func() { synced <- l.Sync() }()
	<-inSync
	// The fsync is held: appends still complete, enough to roll.
	before := l.EndOffset()
	appended := make(chan [][]byte, 1)
	go func() { appended <- appendBatches(t, l, 40, 3, 2000) }()
	var bs [][]byte
	select {
	case bs = <-appended:
	case <-time.After(30 * time.Second):
		close(release)
		t.Fatal("appends blocked behind a Sync's fsync")
	}
	l.mu.RLock()
	segs := len(l.segs)
	l.mu.RUnlock()
	if l.EndOffset() != before+120 || segs < 2 {
		t.Fatalf("while a Sync was held: end %d (want %d), %d segments", l.EndOffset(), before+120, segs)
	}
	if got, err := l.Read(before, 1<<20, l.EndOffset(), false); err != nil || len(got) == 0 || !bytes.Equal(got[:len(bs[0])], bs[0]) {
		t.Fatalf("read while a Sync was held: %v", err)
	}
	select {
	case err := <-synced:
		t.Fatalf("Sync returned (%v) while its fsync was held", err)
	default:
	}
	close(release)
	if err := <-synced; err != nil {
		t.Fatalf("Sync after the segment it synced was rolled: %v", err)
	}
}
