package segobject_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
	"github.com/streamline-dev/streamline/shared/segobject"
)

// build writes a segment of n batches of 1-4 records from offset base with
// timestamps that wander (not monotonic) and returns the object, its info
// and each batch.
func build(t testing.TB, base int64, n int, interval int64, seed uint64) ([]byte, segobject.Info, [][]byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	var buf bytes.Buffer
	w := segobject.NewWriter(&buf, interval)
	var batches [][]byte
	off, ts := base, int64(1_700_000_000_000)
	for range n {
		spec := recbatchtest.Values(ts, strings.Repeat("v", rng.IntN(300)))
		for range rng.IntN(4) {
			spec.Records = append(spec.Records, spec.Records[0])
		}
		spec.BaseOffset = off
		b := recbatchtest.Build(spec)
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
		batches = append(batches, b)
		off += int64(len(spec.Records))
		ts += rng.Int64N(100) - 30
	}
	info, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), info, batches
}

func index(t testing.TB, obj []byte, info segobject.Info) *segobject.Index {
	t.Helper()
	ix, err := segobject.ParseIndex(obj[info.IndexPos:info.IndexPos+info.IndexLen], info.IndexPos, info.LastOffset)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// TestBlockFindsEveryOffset is the property the fetch path relies on: for
// every offset of the segment, the block Block names starts at or before
// the batch holding it and reading to ReadEnd yields whole, valid batches
// that include it, byte for byte as written.
func TestBlockFindsEveryOffset(t *testing.T) {
	for _, interval := range []int64{1, 500, 4096, 1 << 20} {
		t.Run(fmt.Sprint(interval), func(t *testing.T) {
			obj, info, batches := build(t, 1000, 300, interval, uint64(interval))
			if info.BaseOffset != 1000 || info.Batches != 300 || info.Size != int64(len(obj)) || info.DataPos != segobject.HeaderSize {
				t.Fatalf("info %+v for an object of %d bytes", info, len(obj))
			}
			if !bytes.Equal(obj[info.DataPos:info.DataPos+info.DataLen], bytes.Join(batches, nil)) {
				t.Fatal("data is not the batches byte for byte")
			}
			ix := index(t, obj, info)
			for _, b := range batches {
				h, _ := recbatch.ParseHeader(b)
				for o := h.BaseOffset; o <= h.LastOffset(); o++ {
					blk, ok := ix.Find(o)
					if !ok {
						t.Fatalf("offset %d not found", o)
					}
					pos, end := blk.Pos, blk.End
					rend := ix.ReadEnd(pos, 1)
					if rend != end {
						t.Fatalf("ReadEnd(%d, 1) = %d, block ends at %d", pos, rend, end)
					}
					data := obj[pos:end]
					if err := segobject.Verify(data, blk.BaseOffset, info.LastOffset); err != nil {
						t.Fatalf("offset %d: %v", o, err)
					}
					if !bytes.Contains(data, b) {
						t.Fatalf("offset %d: block at %d..%d does not hold its batch", o, pos, end)
					}
				}
			}
			for _, o := range []int64{999, info.LastOffset + 1} {
				if _, ok := ix.Find(o); ok {
					t.Fatalf("offset %d outside the segment was found", o)
				}
			}
		})
	}
}

// TestBlockAtFindsTheFirstRecordAtOrAfterATime checks the time lookup
// against a scan of every batch, for every timestamp in the segment's span.
func TestBlockAtFindsTheFirstRecordAtOrAfterATime(t *testing.T) {
	obj, info, batches := build(t, 0, 200, 700, 7)
	ix := index(t, obj, info)
	for ts := int64(1_700_000_000_000 - 100); ts <= info.MaxTimestamp+1; ts++ {
		want := -1 // index of the first batch with max timestamp >= ts
		for i, b := range batches {
			if h, _ := recbatch.ParseHeader(b); h.MaxTimestamp >= ts {
				want = i
				break
			}
		}
		blk, ok := ix.FindTime(ts)
		pos := blk.Pos
		if ok != (want >= 0) {
			t.Fatalf("ts %d: found %v, want batch %d", ts, ok, want)
		}
		if !ok {
			continue
		}
		// The block must start at or before the wanted batch, and no batch
		// before the block may qualify.
		wantPos := segobject.HeaderSize + int64(len(bytes.Join(batches[:want], nil)))
		if pos > wantPos {
			t.Fatalf("ts %d: block at %d is past the first qualifying batch at %d", ts, pos, wantPos)
		}
		if end := ix.ReadEnd(pos, 1); end <= wantPos && pos < wantPos {
			t.Fatalf("ts %d: block %d..%d ends before the qualifying batch at %d: an earlier block was skipped", ts, pos, end, wantPos)
		}
	}
}

func TestReadEndNeverSplitsABatch(t *testing.T) {
	obj, info, _ := build(t, 0, 100, 1000, 3)
	ix := index(t, obj, info)
	for want := int64(1); want < info.DataLen+10; want += 37 {
		end := ix.ReadEnd(segobject.HeaderSize, want)
		if end > info.IndexPos || end < segobject.HeaderSize+min(want, info.DataLen) && end != info.IndexPos {
			t.Fatalf("ReadEnd(want %d) = %d", want, end)
		}
		if err := segobject.Verify(obj[segobject.HeaderSize:end], info.BaseOffset, info.LastOffset); err != nil {
			t.Fatalf("want %d: %v", want, err)
		}
	}
}

func TestFooterDescribesTheIndex(t *testing.T) {
	obj, info, _ := build(t, 5, 20, 0, 1)
	pos, n, err := segobject.ReadFooter(obj[len(obj)-segobject.FooterSize:], int64(len(obj)))
	if err != nil || pos != info.IndexPos || n != info.IndexLen {
		t.Fatalf("footer: %d+%d, %v; info %+v", pos, n, err, info)
	}
	if _, _, err := segobject.ReadFooter(obj[len(obj)-segobject.FooterSize:], int64(len(obj))+1); !errors.Is(err, segobject.ErrCorrupt) {
		t.Fatalf("footer of a longer object: %v", err)
	}
}

// TestCorruptionIsAnErrorNeverWrongBytes flips each byte of a small
// segment's data and index in turn: Verify or ParseIndex must fail, or the
// bytes the reader gets must still be exactly the batches written (a flip
// in a field outside the batch CRC that the contiguity checks cannot see is
// not possible: base offsets are checked by contiguity, the leader epoch is
// not data).
func TestCorruptionIsAnErrorNeverWrongBytes(t *testing.T) {
	for _, n := range []int{1, 12} {
		corruptEachByte(t, n)
	}
}

func corruptEachByte(t *testing.T, n int) {
	obj, info, batches := build(t, 40, n, 200, 9)
	want := bytes.Join(batches, nil)
	for i := info.DataPos; i < info.IndexPos+info.IndexLen; i++ {
		bad := bytes.Clone(obj)
		bad[i] ^= 0x5a
		ix, err := segobject.ParseIndex(bad[info.IndexPos:info.IndexPos+info.IndexLen], info.IndexPos, info.LastOffset)
		if err != nil {
			if !errors.Is(err, segobject.ErrCorrupt) {
				t.Fatalf("byte %d: %v does not wrap ErrCorrupt", i, err)
			}
			continue
		}
		data := bad[ix.Entries[0].Position:ix.End]
		if err := segobject.Verify(data, ix.Entries[0].BaseOffset, info.LastOffset); err != nil {
			if !errors.Is(err, segobject.ErrCorrupt) {
				t.Fatalf("byte %d: %v does not wrap ErrCorrupt", i, err)
			}
			continue
		}
		if !bytes.Equal(data, want) && !epochOnly(data, want) {
			t.Fatalf("byte %d flipped: Verify passed wrong bytes", i)
		}
	}
	if err := segobject.Verify(obj[info.DataPos:info.IndexPos-1], info.BaseOffset, info.LastOffset); !errors.Is(err, segobject.ErrCorrupt) {
		t.Fatalf("truncated data: %v", err)
	}
}

// epochOnly reports whether a and b differ only in batches' partition
// leader epoch fields (bytes 12-15 of a batch, outside its CRC, rewritten
// by brokers: not record data).
func epochOnly(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	pos := 0
	_, err := recbatch.Iterate(b, false, func(h recbatch.Header, batch []byte) error {
		for j := range batch {
			if a[pos+j] != batch[j] && (j < 12 || j > 15) {
				return errors.New("differs")
			}
		}
		pos += len(batch)
		return nil
	})
	return err == nil
}

func TestWriterRejectsGapsAndGarbage(t *testing.T) {
	w := segobject.NewWriter(&bytes.Buffer{}, 0)
	if _, err := w.Close(); err == nil {
		t.Fatal("an empty segment was accepted")
	}
	w = segobject.NewWriter(&bytes.Buffer{}, 0)
	if err := w.Append([]byte("not a batch")); err == nil {
		t.Fatal("garbage was accepted")
	}
	w = segobject.NewWriter(&bytes.Buffer{}, 0)
	first := recbatchtest.Build(recbatchtest.Values(1, "a", "b"))
	gap := recbatchtest.Values(1, "c")
	gap.BaseOffset = 3
	if err := w.Append(first); err != nil {
		t.Fatal(err)
	}
	if err := w.Append(recbatchtest.Build(gap)); err == nil {
		t.Fatal("a gap (offset 2 missing) was accepted")
	}
}

func FuzzParseIndex(f *testing.F) {
	obj, info, _ := build(f, 0, 30, 300, 2)
	f.Add(obj[info.IndexPos:info.IndexPos+info.IndexLen], info.IndexPos, info.LastOffset)
	f.Fuzz(func(t *testing.T, b []byte, indexPos, last int64) {
		ix, err := segobject.ParseIndex(b, indexPos, last)
		if err != nil {
			return
		}
		for _, e := range ix.Entries {
			if e.Position < segobject.HeaderSize || e.Position >= indexPos || e.BaseOffset > last {
				t.Fatalf("accepted entry %+v", e)
			}
			blk, ok := ix.Find(e.BaseOffset)
			if !ok || blk.Pos != e.Position || blk.End <= blk.Pos || blk.End > indexPos {
				t.Fatalf("Find(%d) = %+v %v", e.BaseOffset, blk, ok)
			}
		}
	})
}

// TestAppendBlocksConcatenatesSegments merges three segments chunk by
// chunk as the merger does: the result holds the same batches byte for
// byte, its size is what Size predicted, and every offset is found.
func TestAppendBlocksConcatenatesSegments(t *testing.T) {
	var want []byte
	var srcs []struct {
		obj  []byte
		info segobject.Info
	}
	base := int64(0)
	for i := range 3 {
		obj, info, batches := build(t, base, 40+i*30, 900, uint64(i))
		srcs = append(srcs, struct {
			obj  []byte
			info segobject.Info
		}{obj, info})
		want = append(want, bytes.Join(batches, nil)...)
		base = info.LastOffset + 1
	}
	var out bytes.Buffer
	w := segobject.NewWriter(&out, 0)
	var dataLen int64
	blocks := 0
	for _, s := range srcs {
		ix := index(t, s.obj, s.info)
		dataLen += s.info.DataLen
		blocks += len(ix.Entries)
		for pos := ix.Entries[0].Position; pos < ix.End; {
			end := ix.ReadEnd(pos, 2000) // several chunks per source
			if err := w.AppendBlocks(s.obj[pos:end], ix.EntriesIn(pos, end)); err != nil {
				t.Fatal(err)
			}
			pos = end
		}
	}
	info, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(out.Len()) || info.Size != segobject.Size(dataLen, blocks) {
		t.Fatalf("size %d, wrote %d, Size predicted %d", info.Size, out.Len(), segobject.Size(dataLen, blocks))
	}
	if info.BaseOffset != 0 || info.LastOffset != base-1 || !bytes.Equal(out.Bytes()[info.DataPos:info.IndexPos], want) {
		t.Fatalf("merged %d..%d, want 0..%d, or bytes differ", info.BaseOffset, info.LastOffset, base-1)
	}
	ix := index(t, out.Bytes(), info)
	for o := int64(0); o < base; o++ {
		blk, ok := ix.Find(o)
		if !ok {
			t.Fatalf("offset %d lost", o)
		}
		if err := segobject.Verify(out.Bytes()[blk.Pos:blk.End], blk.BaseOffset, info.LastOffset); err != nil {
			t.Fatalf("offset %d: %v", o, err)
		}
	}
	// A chunk that does not follow is refused.
	obj, info2, _ := build(t, 5, 3, 0, 1)
	ix2 := index(t, obj, info2)
	w = segobject.NewWriter(&bytes.Buffer{}, 0)
	_ = w.AppendBlocks(obj[ix2.Entries[0].Position:ix2.End], ix2.EntriesIn(ix2.Entries[0].Position, ix2.End))
	if err := w.AppendBlocks(obj[ix2.Entries[0].Position:ix2.End], ix2.EntriesIn(ix2.Entries[0].Position, ix2.End)); err == nil {
		t.Fatal("a repeated chunk was accepted")
	}
}
