package segment

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/recbatch"
)

func TestNewLogStartsAtZero(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "topic-0")
	l := openLog(t, dir, Config{})
	if l.StartOffset() != 0 || l.EndOffset() != 0 || l.Size() != 0 {
		t.Fatalf("new log: start %d end %d size %d", l.StartOffset(), l.EndOffset(), l.Size())
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000000.log")); err != nil {
		t.Fatalf("active segment file: %v", err)
	}
	if b, err := l.Read(0, 100, 100, true); err != nil || len(b) != 0 {
		t.Fatalf("read empty log: %d bytes, %v", len(b), err)
	}
	if _, err := l.Read(1, 100, 100, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past end: %v", err)
	}
}

func TestAppendReadRoundTrip(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{IndexIntervalBytes: 200})
	bs := appendBatches(t, l, 20, 3, 1000) // offsets 0..59
	end := l.EndOffset()
	if end != 60 || l.Size() != int64(len(concat(bs))) {
		t.Fatalf("end %d size %d", end, l.Size())
	}
	if got := readAll(t, l); !bytes.Equal(got, concat(bs)) {
		t.Fatal("read all differs from appended bytes")
	}

	// Every offset, including those inside a batch, starts at its batch.
	for off := int64(0); off < end; off++ {
		got, err := l.Read(off, 1<<20, end, false)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if want := concat(bs[off/3:]); !bytes.Equal(got, want) {
			t.Fatalf("Read(%d): %d bytes, want %d", off, len(got), len(want))
		}
	}

	one, two := len(bs[0]), len(bs[0])+len(bs[1])
	cases := []struct {
		name      string
		offset    int64
		maxBytes  int
		maxOffset int64
		minOne    bool
		want      []byte
	}{
		{"maxBytes exact two", 0, two, end, false, concat(bs[:2])},
		{"maxBytes just under three", 0, two + len(bs[2]) - 1, end, false, concat(bs[:2])},
		{"maxBytes below first, no minOne", 4, one - 1, end, false, nil},
		{"maxBytes below first, minOne", 4, one - 1, end, true, bs[1]},
		{"maxBytes zero, minOne", 4, 0, end, true, bs[1]},
		{"hwm at batch boundary", 0, 1 << 20, 15, false, concat(bs[:5])},
		{"hwm inside batch keeps it", 0, 1 << 20, 16, false, concat(bs[:6])},
		{"offset at hwm", 15, 1 << 20, 15, true, nil},
		{"offset past hwm", 20, 1 << 20, 15, true, nil},
		{"offset at end", end, 1 << 20, end, true, nil},
	}
	for _, c := range cases {
		got, err := l.Read(c.offset, c.maxBytes, c.maxOffset, c.minOne)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s: got %d bytes (%v), want %d", c.name, len(got), err, len(c.want))
		}
	}
	for _, off := range []int64{-1, end + 1, 1 << 40} {
		if _, err := l.Read(off, 100, end+10, true); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Errorf("Read(%d): %v, want ErrOffsetOutOfRange", off, err)
		}
	}
}

func TestAppendRejects(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	mustAppend(t, l, mkBatch(0, 1, 2))
	if err := l.Append(mkBatch(5, 1, 1)); !errors.Is(err, ErrOffsetMismatch) {
		t.Errorf("gap: %v", err)
	}
	if err := l.Append(mkBatch(1, 1, 1)); !errors.Is(err, ErrOffsetMismatch) {
		t.Errorf("overlap: %v", err)
	}
	bad := mkBatch(2, 1, 1)
	bad[len(bad)-1] ^= 1
	if err := l.Append(bad); !errors.Is(err, recbatch.ErrCorrupt) {
		t.Errorf("bad crc: %v", err)
	}
	if err := l.Append(append(mkBatch(2, 1, 1), 0)); !errors.Is(err, recbatch.ErrInvalid) {
		t.Errorf("trailing byte: %v", err)
	}
	if l.EndOffset() != 2 || len(readAll(t, l)) != len(mkBatch(0, 1, 2)) {
		t.Fatalf("rejected appends changed the log: end %d", l.EndOffset())
	}
}

func TestRollBySize(t *testing.T) {
	dir := t.TempDir()
	size := len(mkBatch(0, 0, 2))
	l := openLog(t, dir, Config{SegmentBytes: int64(3 * size)})
	bs := appendBatches(t, l, 10, 2, 0)
	logs := segFiles(t, dir, ".log")
	want := []string{"00000000000000000000.log", "00000000000000000006.log", "00000000000000000012.log", "00000000000000000018.log"}
	if len(logs) != len(want) {
		t.Fatalf("segments %v, want %v", logs, want)
	}
	for i, p := range logs {
		fi, _ := os.Stat(p)
		if filepath.Base(p) != want[i] || fi.Size() > int64(3*size) {
			t.Errorf("segment %s has %d bytes", p, fi.Size())
		}
	}
	// Reads span segments and honour maxBytes across them.
	if got := readAll(t, l); !bytes.Equal(got, concat(bs)) {
		t.Fatal("read across segments differs")
	}
	if got, _ := l.Read(5, 4*size, 100, false); !bytes.Equal(got, concat(bs[2:6])) {
		t.Fatalf("spanning read with maxBytes: %d headers", len(headers(t, got)))
	}
	// A batch larger than SegmentBytes still goes in (alone).
	big := mkBatch(l.EndOffset(), 0, 40)
	mustAppend(t, l, big)
	mustAppend(t, l, mkBatch(l.EndOffset(), 0, 1))
	if n := len(segFiles(t, dir, ".log")); n != 6 {
		t.Fatalf("%d segments after oversized batch, want 6", n)
	}
}

