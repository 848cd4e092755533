package segment

import (
	"bytes"
	"errors"
	"testing"
)

// TestTruncateTo cuts a multi-segment log inside a batch, at a segment
// boundary and inside the first segment: each time the log ends at the
// cut batch's base, holds exactly the batches before it (also after a
// reopen), has indexes that find every remaining offset, and takes new
// appends at its new end.
func TestTruncateTo(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentBytes: 600, IndexIntervalBytes: 64}
	l := openLog(t, dir, cfg)
	batches := appendBatches(t, l, 20, 3, 1000) // offsets 0..59, several segments
	if len(l.segs) < 3 {
		t.Fatalf("want several segments, have %d", len(l.segs))
	}
	check := func(l *Log, keep int) {
		t.Helper()
		if l.EndOffset() != int64(3*keep) {
			t.Fatalf("end %d, want %d", l.EndOffset(), 3*keep)
		}
		if got := readAll(t, l); !bytes.Equal(got, concat(batches[:keep])) {
			t.Fatalf("log holds %d bytes, want the first %d batches", len(got), keep)
		}
		for o := int64(0); o < l.EndOffset(); o++ {
			b, err := l.Read(o, 1, l.EndOffset(), true)
			if err != nil || headers(t, b)[0].BaseOffset != o/3*3 {
				t.Fatalf("read at %d: %v", o, err)
			}
		}
	}
	// Inside batch 15 (offsets 45..47): the batch goes too.
	end, err := l.TruncateTo(46)
	if err != nil || end != 45 {
		t.Fatalf("truncate to 46: end %d, %v", end, err)
	}
	check(l, 15)
	// At a segment boundary.
	boundary := l.segs[len(l.segs)-1].base
	if boundary == 0 {
		t.Fatal("no second segment")
	}
	if end, err = l.TruncateTo(boundary); err != nil || end != boundary {
		t.Fatalf("truncate to the boundary %d: %d, %v", boundary, end, err)
	}
	check(l, int(boundary/3))
	// Inside the first segment, then new batches at the new end.
	if end, err = l.TruncateTo(4); err != nil || end != 3 {
		t.Fatalf("truncate to 4: %d, %v", end, err)
	}
	check(l, 1)
	batches = append(batches[:1], appendBatches(t, l, 5, 3, 5000)...)
	check(l, 6)
	l.Close()
	check(openLog(t, dir, cfg), 6)

	// Past the end: nothing; at or below the start: ResetTo's job.
	l2 := openLog(t, copyDir(t, dir), cfg)
	if end, err := l2.TruncateTo(100); err != nil || end != 18 {
		t.Fatalf("truncate past the end: %d, %v", end, err)
	}
	if _, err := l2.TruncateTo(0); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("truncate to the start: %v", err)
	}
}

// TestResetTo empties a log at an offset past, inside and before its old
// range: the start and end are that offset (also after a reopen) and
// appends continue there.
func TestResetTo(t *testing.T) {
	for _, at := range []int64{500, 7, 0} {
		dir := t.TempDir()
		cfg := Config{SegmentBytes: 600}
		l := openLog(t, dir, cfg)
		appendBatches(t, l, 10, 3, 1000)
		if err := l.ResetTo(at); err != nil {
			t.Fatal(err)
		}
		if l.StartOffset() != at || l.EndOffset() != at || l.Size() != 0 {
			t.Fatalf("reset to %d: [%d, %d) size %d", at, l.StartOffset(), l.EndOffset(), l.Size())
		}
		after := appendBatches(t, l, 2, 2, 9000)
		l.Close()
		l = openLog(t, dir, cfg)
		if l.StartOffset() != at || l.EndOffset() != at+4 || !bytes.Equal(readAll(t, l), concat(after)) {
			t.Fatalf("reopened after reset to %d: [%d, %d)", at, l.StartOffset(), l.EndOffset())
		}
	}
}
