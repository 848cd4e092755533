package segment

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fixtureCfg is the config of buildTornFixture's log.
var fixtureCfg = Config{SegmentBytes: 700, IndexIntervalBytes: 100}

// smallCfg makes several segments with several index entries each.
var smallCfg = Config{SegmentBytes: 1000, IndexIntervalBytes: 150}

func snapshotIndexes(l *Log) (idx [][]offsetEntry, times [][]timeEntry) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, s := range l.segs {
		idx = append(idx, slices.Clone(s.index))
		times = append(times, slices.Clone(s.times))
	}
	return idx, times
}

func TestReopenPreservesEverything(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, smallCfg)
	if err != nil {
		t.Fatal(err)
	}
	bs := appendBatches(t, l, 30, 2, 5000)
	idx, times := snapshotIndexes(l)
	start, end, size := l.StartOffset(), l.EndOffset(), l.Size()
	mo, mt := l.MaxTimestamp()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(idx) < 4 || len(idx[0]) == 0 || len(times[0]) == 0 {
		t.Fatalf("test needs several indexed segments, got %d", len(idx))
	}

	l = openLog(t, dir, smallCfg)
	if l.StartOffset() != start || l.EndOffset() != end || l.Size() != size {
		t.Fatalf("reopened: start %d end %d size %d, want %d %d %d", l.StartOffset(), l.EndOffset(), l.Size(), start, end, size)
	}
	if got := readAll(t, l); !bytes.Equal(got, concat(bs)) {
		t.Fatal("reopened log reads differently")
	}
	idx2, times2 := snapshotIndexes(l)
	for i := range idx {
		if !slices.Equal(idx[i], idx2[i]) || !slices.Equal(times[i][:len(times2[i])], times2[i]) {
			t.Fatalf("segment %d indexes differ after reopen", i)
		}
	}
	if o, ts := l.MaxTimestamp(); o != mo || ts != mt {
		t.Fatalf("MaxTimestamp %d/%d, want %d/%d", o, ts, mo, mt)
	}
	mustAppend(t, l, mkBatch(end, 1, 1))
	if l.EndOffset() != end+1 {
		t.Fatalf("append after reopen: end %d", l.EndOffset())
	}
}

