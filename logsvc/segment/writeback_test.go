package segment

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// writebackRange is one startWriteback call.
type writebackRange struct {
	file   string
	off, n int64
}

// recordWriteback replaces startWriteback for the test and returns the
// calls made so far.
func recordWriteback(t *testing.T) *[]writebackRange {
	var got []writebackRange
	startWriteback = func(f *os.File, off, n int64) {
		got = append(got, writebackRange{filepath.Base(f.Name()), off, n})
	}
	t.Cleanup(func() { startWriteback = writeback })
	return &got
}

// checkContiguous fails unless each file's ranges run from its first
// range's offset without gaps or overlaps, each at least min bytes, and
// returns where each file's last range ends.
func checkContiguous(t *testing.T, got []writebackRange, min int64) map[string]int64 {
	t.Helper()
	next := map[string]int64{}
	for _, r := range got {
		if at, ok := next[r.file]; ok && r.off != at {
			t.Fatalf("%s: writeback from %d, the previous range ended at %d", r.file, r.off, at)
		}
		if r.n < min {
			t.Fatalf("%s: writeback of %d bytes at %d, want at least %d", r.file, r.n, r.off, min)
		}
		next[r.file] = r.off + r.n
	}
	return next
}

// TestWriteback: every Config.WritebackBytes appended to a segment are
// handed to the kernel's writeback once, in order, nothing skipped; a new
// segment starts at 0, a reopened active segment at its recovered size (an
// earlier process wrote what is before it), a truncated one at the cut;
// a negative WritebackBytes turns it off.
func TestWriteback(t *testing.T) {
	got := recordWriteback(t)
	dir := t.TempDir()
	const every = 4096
	cfg := Config{WritebackBytes: every, SegmentBytes: 64 << 10}
	l := openLog(t, dir, cfg)
	now := time.Now().UnixMilli()     // not older than segment.ms: a reopened segment would roll
	appendBatches(t, l, 400, 10, now) // a few hundred bytes each: 2-3 segments
	segs := segFiles(t, dir, logSuffix)
	if len(segs) < 2 {
		t.Fatalf("segments %v, want the log to roll", segs)
	}
	ends := checkContiguous(t, *got, every)
	for _, path := range segs {
		name := filepath.Base(path)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		first := slices.IndexFunc(*got, func(r writebackRange) bool { return r.file == name })
		if first < 0 || (*got)[first].off != 0 {
			t.Errorf("%s (%d bytes): no writeback from 0 (%v)", name, fi.Size(), *got)
			continue
		}
		if rest := fi.Size() - ends[name]; rest < 0 || rest >= every {
			t.Errorf("%s: %d bytes, writeback started up to %d: %d bytes left behind, want 0 to %d", name, fi.Size(), ends[name], rest, every-1)
		}
	}

	// Reopened: the active segment continues from its recovered size.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	active := filepath.Base(segs[len(segs)-1])
	fi, err := os.Stat(segs[len(segs)-1])
	if err != nil {
		t.Fatal(err)
	}
	*got = nil
	cfg.SegmentBytes = 1 << 20 // room to write back before the next roll
	l = openLog(t, dir, cfg)
	appendBatches(t, l, 40, 10, now+10_000)
	if len(*got) == 0 || (*got)[0].file != active || (*got)[0].off != fi.Size() {
		t.Fatalf("after reopening at %d bytes of %s: writebacks %v, want the first from there", fi.Size(), active, *got)
	}
	checkContiguous(t, *got, every)

	// Truncated: writeback resumes at the cut.
	cut := l.EndOffset() - 200
	if _, err := l.TruncateTo(cut); err != nil {
		t.Fatal(err)
	}
	segs = segFiles(t, dir, logSuffix)
	active = filepath.Base(segs[len(segs)-1])
	if fi, err = os.Stat(segs[len(segs)-1]); err != nil {
		t.Fatal(err)
	}
	*got = nil
	appendBatches(t, l, 40, 10, now+20_000)
	if len(*got) == 0 || (*got)[0].file != active || (*got)[0].off != fi.Size() {
		t.Fatalf("after truncating %s to %d bytes: writebacks %v, want the first from there", active, fi.Size(), *got)
	}
	checkContiguous(t, *got, every)

	// Off.
	*got = nil
	off := openLog(t, t.TempDir(), Config{WritebackBytes: -1})
	appendBatches(t, off, 100, 10, 0)
	if len(*got) != 0 {
		t.Fatalf("WritebackBytes -1: writebacks %v", *got)
	}
}
