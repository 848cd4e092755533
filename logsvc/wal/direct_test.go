package wal

import (
	"cmp"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// mustDirect opens a WAL with DirectIO in dir and fails the test unless it
// writes with O_DIRECT; the file system of the test's temp dir must
// support it (ext4, xfs), or the test says so and skips.
func mustDirect(t *testing.T, dir string, opts Options) *WAL {
	t.Helper()
	if !probeDirect(dir) {
		t.Skipf("the file system of %s does not support O_DIRECT", dir)
	}
	opts.DirectIO = true
	w := mustOpen(t, dir, opts)
	if !w.DirectIO() {
		t.Fatal("DirectIO() = false on a file system that supports O_DIRECT")
	}
	return w
}

// appendConcurrently appends n records of random frame sizes (40 B to
// 9 KiB: within and across 4 KiB blocks) from 4 goroutines, so groups of
// every size meet block boundaries anywhere, and returns them in seq order.
func appendConcurrently(t *testing.T, w *WAL, stream string, n int) []entry {
	t.Helper()
	var mu sync.Mutex
	got := make([]entry, 0, n)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < n; i += 4 {
				r := rec(stream, int64(i), 40+rand.IntN(9<<10))
				seq, done := w.Append(r)
				if err := <-done; err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				got = append(got, entry{seq, r})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	sortEntries(got)
	return got
}

func sortEntries(es []entry) {
	slices.SortFunc(es, func(a, b entry) int { return cmp.Compare(a.seq, b.seq) })
}

// TestDirectIO: with O_DIRECT every record replays after a reopen, sealed
// files hold exactly their frames (the zeros after a direct write's last
// frame are cut at the roll) and a closed file too.
func TestDirectIO(t *testing.T) {
	dir := t.TempDir()
	w := mustDirect(t, dir, Options{FileBytes: 64 << 10})
	want := appendConcurrently(t, w, "s", 300)
	if w.Files() < 3 {
		t.Fatalf("%d files, want several (rolls)", w.Files())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = mustDirect(t, dir, Options{FileBytes: 64 << 10})
	if w.Truncated() != 0 {
		t.Errorf("a clean close left %d bytes after the last frame", w.Truncated())
	}
	checkEntries(t, replayAll(t, w), want)
	w.filesMu.Lock()
	files := append(append([]*fileInfo(nil), w.sealed...), w.active)
	w.filesMu.Unlock()
	for _, f := range files {
		st, err := os.Stat(f.path)
		if err != nil || st.Size() != f.size {
			t.Errorf("%s: %d bytes on disk, %d of frames (%v)", filepath.Base(f.path), st.Size(), f.size, err)
		}
	}
}

// TestDirectIOCrash: a crash leaves the active file ending in the zeros of
// a direct write's last block. Open cuts them as a torn tail and every
// acknowledged record replays; the WAL then goes on in that file, whose
// frames no longer end on a block boundary (its last block is read back
// to be written again), and a second crash loses nothing either.
func TestDirectIOCrash(t *testing.T) {
	src := t.TempDir()
	opts := Options{FileBytes: 1 << 20}
	w := mustDirect(t, src, opts)
	want := appendConcurrently(t, w, "a", 50)
	w.filesMu.Lock()
	end := w.active.size
	w.filesMu.Unlock()
	if end%directBlock == 0 {
		want = append(want, entry{mustAppend(t, w, rec("a", 50, 100)), rec("a", 50, 100)})
		end += 100
	}

	// The crash: the files as they are while the WAL is open.
	dst := t.TempDir()
	copyDir(t, src, dst, nil)
	w2 := mustDirect(t, dst, opts)
	checkEntries(t, replayAll(t, w2), want)
	if pad := (end+directBlock-1)&^(directBlock-1) - end; w2.Truncated() != pad {
		t.Fatalf("Open cut %d bytes, want the %d zeros after the last frame", w2.Truncated(), pad)
	}
	more := appendConcurrently(t, w2, "b", 40)
	want = append(want, more...)

	dst2 := t.TempDir()
	copyDir(t, dst, dst2, nil)
	w3 := mustDirect(t, dst2, opts)
	checkEntries(t, replayAll(t, w3), want)
}

// TestDirectIOResumesAFileWrittenWithout: a WAL file written through the
// page cache (an earlier version, or DirectIO off) is continued with
// direct I/O and back, and a WAL written with direct I/O opens without it:
// the format is the same.
func TestDirectIOResumesAFileWrittenWithout(t *testing.T) {
	dir := t.TempDir()
	opts := Options{FileBytes: 1 << 20}
	w := mustOpen(t, dir, opts)
	var want []entry
	for i := range 3 {
		r := rec("s", int64(i), 1000+i) // the file ends mid-block
		want = append(want, entry{mustAppend(t, w, r), r})
	}
	w.Close()
	w = mustDirect(t, dir, opts)
	if w.Files() != 1 {
		t.Fatalf("%d files: the direct WAL did not continue the last one", w.Files())
	}
	want = append(want, appendConcurrently(t, w, "d", 30)...)
	w.Close()
	w = mustOpen(t, dir, opts) // DirectIO off again
	checkEntries(t, replayAll(t, w), want)
	r := rec("s", 99, 500)
	want = append(want, entry{mustAppend(t, w, r), r})
	w.Close()
	w = mustDirect(t, dir, opts)
	checkEntries(t, replayAll(t, w), want)
}

// TestDirectIOPreallocated: direct writes over the spare's zeros and over a
// recycled file's old frames. After a crash the old frames behind the new
// ones end the log, as without direct I/O.
func TestDirectIOPreallocated(t *testing.T) {
	src := t.TempDir()
	const fileBytes = 64 << 10
	opts := Options{FileBytes: fileBytes, Preallocate: true}
	w := mustDirect(t, src, opts)
	waitSpare(t, w)
	old := appendConcurrently(t, w, "old", 100)
	if _, err := w.Prune(func(string) (uint64, bool) { return old[len(old)-1].seq, true }); err != nil {
		t.Fatal(err)
	}
	for recycledFiles(w) == 0 {
		// Roll until a pruned file was recycled into the spare and a
		// later roll took it.
		appendConcurrently(t, w, "old", 8)
		if _, err := w.Prune(func(string) (uint64, bool) { return 1 << 40, true }); err != nil {
			t.Fatal(err)
		}
	}
	// Records from here on land in files started from spares (recycled
	// or zeros); everything before is pruned or replays too.
	want := appendConcurrently(t, w, "new", 60)

	dst := t.TempDir()
	copyDir(t, src, dst, nil)
	w2 := mustDirect(t, dst, opts)
	got := replayAll(t, w2)
	if len(got) < len(want) {
		t.Fatalf("replayed %d records, want at least the %d new ones", len(got), len(want))
	}
	checkEntries(t, got[len(got)-len(want):], want)
	for _, e := range got[:len(got)-len(want)] {
		if e.rec.Stream != "old" {
			t.Fatalf("record seq %d of stream %q before the new ones", e.seq, e.rec.Stream)
		}
	}
	w2.filesMu.Lock()
	path, frames := w2.active.path, w2.active.size
	w2.filesMu.Unlock()
	if st, err := os.Stat(path); err != nil || st.Size() != frames {
		t.Fatalf("active file: %v, %d bytes on disk, %d of frames: Open did not cut the tail", err, st.Size(), frames)
	}
}

func recycledFiles(w *WAL) int {
	w.spareMu.Lock()
	defer w.spareMu.Unlock()
	return w.recycled
}

// TestDirectIOFallsBack: on a file system without O_DIRECT the WAL writes
// through the page cache and says so. (tmpfs has O_DIRECT since Linux 6.6,
// so the probe is what fails here.)
func TestDirectIOFallsBack(t *testing.T) {
	probe := probeDirect
	probeDirect = func(string) bool { return false }
	t.Cleanup(func() { probeDirect = probe })
	dir := t.TempDir()
	w := mustOpen(t, dir, Options{DirectIO: true})
	if w.DirectIO() {
		t.Fatal("DirectIO() = true where O_DIRECT is not supported")
	}
	want := appendConcurrently(t, w, "s", 20)
	w.Close()
	w = mustOpen(t, dir, Options{DirectIO: true})
	checkEntries(t, replayAll(t, w), want)
}