// buildTornFixture writes a closed log whose last segment holds several
// batches and returns its dir, the batches, and how many live in the last
// segment.
func buildTornFixture(t *testing.T) (dir string, bs [][]byte, lastSeg int) {
	dir = t.TempDir()
	l, err := Open(dir, fixtureCfg)
	if err != nil {
		t.Fatal(err)
	}
	// Append until there are three segments and the last holds 4 batches.
	for {
		bs = append(bs, appendBatches(t, l, 1, 2, 100+int64(2*len(bs)))...)
		l.mu.RLock()
		nsegs, last := len(l.segs), l.active()
		l.mu.RUnlock()
		lastSeg = int(last.end-last.base) / 2
		if nsegs >= 3 && lastSeg == 4 {
			break
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if lastSeg < 3 || len(segFiles(t, dir, ".log")) < 2 {
		t.Fatalf("fixture: %d batches in last segment", lastSeg)
	}
	return dir, bs, lastSeg
}

func recbatchBase(b []byte) int64 {
	var v int64
	for _, c := range b[:8] {
		v = v<<8 | int64(c)
	}
	return v
}

// checkPrefix opens dir and checks that it holds exactly bs[:n], and that it
// accepts the next batch and keeps it across another reopen.
func checkPrefix(t *testing.T, dir string, bs [][]byte, n int, what string) {
	t.Helper()
	l, err := Open(dir, fixtureCfg)
	if err != nil {
		t.Fatalf("%s: Open: %v", what, err)
	}
	wantEnd := int64(2 * n)
	if l.EndOffset() != wantEnd {
		l.Close()
		t.Fatalf("%s: end %d, want %d", what, l.EndOffset(), wantEnd)
	}
	if got := readAll(t, l); !bytes.Equal(got, concat(bs[:n])) {
		l.Close()
		t.Fatalf("%s: log does not hold exactly the intact prefix", what)
	}
	next := mkBatch(wantEnd, 7, 1)
	if err := l.Append(next); err != nil {
		l.Close()
		t.Fatalf("%s: append at %d: %v", what, wantEnd, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, fixtureCfg)
	if err != nil {
		t.Fatalf("%s: second Open: %v", what, err)
	}
	defer l.Close()
	if got := readAll(t, l); !bytes.Equal(got, append(concat(bs[:n]), next...)) {
		t.Fatalf("%s: appended batch lost after reopen", what)
	}
}

func TestTornTail(t *testing.T) {
	dir, bs, lastSeg := buildTornFixture(t)
	logs := segFiles(t, dir, ".log")
	lastPath := filepath.Base(logs[len(logs)-1])
	data, err := os.ReadFile(logs[len(logs)-1])
	if err != nil {
		t.Fatal(err)
	}
	firstInLast := len(bs) - lastSeg
	// boundaries[i] is where batch firstInLast+i ends inside the last file.
	var boundaries []int
	pos := 0
	for _, b := range bs[firstInLast:] {
		pos += len(b)
		boundaries = append(boundaries, pos)
	}
	intactAt := func(cut int) int {
		n := firstInLast
		for _, e := range boundaries {
			if e <= cut {
				n++
			}
		}
		return n
	}

	step := 1
	if testing.Short() {
		step = 7
	}
	for cut := 0; cut <= len(data); cut += step {
		d := copyDir(t, dir)
		if err := os.Truncate(filepath.Join(d, lastPath), int64(cut)); err != nil {
			t.Fatal(err)
		}
		checkPrefix(t, d, bs, intactAt(cut), "truncated at "+strconv.Itoa(cut))
	}

	// Garbage after the last batch (e.g. a preallocated, zero-filled tail).
	d := copyDir(t, dir)
	if err := os.WriteFile(filepath.Join(d, lastPath), append(slices.Clone(data), make([]byte, 100)...), 0o644); err != nil {
		t.Fatal(err)
	}
	checkPrefix(t, d, bs, len(bs), "zero tail")

	// A flipped byte anywhere in the second batch of the last segment cuts
	// the log before that batch, except in partitionLeaderEpoch (bytes
	// 12-15), the one field neither the CRC nor recovery checks.
	victim := boundaries[0]
	for i := 0; i < len(bs[firstInLast+1]); i++ {
		if i >= 12 && i < 16 {
			continue
		}
		d := copyDir(t, dir)
		flipped := slices.Clone(data)
		flipped[victim+i] ^= 0x10
		if err := os.WriteFile(filepath.Join(d, lastPath), flipped, 0o644); err != nil {
			t.Fatal(err)
		}
		checkPrefix(t, d, bs, firstInLast+1, "flipped byte "+strconv.Itoa(i))
	}
}

func TestIndexRebuild(t *testing.T) {
	dir, bs, _ := buildTornFixture(t)
	first := filepath.Join(dir, "00000000000000000000")
	origIdx, _ := os.ReadFile(first + ".index")
	origTime, _ := os.ReadFile(first + ".timeindex")
	if len(origIdx) == 0 || len(origTime) == 0 {
		t.Fatal("fixture's first segment has empty indexes")
	}
	ref := openLog(t, copyDir(t, dir), fixtureCfg)
	wantIdx, wantTimes := snapshotIndexes(ref)

	damage := map[string]func(d string){
		"missing index":     func(d string) { os.Remove(filepath.Join(d, "00000000000000000000.index")) },
		"missing timeindex": func(d string) { os.Remove(filepath.Join(d, "00000000000000000000.timeindex")) },
		"partial entry": func(d string) {
			os.WriteFile(filepath.Join(d, "00000000000000000000.index"), origIdx[:len(origIdx)-3], 0o644)
		},
		"position past end": func(d string) {
			b := append(slices.Clone(origIdx), 0, 0, 0, 99, 0, 1, 0, 0)
			os.WriteFile(filepath.Join(d, "00000000000000000000.index"), b, 0o644)
		},
		"not monotonic": func(d string) {
			b := append(slices.Clone(origIdx), origIdx[:8]...)
			os.WriteFile(filepath.Join(d, "00000000000000000000.index"), b, 0o644)
		},
		"stale but sane (last entry dropped)": func(d string) {
			// Still consistent: the tail scan covers the extra batches.
			os.WriteFile(filepath.Join(d, "00000000000000000000.index"), origIdx[:len(origIdx)-8], 0o644)
		},
		"entry not at a batch": func(d string) {
			b := slices.Clone(origIdx)
			b[len(b)-1]++ // last position off by one
			os.WriteFile(filepath.Join(d, "00000000000000000000.index"), b, 0o644)
		},
		"time index missing final entry": func(d string) {
			os.WriteFile(filepath.Join(d, "00000000000000000000.timeindex"), origTime[:len(origTime)-12], 0o644)
		},
		"garbage time index": func(d string) {
			os.WriteFile(filepath.Join(d, "00000000000000000000.timeindex"), bytes.Repeat([]byte{0xff}, 24), 0o644)
		},
	}
	for name, f := range damage {
		d := copyDir(t, dir)
		f(d)
		l := openLog(t, d, fixtureCfg)
		if got := readAll(t, l); !bytes.Equal(got, concat(bs)) {
			t.Errorf("%s: reads differ", name)
		}
		gotIdx, gotTimes := snapshotIndexes(l)
		if name == "stale but sane (last entry dropped)" {
			continue // loaded as is, by design
		}
		if !slices.Equal(gotIdx[0], wantIdx[0]) || !slices.Equal(gotTimes[0], wantTimes[0]) {
			t.Errorf("%s: in-memory indexes not rebuilt: %v / %v", name, gotIdx[0], gotTimes[0])
		}
		idxFile, _ := os.ReadFile(filepath.Join(d, "00000000000000000000.index"))
		timeFile, _ := os.ReadFile(filepath.Join(d, "00000000000000000000.timeindex"))
		if !bytes.Equal(idxFile, origIdx) || !bytes.Equal(timeFile, origTime) {
			t.Errorf("%s: index files not rewritten to the original content", name)
		}
		off, ts, found, err := l.OffsetForTimestamp(105)
		if err != nil || !found || off != 5 || ts != 105 {
			t.Errorf("%s: OffsetForTimestamp(105) = %d %d %v %v", name, off, ts, found, err)
		}
	}
}

func TestOpenRefusesDamagedHistory(t *testing.T) {
	dir, _, _ := buildTornFixture(t)
	logs := segFiles(t, dir, ".log")
	if len(logs) < 3 {
		t.Fatalf("fixture has %d segments, need 3", len(logs))
	}
	// A missing middle segment leaves a gap.
	d := copyDir(t, dir)
	os.Remove(filepath.Join(d, filepath.Base(logs[1])))
	if _, err := Open(d, fixtureCfg); !errors.Is(err, ErrCorrupt) {
		t.Errorf("gap: %v", err)
	}
	// A truncated older segment (indexes gone so it must be scanned).
	d = copyDir(t, dir)
	first := filepath.Join(d, filepath.Base(logs[0]))
	fi, _ := os.Stat(first)
	os.Truncate(first, fi.Size()-5)
	os.Remove(strings.TrimSuffix(first, ".log") + ".index")
	if _, err := Open(d, fixtureCfg); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated older segment: %v", err)
	}
	// A truncated older segment is caught even with intact index files
	// (the tail scan does not reach the end of the file exactly).
	d = copyDir(t, dir)
	first = filepath.Join(d, filepath.Base(logs[0]))
	os.Truncate(first, fi.Size()-5)
	if _, err := Open(d, fixtureCfg); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated older segment with indexes: %v", err)
	}
}
