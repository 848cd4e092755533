package wal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// waitSpare waits until w has a spare ready (or fails the test).
func waitSpare(t *testing.T, w *WAL) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !w.spareReadyNow() {
		if time.Now().After(deadline) {
			w.spareMu.Lock()
			err := w.spareErr
			w.spareMu.Unlock()
			t.Fatalf("no spare file after 10s (last error: %v)", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitPrezeroed waits until the active file is a preallocated one of size
// bytes (the writer rolls to the spare after acknowledging a group).
func waitPrezeroed(t *testing.T, w *WAL, size int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.filesMu.Lock()
		path := w.active.path
		w.filesMu.Unlock()
		if st, err := os.Stat(path); err == nil && st.Size() == size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the WAL did not move to the spare file once it was ready")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPreallocate: with Preallocate the WAL leaves the file it opened with
// once a spare is ready, writes over zeros from then on, cuts each sealed
// file to its frames, and a reopen (the last file still ends in zeros, as
// after a crash) replays every record and keeps appending after them.
func TestPreallocate(t *testing.T) {
	dir := t.TempDir()
	const fileBytes = 64 << 10
	opts := Options{FileBytes: fileBytes, Preallocate: true, zeroFillAlways: true}
	w := mustOpen(t, dir, opts)
	var want []entry
	add := func(n int) {
		for range n {
			r := rec("s", int64(len(want)), 1000)
			want = append(want, entry{mustAppend(t, w, r), r})
		}
	}
	add(3) // into the plain file the WAL opened with
	waitSpare(t, w)
	add(1) // then rolled to the spare
	waitPrezeroed(t, w, fileBytes)
	add(200) // about three files of 64 KiB, each started from a spare

	names := walNames(t, dir)
	if len(names) < 4 {
		t.Fatalf("WAL files %v: want the opening file and at least three prezeroed ones", names)
	}
	w.filesMu.Lock()
	sealed := append([]*fileInfo(nil), w.sealed...)
	active := *w.active
	w.filesMu.Unlock()
	for _, f := range sealed {
		st, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != f.size {
			t.Fatalf("sealed %s is %d bytes on disk, its frames %d: zeros left behind", filepath.Base(f.path), st.Size(), f.size)
		}
	}
	if st, err := os.Stat(active.path); err != nil || st.Size() != fileBytes || active.size >= fileBytes {
		t.Fatalf("active file: %v, on disk %d bytes, frames %d; want a %d-byte prezeroed file", err, st.Size(), active.size, fileBytes)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen: the zeros after the last frame end the log like a torn tail.
	w = mustOpen(t, dir, opts)
	checkEntries(t, replayAll(t, w), want)
	add(5)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = mustOpen(t, dir, Options{FileBytes: fileBytes}) // and without Preallocate
	checkEntries(t, replayAll(t, w), want)
}

// TestPreallocatedTornTail: a frame torn in the zeros of a prezeroed last
// file (a crash during its write) is cut off; the records before it stay.
func TestPreallocatedTornTail(t *testing.T) {
	src := t.TempDir()
	opts := Options{FileBytes: 1 << 20, Preallocate: true, zeroFillAlways: true}
	w := mustOpen(t, src, opts)
	mustAppend(t, w, rec("s", 0, 500))
	waitSpare(t, w)
	var want []entry
	for i := range 10 {
		r := rec("s", int64(1+i), 700)
		want = append(want, entry{mustAppend(t, w, r), r})
	}
	waitPrezeroed(t, w, 1<<20)
	w.filesMu.Lock()
	activeName, end := filepath.Base(w.active.path), w.active.size
	w.filesMu.Unlock()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	dst := t.TempDir()
	copyDir(t, src, dst, func(name string, b []byte) []byte {
		if name == activeName {
			// The header and half the payload of the next frame.
			torn := appendFrame(nil, want[len(want)-1].seq+1, rec("s", 11, 700))
			copy(b[end:], torn[:350])
		}
		return b
	})
	w = mustOpen(t, dst, opts)
	got := replayAll(t, w)
	checkEntries(t, got[len(got)-len(want):], want)
	if w.Truncated() != 1<<20-end {
		t.Fatalf("truncated %d bytes, want the %d after the last frame", w.Truncated(), 1<<20-end)
	}
	r := rec("s", 11, 700)
	if seq := mustAppend(t, w, r); seq != want[len(want)-1].seq+1 {
		t.Fatalf("next seq %d, want %d", seq, want[len(want)-1].seq+1)
	}
}

// TestPreallocateLeftoverSpare: a spare left half written by a crash is
// not a WAL file and is replaced.
func TestPreallocateLeftoverSpare(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, spareName), bytes.Repeat([]byte{7}, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	w := mustOpen(t, dir, Options{FileBytes: 64 << 10, Preallocate: true})
	waitSpare(t, w)
	b, err := os.ReadFile(filepath.Join(dir, spareName))
	if err != nil || len(b) != 64<<10 || !bytes.Equal(b, make([]byte, 64<<10)) {
		t.Fatalf("spare: %v, %d bytes, want 64 KiB of zeros", err, len(b))
	}
	if got := replayAll(t, w); len(got) != 0 {
		t.Fatalf("replayed %d records from a spare", len(got))
	}
}

// TestPreallocateRecyclesPrunedFiles: a pruned WAL file becomes the spare
// (no zeros written), the next file starts from it, and after a crash the
// old frames behind the new ones (their seqs are older) end the log like
// a torn tail: every record written since replays, nothing from before.
func TestPreallocateRecyclesPrunedFiles(t *testing.T) {
	dir := t.TempDir()
	const fileBytes = 4 << 10
	opts := Options{FileBytes: fileBytes, Preallocate: true}
	w := mustOpen(t, dir, opts)
	waitSpare(t, w) // the zero-filled spare prepared at Open
	// 1 KiB frames: the WAL moves to the spare, then rolls every four
	// records. Files fill far faster than zeroFillMinLife, so no new
	// zero-filled spare is prepared: the spare Prune leaves is the only one.
	for i := range 20 {
		mustAppend(t, w, rec("old", int64(i), 1024))
	}
	n, err := w.Prune(func(string) (uint64, bool) { return 1 << 40, true })
	if err != nil || n == 0 {
		t.Fatalf("Prune: %d files, %v", n, err)
	}
	// The writer may still be finishing the last record's group: if it
	// sees the spare ready then, it rolls away from its plain file at once
	// and takes the spare, which is as good.
	w.spareMu.Lock()
	recycled, st := w.recycled, w.spareState
	w.spareMu.Unlock()
	if recycled < 1 || st == sparePreparing {
		t.Fatalf("recycled %d, spare state %d: want the first pruned file as the spare", recycled, st)
	}
	// The next roll starts from the recycled file: append until a record
	// is in it (a file bigger on disk than its frames).
	var want []entry
	inRecycled := func() (string, bool) {
		w.filesMu.Lock()
		path, frames := w.active.path, w.active.size
		w.filesMu.Unlock()
		st, err := os.Stat(path)
		return path, err == nil && frames > 0 && st.Size() > frames
	}
	var active string
	for i := 0; ; i++ {
		if i == 20 {
			t.Fatal("no record went into the recycled file")
		}
		r := rec("new", int64(i), 1000)
		want = append(want, entry{mustAppend(t, w, r), r})
		var ok bool
		if active, ok = inRecycled(); ok {
			break
		}
	}
	b, err := os.ReadFile(active)
	if err != nil || len(b) < fileBytes || bytes.Equal(b[len(b)-100:], make([]byte, 100)) {
		t.Fatalf("active file %s: %v, %d bytes; want a recycled file (old frames, not zeros, at its end)", filepath.Base(active), err, len(b))
	}
	w.Close() // the active file keeps its old frames behind the new ones

	w = mustOpen(t, dir, opts)
	var got []entry
	for _, e := range replayAll(t, w) {
		if e.rec.Stream == "new" {
			got = append(got, e)
		}
	}
	checkEntries(t, got, want)
	if w.Truncated() == 0 {
		t.Fatal("the old frames after the last new one were not cut off")
	}
}

// TestPreallocateNoZerosWhenFilesFillFast: files that fill in less than
// zeroFillMinLife get no zero-filled spare after their roll (it would
// double the WAL's disk writes); the WAL goes on with plain files.
func TestPreallocateNoZerosWhenFilesFillFast(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, Options{FileBytes: 4 << 10, Preallocate: true})
	waitSpare(t, w) // the one prepared at Open
	for i := range 40 {
		mustAppend(t, w, rec("s", int64(i), 1024))
	}
	w.spareMu.Lock()
	state := w.spareState
	w.spareMu.Unlock()
	if state != spareNone {
		t.Fatalf("spare state %d after fast rolls, want none (no zeros written)", state)
	}
	if _, err := os.Stat(w.sparePath()); !os.IsNotExist(err) {
		t.Fatalf("a spare file exists: %v", err)
	}
}

// TestPreallocateCrashAfterTakingTheSpare: a crash right after a roll
// renamed the spare (the new last file is all zeros, the sealed one cut to
// its frames) loses nothing and keeps the seqs running.
func TestPreallocateCrashAfterTakingTheSpare(t *testing.T) {
	dir := t.TempDir()
	opts := Options{FileBytes: 64 << 10, Preallocate: true, zeroFillAlways: true}
	w := mustOpen(t, dir, opts)
	var want []entry
	for i := range 5 {
		r := rec("s", int64(i), 1000)
		want = append(want, entry{mustAppend(t, w, r), r})
	}
	w.filesMu.Lock()
	active, frames := w.active.path, w.active.size
	w.filesMu.Unlock()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// What a roll does before taking the spare: cut the file to its frames.
	if err := os.Truncate(active, frames); err != nil {
		t.Fatal(err)
	}
	next := want[len(want)-1].seq + 1
	if err := os.WriteFile(filepath.Join(dir, fileName(next)), make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	w = mustOpen(t, dir, opts)
	checkEntries(t, replayAll(t, w), want)
	if seq := mustAppend(t, w, rec("s", 5, 1000)); seq != next {
		t.Fatalf("next seq %d, want %d", seq, next)
	}
}
