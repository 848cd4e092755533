package recbatch

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type codecCase struct {
	name   string
	codec  int
	xerial bool
}

var codecs = []codecCase{
	{"none", recbatchtest.None, false},
	{"gzip", recbatchtest.Gzip, false},
	{"snappy", recbatchtest.Snappy, false},
	{"snappy-xerial", recbatchtest.Snappy, true},
	{"lz4", recbatchtest.LZ4, false},
	{"zstd", recbatchtest.Zstd, false},
}

func TestRecordTimestampsCodecs(t *testing.T) {
	deltas := []int64{5, -3, 0, 1 << 40, 7}
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			s := recbatchtest.Values(1_000_000, "a", "bb", "ccc", "dddd", "eeeee")
			s.BaseOffset = 100
			s.Compression, s.XerialSnappy, s.TimestampDeltas = c.codec, c.xerial, deltas
			s.Records[1].Key = []byte("key")
			s.Records[2].Headers = []kmsg.Header{{Key: "h", Value: []byte("v")}}
			b := recbatchtest.Build(s)
			h, err := Validate(b)
			if err != nil {
				t.Fatal(err)
			}
			if h.Compression() != c.codec {
				t.Fatalf("codec %d, want %d", h.Compression(), c.codec)
			}
			metas, err := RecordTimestamps(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(metas) != len(deltas) {
				t.Fatalf("%d records, want %d", len(metas), len(deltas))
			}
			for i, m := range metas {
				if m.OffsetDelta != int32(i) || m.Timestamp != 1_000_000+deltas[i] {
					t.Errorf("record %d: %+v, want delta %d ts %d", i, m, i, 1_000_000+deltas[i])
				}
			}
		})
	}
}

// A large payload exercises multi-block frames (xerial splits at 32 KiB).
func TestRecordTimestampsLargeCompressed(t *testing.T) {
	vals := make([]string, 300)
	for i := range vals {
		vals[i] = fmt.Sprintf("%0500d", i)
	}
	for _, c := range codecs {
		s := recbatchtest.Values(42, vals...)
		s.Compression, s.XerialSnappy = c.codec, c.xerial
		metas, err := RecordTimestamps(recbatchtest.Build(s))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(metas) != 300 || metas[299].Timestamp != 42+299 || metas[299].OffsetDelta != 299 {
			t.Fatalf("%s: got %d records, last %+v", c.name, len(metas), metas[len(metas)-1])
		}
	}
}

func TestRecordTimestampsLogAppendTime(t *testing.T) {
	s := recbatchtest.Values(500, "a", "b", "c")
	s.LogAppendTime = true
	s.TimestampDeltas = []int64{0, 9, 4}
	metas, err := RecordTimestamps(recbatchtest.Build(s))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range metas {
		if m.Timestamp != 509 {
			t.Errorf("record %d: ts %d, want the batch max 509", i, m.Timestamp)
		}
	}
}

// rebuild replaces the records section of a batch (keeping the header but
// fixing length and CRC), to feed RecordTimestamps malformed records.
func rebuild(b []byte, attrs int16, recs []byte) []byte {
	out := append(append([]byte(nil), b[:HeaderSize]...), recs...)
	out[21], out[22] = byte(attrs>>8), byte(attrs)
	putU32(out[8:], uint32(len(out)-12))
	putU32(out[17:], crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

func TestRecordTimestampsErrors(t *testing.T) {
	good := recbatchtest.Build(recbatchtest.Values(1, "x", "y"))
	recs := good[HeaderSize:]
	cases := map[string][]byte{
		"truncated records":   rebuild(good, 0, recs[:len(recs)-2]),
		"trailing bytes":      rebuild(good, 0, append(append([]byte(nil), recs...), 0)),
		"negative length":     rebuild(good, 0, []byte{0x01}),
		"bad gzip":            rebuild(good, recbatchtest.Gzip, []byte("not gzip at all")),
		"bad snappy":          rebuild(good, recbatchtest.Snappy, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}),
		"bad xerial":          rebuild(good, recbatchtest.Snappy, append([]byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1}, 0, 0, 0, 9, 1)),
		"bad lz4":             rebuild(good, recbatchtest.LZ4, []byte("nope")),
		"bad zstd":            rebuild(good, recbatchtest.Zstd, []byte("nope")),
		"unknown codec":       rebuild(good, 6, recs),
		"short batch":         good[:len(good)-1],
		"header only":         good[:30],
		"compressed but none": rebuild(good, recbatchtest.Gzip, recs),
	}
	for name, b := range cases {
		if _, err := RecordTimestamps(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// A gzip bomb must fail with ErrTooLarge instead of allocating its full size.
func TestRecordTimestampsBomb(t *testing.T) {
	// The real limit is checked once for gzip (the classic bomb); the other
	// codecs run against a lowered limit to keep the race build fast.
	good := recbatchtest.Build(recbatchtest.Values(1, "x"))
	bomb := rebuild(good, recbatchtest.Gzip, recbatchtest.Compress(recbatchtest.Gzip, false, make([]byte, MaxDecompressedSize+1)))
	if _, err := RecordTimestamps(bomb); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("64 MiB gzip bomb: got %v, want ErrTooLarge", err)
	}
	defer func(old int) { maxDecompressed = old }(maxDecompressed)
	maxDecompressed = 1 << 20
	zeros := make([]byte, 1<<20+1)
	for _, c := range codecs[1:] {
		bomb := rebuild(good, int16(c.codec), recbatchtest.Compress(c.codec, c.xerial, zeros))
		if len(bomb) > 256<<10 {
			t.Fatalf("%s: bomb is not compact (%d bytes)", c.name, len(bomb))
		}
		if _, err := RecordTimestamps(bomb); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: got %v, want ErrTooLarge", c.name, err)
		}
	}
}

func FuzzRecordTimestamps(f *testing.F) {
	for _, c := range codecs {
		s := recbatchtest.Values(7, "a", "bb")
		s.Compression, s.XerialSnappy = c.codec, c.xerial
		f.Add(recbatchtest.Build(s))
	}
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		metas, err := RecordTimestamps(b)
		if err != nil {
			return
		}
		h, _ := ParseHeader(b)
		if len(metas) != int(h.RecordCount) {
			t.Fatalf("%d metas for %d records", len(metas), h.RecordCount)
		}
		// Decoding is deterministic and does not alias the input.
		again, err := RecordTimestamps(bytes.Clone(b))
		if err != nil || len(again) != len(metas) {
			t.Fatalf("second decode: %v", err)
		}
	})
}