func TestRollByAge(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	l := openLog(t, dir, Config{SegmentAge: time.Hour, Now: clk.Now})
	clk.Advance(5 * time.Hour) // an empty segment never rolls, however old
	mustAppend(t, l, mkBatch(0, 0, 1))
	clk.Advance(59 * time.Minute)
	mustAppend(t, l, mkBatch(1, 0, 1))
	if n := len(segFiles(t, dir, ".log")); n != 1 {
		t.Fatalf("%d segments before segment.ms elapsed", n)
	}
	clk.Advance(2 * time.Minute) // 61 minutes after the first append
	mustAppend(t, l, mkBatch(2, 0, 1))
	logs := segFiles(t, dir, ".log")
	if len(logs) != 2 || filepath.Base(logs[1]) != "00000000000000000002.log" {
		t.Fatalf("segments %v", logs)
	}
	// The new segment's age counts from its own first append.
	clk.Advance(30 * time.Minute)
	mustAppend(t, l, mkBatch(3, 0, 1))
	if n := len(segFiles(t, dir, ".log")); n != 2 {
		t.Fatalf("%d segments, want 2", n)
	}
}

func TestScanHeaders(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{SegmentBytes: 400, IndexIntervalBytes: 100})
	appendBatches(t, l, 12, 3, 0)
	var bases []int64
	if err := l.ScanHeaders(10, func(h recbatch.Header) error {
		bases = append(bases, h.BaseOffset)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(bases) != 9 || bases[0] != 9 || bases[8] != 33 {
		t.Fatalf("bases from 10: %v", bases)
	}
	stop := errors.New("stop")
	n := 0
	if err := l.ScanHeaders(-5, func(recbatch.Header) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("fn error: %v after %d calls", err, n)
	}
	n = 0
	if err := l.ScanHeaders(l.EndOffset(), func(recbatch.Header) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("scan at end: %d calls, %v", n, err)
	}
}

func TestCloseAndRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	l, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, mkBatch(0, 0, 1))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := l.Append(mkBatch(1, 0, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := l.Read(0, 100, 1, true); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	if _, _, _, err := l.OffsetForTimestamp(0); !errors.Is(err, ErrClosed) {
		t.Errorf("OffsetForTimestamp after Close: %v", err)
	}
	tomb, err := l.Remove()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("dir still exists: %v", err)
	}
	if tombs, err := SweepEntombed(filepath.Dir(dir)); err != nil || len(tombs) != 1 || tombs[0] != tomb {
		t.Fatalf("entombed dirs %v (%v), want [%s]", tombs, err, tomb)
	}
}

// TestReadAcrossHeaderWindows: a read copies batches from the header
// window when the window holds them and reads the file otherwise (more
// than a window's worth, or a batch larger than the window); both give the
// appended bytes, with the pooled windows reused between reads.
func TestReadAcrossHeaderWindows(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{IndexIntervalBytes: 4096})
	var bs [][]byte
	for i := range 120 {
		n := 10
		if i%40 == 39 {
			n = 1500 // larger than the 16 KiB window
		}
		bs = append(bs, appendBatches(t, l, 1, n, int64(i)*10_000)...)
	}
	if len(concat(bs)) < 4*headerWindow {
		t.Fatalf("fixture of %d bytes does not span several windows", len(concat(bs)))
	}
	end := l.EndOffset()
	batchAt := func(off int64) int {
		for i, b := range bs {
			if h, _ := recbatch.ParseHeader(b); h.NextOffset() > off {
				return i
			}
		}
		return len(bs)
	}
	for _, maxBytes := range []int{1, 600, 5000, headerWindow, 3 * headerWindow, 1 << 20} {
		for off := int64(0); off < end; off += 7 {
			got, err := l.Read(off, maxBytes, end, true)
			if err != nil {
				t.Fatalf("Read(%d, %d): %v", off, maxBytes, err)
			}
			first := batchAt(off)
			want, last := bs[first], first+1
			for last < len(bs) && len(want)+len(bs[last]) <= maxBytes {
				want = append(slices.Clip(want), bs[last]...)
				last++
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Read(%d, %d): %d bytes, want %d (batches %d..%d)", off, maxBytes, len(got), len(want), first, last-1)
			}
		}
	}
}
