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

// TestPreallocate: with Preallocate the WAL leaves the file it opened with
// once a spare is ready, writes over zeros from then on, cuts each sealed
// file to its frames, and a reopen (the last file still ends in zeros, as
// after a crash) replays every record and keeps appending after them.
func TestPreallocate(t *testing.T) {
	dir := t.TempDir()
	const fileBytes = 64 << 10
	opts := Options{FileBytes: fileBytes, Preallocate: true}
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
	if !w.prezeroed {
		t.Fatal("the WAL did not move to the spare file once it was ready")
	}
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
	opts := Options{FileBytes: 1 << 20, Preallocate: true}
	w := mustOpen(t, src, opts)
	mustAppend(t, w, rec("s", 0, 500))
	waitSpare(t, w)
	var want []entry
	for i := range 10 {
		r := rec("s", int64(1+i), 700)
		want = append(want, entry{mustAppend(t, w, r), r})
	}
	if !w.prezeroed {
		t.Fatal("not on a prezeroed file")
	}
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
