package segment

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

// fuzzLog returns the bytes of a small valid segment starting at offset 0
// with mixed codecs, and its batches.
func fuzzLog() ([]byte, [][]byte) {
	var bs [][]byte
	off := int64(0)
	for i, codec := range []int{recbatchtest.None, recbatchtest.Gzip, recbatchtest.None, recbatchtest.Zstd, recbatchtest.None, recbatchtest.Snappy} {
		s := recbatchtest.Values(100+off, "alpha", "beta", "gamma")
		s.BaseOffset = off
		s.Compression = codec
		s.TimestampDeltas = []int64{int64(i % 3), 2, 1}
		b := recbatchtest.Build(s)
		bs = append(bs, b)
		off += 3
	}
	return bytes.Join(bs, nil), bs
}

// FuzzOpen writes arbitrary bytes as the active segment. Open must not fail
// or panic, must keep only a CRC-valid, offset-contiguous prefix starting at
// the segment base, truncate the file to it, and accept the next append.
func FuzzOpen(f *testing.F) {
	valid, bs := fuzzLog()
	f.Add(valid)
	f.Add(valid[:len(valid)-10])
	f.Add(append(bytes.Clone(valid), make([]byte, 70)...))
	f.Add(bytes.Join([][]byte{bs[0], bs[2]}, nil)) // offset gap
	f.Add([]byte{})
	f.Add(make([]byte, 200))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, segName(0))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Open(dir, Config{IndexIntervalBytes: 64})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer l.Close()
		got := readAll(t, l) // verifies every CRC
		if !bytes.Equal(got, data[:len(got)]) || l.Size() != int64(len(got)) {
			t.Fatalf("log is not a prefix of the file: %d bytes, size %d", len(got), l.Size())
		}
		next := int64(0)
		for _, h := range headers(t, got) {
			if h.BaseOffset != next {
				t.Fatalf("batch at %d, want %d", h.BaseOffset, next)
			}
			next = h.NextOffset()
		}
		if l.EndOffset() != next || l.StartOffset() != 0 {
			t.Fatalf("offsets [%d, %d), batches end at %d", l.StartOffset(), l.EndOffset(), next)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() != int64(len(got)) {
			t.Fatalf("file not truncated to the valid prefix: %v", err)
		}
		for _, ts := range []int64{-1, 0, 101, 1 << 40} {
			if o, _, found, err := l.OffsetForTimestamp(ts); err != nil || (found && (o < 0 || o >= next)) {
				t.Fatalf("OffsetForTimestamp(%d) = %d, %v", ts, o, err)
			}
		}
		if err := l.Append(mkBatch(next, 1, 2)); err != nil {
			t.Fatalf("append after recovery: %v", err)
		}
	})
}

// FuzzIndexFiles gives a rolled segment arbitrary index files. Open must
// succeed (rebuilding what does not check out), reads must return exactly
// the log, and timestamp lookups must return real records.
func FuzzIndexFiles(f *testing.F) {
	seg0, bs := fuzzLog()
	var good, goodTimes []byte
	{
		dir := f.TempDir()
		l, err := Open(dir, Config{IndexIntervalBytes: 64})
		if err != nil {
			f.Fatal(err)
		}
		for _, b := range bs {
			if err := l.Append(b); err != nil {
				f.Fatal(err)
			}
		}
		if err := l.Roll(); err != nil {
			f.Fatal(err)
		}
		l.Close()
		good, _ = os.ReadFile(filepath.Join(dir, "00000000000000000000.index"))
		goodTimes, _ = os.ReadFile(filepath.Join(dir, "00000000000000000000.timeindex"))
		if len(good) == 0 || len(goodTimes) == 0 {
			f.Fatal("seed indexes are empty")
		}
	}
	seg1 := mkBatch(18, 500, 2)
	// recTs maps every offset to its record timestamp.
	recTs := map[int64]int64{18: 500, 19: 501}
	for _, b := range bs {
		h, _ := recbatch.ParseHeader(b)
		metas, err := recbatch.RecordTimestamps(b)
		if err != nil {
			f.Fatal(err)
		}
		for _, m := range metas {
			recTs[h.BaseOffset+int64(m.OffsetDelta)] = m.Timestamp
		}
	}
	f.Add(good, goodTimes)
	f.Add(good[:len(good)-8], goodTimes[:len(goodTimes)-12])
	f.Add([]byte{}, []byte{})
	f.Add(append(bytes.Clone(good), 0, 0, 0, 1, 0, 0, 0, 2), goodTimes)
	f.Fuzz(func(t *testing.T, idx, times []byte) {
		dir := t.TempDir()
		for name, b := range map[string][]byte{
			segName(0):                       seg0,
			"00000000000000000000.index":     idx,
			"00000000000000000000.timeindex": times,
			segName(18):                      seg1,
		} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		l, err := Open(dir, Config{IndexIntervalBytes: 64})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer l.Close()
		want := append(bytes.Clone(seg0), seg1...)
		if got := readAll(t, l); !bytes.Equal(got, want) {
			t.Fatal("read differs")
		}
		for off := int64(0); off < 20; off++ {
			got, err := l.Read(off, 1, 20, true)
			if err != nil || len(got) == 0 {
				t.Fatalf("Read(%d): %v", off, err)
			}
			h, _ := recbatch.ParseHeader(got)
			if h.BaseOffset > off || h.NextOffset() <= off {
				t.Fatalf("Read(%d) returned batch %d", off, h.BaseOffset)
			}
		}
		for ts := int64(95); ts < 510; ts += 3 {
			o, gotTs, found, err := l.OffsetForTimestamp(ts)
			if err != nil || (found && (gotTs < ts || recTs[o] != gotTs)) {
				t.Fatalf("OffsetForTimestamp(%d) = %d %d %v %v", ts, o, gotTs, found, err)
			}
		}
	})
}
