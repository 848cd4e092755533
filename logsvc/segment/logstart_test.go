package segment

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestDeleteBeforeMovesStartDurably(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	l, bs := threeSegments(t, dir, clk) // [0,3) [3,6) [6,9), one 3-record batch each

	if err := l.DeleteBefore(10); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("past the end: %v", err)
	}
	// Inside the second segment's batch: the first segment goes, the start
	// is exactly 4, and a read at 4 returns the whole batch holding it.
	if err := l.DeleteBefore(4); err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() != 4 || l.Size() != int64(len(bs[1])+len(bs[2])) {
		t.Fatalf("start %d size %d", l.StartOffset(), l.Size())
	}
	if _, err := os.Stat(segmentPath(dir, 0, logSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("segment 0 still on disk: %v", err)
	}
	for _, off := range []int64{0, 3} {
		if _, err := l.Read(off, 1<<20, 9, true); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read %d below the start: %v", off, err)
		}
	}
	if got, err := l.Read(4, 1<<20, 9, true); err != nil || !bytes.Equal(got, concat(bs[1:])) {
		t.Fatalf("read at the start: %d bytes, %v", len(got), err)
	}
	// By time: offset 3 has the earliest timestamp of the remaining data
	// but is below the start; the answer is 4.
	if o, _, ok, err := l.OffsetForTimestamp(0); err != nil || !ok || o != 4 {
		t.Fatalf("offset for timestamp 0: %d %v %v", o, ok, err)
	}
	// Never backwards; retention does not move it back either.
	if err := l.DeleteBefore(2); err != nil || l.StartOffset() != 4 {
		t.Fatalf("backwards: start %d, %v", l.StartOffset(), err)
	}
	if _, err := l.ApplyRetention(-1, 1<<30); err != nil || l.StartOffset() != 4 {
		t.Fatalf("retention: start %d, %v", l.StartOffset(), err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// The start survives a restart.
	l = openLog(t, dir, Config{Now: clk.Now})
	if l.StartOffset() != 4 || l.EndOffset() != 9 {
		t.Fatalf("reopened: start %d end %d", l.StartOffset(), l.EndOffset())
	}
	if _, err := l.Read(3, 1<<20, 9, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below the start after reopen: %v", err)
	}

	// Everything: the active segment is rolled so that the empty log
	// remembers start == end == 9, and appends continue there.
	if err := l.DeleteBefore(9); err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() != 9 || l.EndOffset() != 9 || l.Size() != 0 {
		t.Fatalf("all deleted: start %d end %d size %d", l.StartOffset(), l.EndOffset(), l.Size())
	}
	if err := l.Append(mkBatch(9, clk.Now().UnixMilli(), 2)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, Config{Now: clk.Now})
	if l.StartOffset() != 9 || l.EndOffset() != 11 {
		t.Fatalf("reopened after deleting all: start %d end %d", l.StartOffset(), l.EndOffset())
	}
}

func TestLogStartCheckpointCrashCases(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	l, _ := threeSegments(t, dir, clk)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash after the checkpoint was written but before the segments
	// below it were deleted: Open deletes them.
	if err := writeLogStart(dir, 6); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, Config{Now: clk.Now})
	if l.StartOffset() != 6 {
		t.Fatalf("start %d, want 6", l.StartOffset())
	}
	for _, base := range []int64{0, 3} {
		if _, err := os.Stat(segmentPath(dir, base, logSuffix)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("segment %d below the checkpointed start still on disk: %v", base, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A checkpoint beyond the end (the active segment lost its tail; the
	// WAL replay restores it) does not move the start past the end.
	if err := writeLogStart(dir, 50); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, Config{Now: clk.Now})
	if l.StartOffset() != 9 || l.EndOffset() != 9 {
		t.Fatalf("checkpoint past the end: start %d end %d", l.StartOffset(), l.EndOffset())
	}
	l.Close()
	// Garbage is ignored, and no temporary file is left behind.
	if err := os.WriteFile(filepath.Join(dir, logStartFile), []byte("soon"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := readLogStart(dir); n != 0 || err != nil {
		t.Fatalf("garbage checkpoint: %d %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, logStartFile+".tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary checkpoint left: %v", err)
	}
}

func TestSetConfigRollsAtTheNewSize(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	clk := newClock()
	appendBatches(t, l, 3, 2, clk.Now().UnixMilli())
	if n := len(l.segs); n != 1 {
		t.Fatalf("%d segments before the change", n)
	}
	l.SetConfig(Config{SegmentBytes: 1}) // every batch rolls
	appendBatches(t, l, 3, 2, clk.Now().UnixMilli())
	if n := len(l.segs); n != 4 {
		t.Fatalf("%d segments after the change, want 4", n)
	}
}
