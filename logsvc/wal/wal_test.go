package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type entry struct {
	seq uint64
	rec Record
}

func mustOpen(t testing.TB, dir string, opts Options) *WAL {
	t.Helper()
	w, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func mustOpenHook(t testing.TB, dir string, opts Options, hook func(*os.File) error) *WAL {
	t.Helper()
	w, err := open(dir, opts, hook)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func mustAppend(t testing.TB, w *WAL, r Record) uint64 {
	t.Helper()
	seq, done := w.Append(r)
	if err := <-done; err != nil {
		t.Fatalf("Append(%q, %d): %v", r.Stream, r.Offset, err)
	}
	return seq
}

func replayAll(t testing.TB, w *WAL) []entry {
	t.Helper()
	var got []entry
	if err := w.Replay(func(seq uint64, r Record) error {
		got = append(got, entry{seq, r})
		return nil
	}); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return got
}

func checkEntries(t testing.TB, got, want []entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("replayed %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.seq != w.seq || g.rec.Stream != w.rec.Stream || g.rec.Offset != w.rec.Offset ||
			!bytes.Equal(g.rec.Data, w.rec.Data) {
			t.Fatalf("record %d: got seq %d %q@%d (%d bytes), want seq %d %q@%d (%d bytes)", i,
				g.seq, g.rec.Stream, g.rec.Offset, len(g.rec.Data),
				w.seq, w.rec.Stream, w.rec.Offset, len(w.rec.Data))
		}
	}
}

// rec builds a record whose frame is exactly frameLen bytes.
func rec(stream string, off int64, frameLen int) Record {
	n := frameLen - frameHeaderSize - payloadFixedSize - len(stream)
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(off) + byte(i)
	}
	return Record{Stream: stream, Offset: off, Data: data}
}

func walNames(t testing.TB, dir string) []string {
	t.Helper()
	return namesIn(t, dir, func(name string) bool { _, ok := parseFileName(name); return ok })
}

// namesIn lists the names in dir that match.
func namesIn(t testing.TB, dir string, match func(name string) bool) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if match(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names
}

// copyDir copies the WAL files of src into a new directory under base,
// passing each through edit (which may return a modified copy).
func copyDir(t testing.TB, src, dst string, edit func(name string, b []byte) []byte) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range walNames(t, src) {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			b = edit(name, slices.Clone(b))
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRoundTripAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, Options{})
	var want []entry
	for i := range 10 {
		r := Record{Stream: fmt.Sprintf("topic-%d/%d", i%3, i%2), Offset: int64(i * 100), Data: []byte(strings.Repeat("x", i))}
		seq := mustAppend(t, w, r)
		if want := uint64(i + 1); seq != want {
			t.Fatalf("seq %d, want %d", seq, want)
		}
		want = append(want, entry{seq, r})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	w = mustOpen(t, dir, Options{})
	checkEntries(t, replayAll(t, w), want)
	// Replay is repeatable before the first Append.
	checkEntries(t, replayAll(t, w), want)
	r := Record{Stream: "after/0", Offset: -1, Data: []byte("more")}
	seq := mustAppend(t, w, r)
	if seq != 11 {
		t.Fatalf("seq after reopen = %d, want 11", seq)
	}
	want = append(want, entry{seq, r})
	if err := w.Replay(func(uint64, Record) error { return nil }); !errors.Is(err, ErrReplayAfterAppend) {
		t.Fatalf("Replay after Append: %v, want ErrReplayAfterAppend", err)
	}
	w.Close()
	if err := w.Replay(func(uint64, Record) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Replay after Close: %v, want ErrClosed", err)
	}

	w = mustOpen(t, dir, Options{})
	checkEntries(t, replayAll(t, w), want)
	if got, want := w.Size(), int64(0); got <= want {
		t.Fatalf("Size = %d, want > 0", got)
	}

	stop := errors.New("stop")
	n := 0
	if err := w.Replay(func(uint64, Record) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("Replay with failing fn: err %v after %d calls, want stop after 1", err, n)
	}
}

func TestInvalidRecord(t *testing.T) {
	w := mustOpen(t, t.TempDir(), Options{NoSync: true})
	for _, r := range []Record{
		{Stream: "", Data: []byte("x")},
		{Stream: strings.Repeat("s", maxStreamLen+1)},
	} {
		seq, done := w.Append(r)
		if err := <-done; !errors.Is(err, ErrInvalidRecord) || seq != 0 {
			t.Fatalf("Append(stream of %d bytes) = %d, %v; want 0, ErrInvalidRecord", len(r.Stream), seq, err)
		}
	}
	if seq := mustAppend(t, w, Record{Stream: strings.Repeat("s", maxStreamLen)}); seq != 1 {
		t.Fatalf("seq = %d, want 1 (invalid records must not use seqs)", seq)
	}
}

func TestConcurrentAppenders(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, Options{FileBytes: 64 << 10})
	const writers, perWriter, inFlight = 8, 100, 4
	seqs := make([][]uint64, writers)
	recs := make(map[uint64]Record)
	var recsMu sync.Mutex
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			var pending []<-chan error
			for i := range perWriter {
				r := Record{Stream: fmt.Sprintf("s%d", g), Offset: int64(i), Data: fmt.Appendf(nil, "w%d-r%d", g, i)}
				seq, done := w.Append(r)
				seqs[g] = append(seqs[g], seq)
				recsMu.Lock()
				recs[seq] = r
				recsMu.Unlock()
				pending = append(pending, done)
				if len(pending) == inFlight || i == perWriter-1 {
					for _, d := range pending {
						if err := <-d; err != nil {
							t.Errorf("append: %v", err)
						}
					}
					pending = pending[:0]
				}
			}
		})
	}
	wg.Wait()
	const total = writers * perWriter
	if len(recs) != total {
		t.Fatalf("%d distinct seqs, want %d", len(recs), total)
	}
	for g, s := range seqs {
		if !slices.IsSorted(s) {
			t.Fatalf("writer %d: seqs not increasing in call order: %v", g, s)
		}
	}
	syncs := w.syncs.Load()
	t.Logf("%d appends, %d fsyncs, %d files", total, syncs, w.Files())
	if syncs >= total {
		t.Fatalf("%d fsyncs for %d concurrent appends: no grouping", syncs, total)
	}
	w.Close()

	w = mustOpen(t, dir, Options{})
	got := replayAll(t, w)
	if len(got) != total {
		t.Fatalf("replayed %d, want %d", len(got), total)
	}
	for i, e := range got {
		if e.seq != uint64(i+1) {
			t.Fatalf("replay position %d has seq %d", i, e.seq)
		}
		r := recs[e.seq]
		if e.rec.Stream != r.Stream || e.rec.Offset != r.Offset || !bytes.Equal(e.rec.Data, r.Data) {
			t.Fatalf("seq %d: replayed %q@%d, appended %q@%d", e.seq, e.rec.Stream, e.rec.Offset, r.Stream, r.Offset)
		}
	}
}

