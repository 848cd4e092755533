package segment

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// threeSegments builds segments [0,3) [3,6) [6,9) whose batch timestamps
// are 10h, 5h and 1h before the clock.
func threeSegments(t *testing.T, dir string, clk *fakeClock) (*Log, [][]byte) {
	l, err := Open(dir, Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	now := clk.Now().UnixMilli()
	var bs [][]byte
	for i, age := range []time.Duration{10 * time.Hour, 5 * time.Hour, time.Hour} {
		if i > 0 {
			if err := l.Roll(); err != nil {
				t.Fatal(err)
			}
		}
		bs = append(bs, appendBatches(t, l, 1, 3, now-age.Milliseconds())...)
	}
	return l, bs
}

func TestRetentionByTime(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	l, bs := threeSegments(t, dir, clk)
	if n, err := l.ApplyRetention(-1, -1); n != 0 || err != nil {
		t.Fatalf("disabled: %d %v", n, err)
	}
	// Segment 0's newest record is 10h-1ms+2ms old: beyond 6h.
	if n, err := l.ApplyRetention((6 * time.Hour).Milliseconds(), -1); n != 1 || err != nil {
		t.Fatalf("6h: deleted %d, %v", n, err)
	}
	if l.StartOffset() != 3 || l.Size() != int64(len(bs[1])+len(bs[2])) {
		t.Fatalf("after 6h: start %d size %d", l.StartOffset(), l.Size())
	}
	if _, err := l.Read(0, 1000, 9, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read deleted offset: %v", err)
	}
	if got, _ := l.Read(3, 1<<20, 9, true); !bytes.Equal(got, concat(bs[1:])) {
		t.Fatal("remaining data differs")
	}
	if o, _, f, _ := l.OffsetForTimestamp(0); !f || o != 3 {
		t.Fatalf("earliest by time after retention: %d %v", o, f)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openLog(t, dir, Config{Now: clk.Now})
	if l.StartOffset() != 3 || l.EndOffset() != 9 {
		t.Fatalf("reopened: start %d end %d", l.StartOffset(), l.EndOffset())
	}
	// Everything expires, including the active segment: it is rolled so the
	// log keeps its end offset.
	clk.Advance(24 * time.Hour)
	if n, err := l.ApplyRetention((6 * time.Hour).Milliseconds(), -1); n != 2 || err != nil {
		t.Fatalf("all expired: deleted %d, %v", n, err)
	}
	checkEmptyAt(t, l, dir, 9)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, Config{Now: clk.Now})
	checkEmptyAt(t, l, dir, 9)
	mustAppend(t, l, mkBatch(9, clk.Now().UnixMilli(), 2))
	if l.StartOffset() != 9 || l.EndOffset() != 11 {
		t.Fatalf("append to emptied log: start %d end %d", l.StartOffset(), l.EndOffset())
	}
	// Nothing is left to expire; an empty active segment is never deleted.
	if n, err := l.ApplyRetention(0, 0); n != 1 || err != nil {
		t.Fatalf("retention 0: %d %v", n, err)
	}
	if n, err := l.ApplyRetention(0, 0); n != 0 || err != nil {
		t.Fatalf("retention on empty log: %d %v", n, err)
	}
	checkEmptyAt(t, l, dir, 11)
}

func checkEmptyAt(t *testing.T, l *Log, dir string, off int64) {
	t.Helper()
	if l.StartOffset() != off || l.EndOffset() != off || l.Size() != 0 {
		t.Fatalf("emptied log: start %d end %d size %d, want %d", l.StartOffset(), l.EndOffset(), l.Size(), off)
	}
	logs := segFiles(t, dir, ".log")
	if len(logs) != 1 || filepath.Base(logs[0]) != segName(off) {
		t.Fatalf("files %v, want only %s", logs, segName(off))
	}
	if b, err := l.Read(off, 100, off+10, true); err != nil || len(b) != 0 {
		t.Fatalf("read empty log: %d %v", len(b), err)
	}
	if _, err := l.Read(off-1, 100, off+10, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
}

func segName(off int64) string { return filepath.Base(segmentPath("", off, logSuffix)) }

func TestRetentionBySize(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{})
	var bs [][]byte
	for i := range 4 {
		if i > 0 {
			l.Roll()
		}
		bs = append(bs, appendBatches(t, l, 1, 2, 5)...)
	}
	seg := int64(len(bs[0]))
	if l.Size() != 4*seg {
		t.Fatalf("size %d", l.Size())
	}
	steps := []struct {
		bytes       int64
		deleted     int
		start, size int64
	}{
		{-1, 0, 0, 4 * seg},
		{4 * seg, 0, 0, 4 * seg},
		{3*seg + 1, 0, 0, 4 * seg}, // deleting one would drop below the limit
		{3 * seg, 1, 2, 3 * seg},
		{seg + 1, 1, 4, 2 * seg},
		{0, 2, 8, 0}, // the active segment goes too, after a roll
	}
	for _, s := range steps {
		n, err := l.ApplyRetention(-1, s.bytes)
		if err != nil || n != s.deleted || l.StartOffset() != s.start || l.Size() != s.size {
			t.Fatalf("retention.bytes=%d: deleted %d (%v), start %d, size %d; want %d, %d, %d",
				s.bytes, n, err, l.StartOffset(), l.Size(), s.deleted, s.start, s.size)
		}
	}
	checkEmptyAt(t, l, dir, 8)
}

// TestRetentionBelowCeiling: hybrid topics delete only segments wholly
// below the object tier's end. With every segment past both limits,
// nothing at or above the ceiling goes; the getters the uploads use see
// the segments' bounds.
func TestRetentionBelowCeiling(t *testing.T) {
	clk := newClock()
	l, bs := threeSegments(t, t.TempDir(), clk)
	defer l.Close()
	if l.SealedEnd() != 6 || l.SegmentEndAfter(0) != 3 || l.SegmentEndAfter(4) != 6 || l.SegmentEndAfter(7) != 9 {
		t.Fatalf("bounds: sealed end %d, segment ends %d %d %d", l.SealedEnd(), l.SegmentEndAfter(0), l.SegmentEndAfter(4), l.SegmentEndAfter(7))
	}
	if got, want := l.BytesFrom(3), int64(len(bs[1])+len(bs[2])); got != want {
		t.Fatalf("bytes from 3: %d, want %d", got, want)
	}
	// The ceiling falls inside segment [3,6): only [0,3) may go.
	if n, err := l.ApplyRetentionBelow(0, 0, 5); n != 1 || err != nil {
		t.Fatalf("below 5: deleted %d, %v", n, err)
	}
	if l.StartOffset() != 3 || l.EndOffset() != 9 {
		t.Fatalf("after retention below 5: [%d, %d), want [3, 9)", l.StartOffset(), l.EndOffset())
	}
	// A ceiling at a segment's end lets that segment go; the active one
	// (ending at the log end) stays below a ceiling under the end.
	if n, err := l.ApplyRetentionBelow(0, 0, 6); n != 1 || err != nil || l.StartOffset() != 6 {
		t.Fatalf("below 6: deleted %d, %v, start %d", n, err, l.StartOffset())
	}
	if n, err := l.ApplyRetentionBelow(0, 0, 8); n != 0 || err != nil || l.StartOffset() != 6 {
		t.Fatalf("below 8: deleted %d, %v, start %d", n, err, l.StartOffset())
	}
}

// TestRetiredSegmentsAreGivenBackAndSweptAtOpen: retention and
// DeleteBefore rename a segment's log file out of the segment names before
// it is given back a step at a time (package reclaim), so a crash while
// giving it back leaves a "<name>.log.deleted" file, perhaps shortened,
// never a shortened segment. Open removes such leftovers, reads the log as
// it was, and leaves files that are not retired segments alone.
func TestRetiredSegmentsAreGivenBackAndSweptAtOpen(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Config{})
	for i := range 3 {
		if i > 0 {
			l.Roll()
		}
		appendBatches(t, l, 1, 2, 5)
	}
	if n, err := l.ApplyRetention(-1, l.Size()*2/3); err != nil || n != 1 { // three equal segments
		t.Fatalf("retention: %d segments, %v; want 1", n, err)
	}
	// Retention gives its files back before it returns.
	if left := retiredNames(t, dir); len(left) != 0 {
		t.Fatalf("retention left %v", left)
	}
	if err := l.DeleteBefore(4); err != nil { // the second segment: [2, 4)
		t.Fatal(err)
	}
	// DeleteBefore's are given back in the background.
	deadline := time.Now().Add(30 * time.Second)
	for len(retiredNames(t, dir)) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if left := retiredNames(t, dir); len(left) != 0 {
		t.Fatalf("DeleteBefore left %v after 30s", left)
	}
	want := readAll(t, l)
	start, end := l.StartOffset(), l.EndOffset()
	l.Close()

	// What a crash while giving files back leaves, and a stranger.
	leftover := segmentPath(dir, 0, logSuffix) + deletedSuffix
	if err := os.WriteFile(leftover, []byte("half a batch"), 0o644); err != nil {
		t.Fatal(err)
	}
	stranger := filepath.Join(dir, "notes.deleted")
	if err := os.WriteFile(stranger, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, Config{})
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Fatalf("Open left the retired segment file: %v", err)
	}
	if _, err := os.Stat(stranger); err != nil {
		t.Fatalf("Open removed a file that is no retired segment: %v", err)
	}
	if got := readAll(t, l); l.StartOffset() != start || l.EndOffset() != end || !bytes.Equal(got, want) {
		t.Fatalf("reopened log [%d, %d) with %d bytes, want [%d, %d) with %d", l.StartOffset(), l.EndOffset(), len(got), start, end, len(want))
	}
}

// retiredNames lists the retired segment files in dir.
func retiredNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), deletedSuffix) {
			names = append(names, e.Name())
		}
	}
	return names
}