// blockingSync returns a sync hook that blocks its first call until
// release is closed, after closing entered.
func blockingSync() (hook func(*os.File) error, entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	hook = func(f *os.File) error {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
		return f.Sync()
	}
	return hook, entered, release
}

func TestGroupCommitGroups(t *testing.T) {
	hook, entered, release := blockingSync()
	w := mustOpenHook(t, t.TempDir(), Options{}, hook)
	_, first := w.Append(rec("a", 0, 64))
	<-entered // the writer is inside the first group's fsync
	var dones []<-chan error
	for i := range 50 {
		_, d := w.Append(rec("b", int64(i), 64))
		dones = append(dones, d)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for _, d := range dones {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	// One fsync for the first record, one for the 50 queued behind it.
	if got := w.syncs.Load(); got != 2 {
		t.Fatalf("%d fsyncs for 51 appends, want 2", got)
	}
}

func TestBackpressure(t *testing.T) {
	hook, entered, release := blockingSync()
	w := mustOpenHook(t, t.TempDir(), Options{MaxQueueRecords: 2}, hook)
	_, d1 := w.Append(rec("a", 1, 64))
	<-entered
	_, d2 := w.Append(rec("a", 2, 64))
	_, d3 := w.Append(rec("a", 3, 64)) // queue now full
	type result struct {
		seq uint64
		err error
	}
	res := make(chan result, 1)
	go func() {
		seq, d := w.Append(rec("a", 4, 64))
		res <- result{seq, <-d}
	}()
	// Wait (without sleeping) until that Append is parked on the full queue.
	for {
		w.mu.Lock()
		n := w.waiting
		w.mu.Unlock()
		if n == 1 {
			break
		}
		runtime.Gosched()
	}
	select {
	case r := <-res:
		t.Fatalf("Append on a full queue returned %+v", r)
	default:
	}
	close(release)
	for _, d := range []<-chan error{d1, d2, d3} {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	if r := <-res; r.err != nil || r.seq != 4 {
		t.Fatalf("blocked Append = %+v, want seq 4, nil", r)
	}
}

func TestCloseWithPendingAppends(t *testing.T) {
	dir := t.TempDir()
	hook, entered, release := blockingSync()
	w := mustOpenHook(t, dir, Options{}, hook)
	r1 := rec("a", 1, 64)
	seq1, d1 := w.Append(r1)
	<-entered // r1's group is being fsynced
	var queued []<-chan error
	for i := range 5 {
		_, d := w.Append(rec("a", int64(10+i), 64))
		queued = append(queued, d)
	}
	closed := make(chan error, 1)
	go func() { closed <- w.Close() }()
	for _, d := range queued {
		if err := <-d; !errors.Is(err, ErrClosed) {
			t.Fatalf("queued append got %v, want ErrClosed", err)
		}
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while the writer was still in fsync", err)
	default:
	}
	close(release)
	if err := <-d1; err != nil {
		t.Fatalf("in-flight append: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if seq, d := w.Append(r1); seq != 0 || !errors.Is(<-d, ErrClosed) {
		t.Fatal("Append after Close did not fail with ErrClosed")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.Prune(func(string) (uint64, bool) { return 0, false }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Prune after Close: %v", err)
	}

	w = mustOpen(t, dir, Options{})
	checkEntries(t, replayAll(t, w), []entry{{seq1, r1}})
}

func TestFsyncErrorPoisons(t *testing.T) {
	injected := errors.New("injected EIO")
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	hook := func(f *os.File) error {
		if calls.Add(1) == 1 {
			return f.Sync()
		}
		close(entered)
		<-release
		return injected
	}
	w := mustOpenHook(t, t.TempDir(), Options{}, hook)
	mustAppend(t, w, rec("a", 1, 64))
	_, d2 := w.Append(rec("a", 2, 64))
	<-entered
	_, d3 := w.Append(rec("a", 3, 64)) // queued behind the failing group
	close(release)
	for i, d := range []<-chan error{d2, d3} {
		if err := <-d; !errors.Is(err, injected) {
			t.Fatalf("append %d: %v, want the fsync error", i+2, err)
		}
	}
	seq, d4 := w.Append(rec("a", 4, 64))
	if err := <-d4; !errors.Is(err, injected) || seq != 0 {
		t.Fatalf("append after poison = %d, %v; want 0 and the fsync error", seq, err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d fsync calls, want 2 (a failed fsync must not be retried)", n)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// writeFiles appends n records whose frames are 100 bytes to a WAL with
// 300-byte files, so files hold 3 records each.
func writeFiles(t *testing.T, dir string, n int) []entry {
	t.Helper()
	w := mustOpen(t, dir, Options{FileBytes: 300, NoSync: true})
	var want []entry
	for i := range n {
		r := rec(fmt.Sprintf("s%d", i%2), int64(i), 100)
		want = append(want, entry{mustAppend(t, w, r), r})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

func TestFileRollingAndNames(t *testing.T) {
	dir := t.TempDir()
	want := writeFiles(t, dir, 7)
	names := walNames(t, dir)
	// Records 1-3, 4-6 and 7 in three files; the roll after 6 made the third.
	wantNames := []string{fileName(1), fileName(4), fileName(7)}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("files %v, want %v", names, wantNames)
	}
	if fileName(7) != "wal-00000000000000000007.log" {
		t.Fatalf("bad name format %q", fileName(7))
	}
	w := mustOpen(t, dir, Options{FileBytes: 300})
	if w.Files() != 3 || w.Size() != 700 {
		t.Fatalf("Files %d Size %d, want 3 and 700", w.Files(), w.Size())
	}
	checkEntries(t, replayAll(t, w), want)
}

func TestTornTail(t *testing.T) {
	for _, n := range []int{7, 8} { // last file with one frame, and with two
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			base := t.TempDir()
			src := filepath.Join(base, "src")
			want := writeFiles(t, src, n)
			names := walNames(t, src)
			last := names[len(names)-1]
			lastLen := (n - (n-1)/3*3) * 100 // 3 frames of 100 bytes per file
			lastStart := lastLen - 100

			iter := 0
			check := func(edit func(b []byte) []byte, keep int, truncated int64) {
				t.Helper()
				iter++
				dir := filepath.Join(base, fmt.Sprint(iter))
				copyDir(t, src, dir, func(name string, b []byte) []byte {
					if len(b) != lastLen && name == last {
						t.Fatalf("last file has %d bytes, want %d", len(b), lastLen)
					}
					if name == last {
						return edit(b)
					}
					return b
				})
				w, err := Open(dir, Options{NoSync: true})
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer w.Close()
				if got := w.Truncated(); got != truncated {
					t.Fatalf("Truncated = %d, want %d", got, truncated)
				}
				checkEntries(t, replayAll(t, w), want[:keep])
				// Appends continue right after the intact prefix.
				r := Record{Stream: "new", Offset: 99, Data: []byte("after recovery")}
				seq := mustAppend(t, w, r)
				if seq != uint64(keep+1) {
					t.Fatalf("seq after recovery = %d, want %d", seq, keep+1)
				}
				w.Close()
				w2, err := Open(dir, Options{NoSync: true})
				if err != nil {
					t.Fatalf("reopen: %v", err)
				}
				defer w2.Close()
				if w2.Truncated() != 0 {
					t.Fatalf("second Open truncated %d bytes", w2.Truncated())
				}
				checkEntries(t, replayAll(t, w2), append(slices.Clone(want[:keep]), entry{seq, r}))
			}

			for cut := lastStart; cut < lastLen; cut++ {
				check(func(b []byte) []byte { return b[:cut] }, n-1, int64(cut-lastStart))
			}
			for pos := lastStart; pos < lastLen; pos++ {
				check(func(b []byte) []byte { b[pos] ^= 0x5a; return b }, n-1, 100)
			}
			// Zeros after the last frame (e.g. preallocated or unwritten blocks).
			check(func(b []byte) []byte { return append(b, make([]byte, 37)...) }, n, 37)
			if n == 8 {
				// A bad frame in the middle of the last file ends the log there.
				check(func(b []byte) []byte { b[50] ^= 1; return b }, 6, 200)
			}
			// A valid frame with the wrong seq (a stale block of an old
			// file) is cut off too.
			check(func(b []byte) []byte {
				return appendFrame(b, want[n-1].seq+5, Record{Stream: "stale", Data: []byte("old")})
			}, n, int64(frameSize(Record{Stream: "stale", Data: []byte("old")})))
		})
	}
}

func TestCorruptNonLastFile(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	writeFiles(t, src, 8)
	first := walNames(t, src)[0]
	for i, edit := range []func([]byte) []byte{
		func(b []byte) []byte { b[150] ^= 1; return b },           // payload byte
		func(b []byte) []byte { b[100] ^= 0x80; return b },        // length field
		func(b []byte) []byte { return b[:len(b)-1] },             // torn tail
		func(b []byte) []byte { return append(b, 0, 0, 0, 0, 0) }, // garbage tail
	} {
		dir := filepath.Join(base, fmt.Sprint(i))
		copyDir(t, src, dir, func(name string, b []byte) []byte {
			if name == first {
				return edit(b)
			}
			return b
		})
		w, err := Open(dir, Options{NoSync: true})
		if err == nil {
			w.Close()
			t.Fatalf("case %d: Open succeeded on a corrupt sealed file", i)
		}
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), first) {
			t.Fatalf("case %d: Open error %q does not wrap ErrCorrupt and name %s", i, err, first)
		}
	}
}

func TestEmptyTrailingFileKeepsSeq(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, 2)
	// As if later files were pruned and the newest one, created by a roll,
	// is still empty: its name is the only record of the seqs used.
	if err := os.WriteFile(filepath.Join(dir, fileName(40)), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w := mustOpen(t, dir, Options{})
	if len(replayAll(t, w)) != 2 {
		t.Fatal("expected the 2 records of the first file")
	}
	if seq := mustAppend(t, w, rec("a", 0, 64)); seq != 40 {
		t.Fatalf("seq = %d, want 40", seq)
	}
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, Options{FileBytes: 256})
	// 128-byte frames, two per file: [a1 a2] [b3 b4] [a5 b6] [a7 ...
	for i, s := range []string{"a", "a", "b", "b", "a", "b", "a"} {
		if seq := mustAppend(t, w, rec(s, int64(i), 128)); seq != uint64(i+1) {
			t.Fatalf("seq %d, want %d", seq, i+1)
		}
	}
	if w.Files() != 4 || w.Size() != 7*128 {
		t.Fatalf("Files %d Size %d, want 4 and %d", w.Files(), w.Size(), 7*128)
	}
	prune := func(durable map[string]uint64, wantDeleted int, wantFiles ...uint64) {
		t.Helper()
		calls := map[string]int{}
		n, err := w.Prune(func(s string) (uint64, bool) {
			calls[s]++
			seq, ok := durable[s]
			return seq, ok
		})
		if err != nil {
			t.Fatal(err)
		}
		for s, c := range calls {
			if c > 1 {
				t.Errorf("durable(%q) called %d times", s, c)
			}
		}
		var names []string
		for _, seq := range wantFiles {
			names = append(names, fileName(seq))
		}
		if got := walNames(t, dir); n != wantDeleted || !slices.Equal(got, names) {
			t.Fatalf("deleted %d leaving %v; want %d leaving %v", n, got, wantDeleted, names)
		}
		if w.Files() != len(wantFiles) {
			t.Fatalf("Files() = %d, want %d", w.Files(), len(wantFiles))
		}
	}
	prune(map[string]uint64{"a": 0, "b": 0}, 0, 1, 3, 5, 7)
	prune(map[string]uint64{"a": 1, "b": 100}, 1, 1, 5, 7) // a1,a2 not durable: keep file 1
	prune(map[string]uint64{"a": 2, "b": 5}, 1, 5, 7)      // file 5 needs b up to 6
	prune(map[string]uint64{"a": 100}, 1, 7)               // b gone: its records are garbage
	prune(map[string]uint64{"a": 100, "b": 100}, 0, 7)     // the active file stays
	if w.Size() != 128 {
		t.Fatalf("Size after prune = %d, want 128", w.Size())
	}

	// Fill the active file so it rolls to an empty wal-9 (Close waits for
	// the writer, which rolls after acknowledging), prune everything, and
	// check seqs continue after a restart.
	if seq := mustAppend(t, w, rec("a", 8, 128)); seq != 8 {
		t.Fatalf("seq %d, want 8", seq)
	}
	w.Close()
	w = mustOpen(t, dir, Options{FileBytes: 256})
	prune(map[string]uint64{"a": 8}, 1, 9)
	w.Close()
	w = mustOpen(t, dir, Options{FileBytes: 256})
	if got := replayAll(t, w); len(got) != 0 {
		t.Fatalf("replayed %d records from a pruned WAL", len(got))
	}
	if seq := mustAppend(t, w, rec("a", 9, 128)); seq != 9 {
		t.Fatalf("seq after restart = %d, want 9", seq)
	}
}

// TestPruneGivesFilesBackInTheBackground: Prune renames each pruned file
// out of the WAL at once (Open no longer sees it) and a background
// reclaimer then deletes it in steps; nothing is left once it is done.
func TestPruneGivesFilesBackInTheBackground(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, Options{FileBytes: 256})
	for i := range 7 {
		mustAppend(t, w, rec("a", int64(i), 128))
	}
	if n, err := w.Prune(func(string) (uint64, bool) { return 100, true }); err != nil || n != 3 {
		t.Fatalf("Prune: %d files, %v; want 3", n, err)
	}
	if got := walNames(t, dir); !slices.Equal(got, []string{fileName(7)}) {
		t.Fatalf("WAL files right after Prune: %v, want only the active one", got)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(trashNames(t, dir)) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if left := trashNames(t, dir); len(left) > 0 {
		t.Fatalf("pruned files still there after 30s: %v", left)
	}
	w.Close()
}

// TestOpenRemovesPrunedLeftovers: a crash while pruned files were being
// given back leaves them, perhaps shortened, under their trash names;
// Open removes them and replays nothing of them, and the WAL goes on.
func TestOpenRemovesPrunedLeftovers(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, Options{FileBytes: 256})
	for i := range 3 {
		mustAppend(t, w, rec("a", int64(i), 128))
	}
	w.Close()
	// What a crash leaves: a whole pruned file, and one cut mid-frame.
	data, err := os.ReadFile(filepath.Join(dir, fileName(1)))
	if err != nil {
		t.Fatal(err)
	}
	for seq, b := range map[uint64][]byte{1: data, 100: data[:100]} {
		if err := os.WriteFile(filepath.Join(dir, fileName(seq)+prunedSuffix), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w = mustOpen(t, dir, Options{FileBytes: 256})
	defer w.Close()
	if left := trashNames(t, dir); len(left) > 0 {
		t.Fatalf("Open left %v", left)
	}
	if got := replayAll(t, w); len(got) != 3 {
		t.Fatalf("replayed %d records, want the 3 appended", len(got))
	}
	if seq := mustAppend(t, w, rec("a", 3, 128)); seq != 4 {
		t.Fatalf("next seq %d, want 4", seq)
	}
}

// trashNames lists the pruned files in dir not yet given back.
func trashNames(t testing.TB, dir string) []string {
	t.Helper()
	return namesIn(t, dir, func(name string) bool { return strings.HasSuffix(name, prunedSuffix) })
}

// FuzzOpen writes arbitrary bytes as the only WAL file. Open must not
// panic or fail, Replay must yield exactly an intact prefix of frames whose
// CRCs match, the file must be cut to that prefix, and appends must work.
func FuzzOpen(f *testing.F) {
	var valid []byte
	for i := range 3 {
		valid = appendFrame(valid, uint64(i+1), Record{Stream: "t/0", Offset: int64(i), Data: []byte("batch")})
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(append(slices.Clone(valid), 0, 0, 0, 0, 0, 0, 0, 0, 0))
	bad := slices.Clone(valid)
	bad[40] ^= 0xff
	f.Add(bad)
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, fileName(1))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		w, err := Open(dir, Options{NoSync: true})
		if err != nil {
			t.Fatalf("Open of a single (last) file failed: %v", err)
		}
		defer w.Close()
		got := replayAll(t, w)

		var prefix []byte
		for i, e := range got {
			if e.seq != uint64(i+1) {
				t.Fatalf("record %d has seq %d", i, e.seq)
			}
			// Check the CRC independently of the package's reader.
			pos := len(prefix)
			n := int(binary.BigEndian.Uint32(data[pos:]))
			payload := data[pos+8 : pos+8+n]
			if crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)) != binary.BigEndian.Uint32(data[pos+4:]) {
				t.Fatalf("record %d replayed from a frame with a bad CRC", i)
			}
			prefix = appendFrame(prefix, e.seq, e.rec)
		}
		if !bytes.HasPrefix(data, prefix) {
			t.Fatal("replayed records are not the input's leading frames")
		}
		if st, err := os.Stat(path); err != nil || st.Size() != int64(len(prefix)) {
			t.Fatalf("file not cut to the %d-byte intact prefix: %v %v", len(prefix), st, err)
		}
		if w.Truncated() != int64(len(data)-len(prefix)) {
			t.Fatalf("Truncated = %d, want %d", w.Truncated(), len(data)-len(prefix))
		}

		r := Record{Stream: "x", Data: []byte("y")}
		seq := mustAppend(t, w, r)
		w.Close()
		w2, err := Open(dir, Options{NoSync: true})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer w2.Close()
		checkEntries(t, replayAll(t, w2), append(got, entry{seq, r}))
	})
}
