package segment

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

type rec struct{ offset, ts int64 }

// appendRandomBatches appends batches with non-monotonic per-record
// timestamps, cycling through all compression codecs, and returns every
// record in offset order.
func appendRandomBatches(t *testing.T, l *Log, rng *rand.Rand, count int) []rec {
	t.Helper()
	var recs []rec
	codecs := []int{recbatchtest.None, recbatchtest.Gzip, recbatchtest.Snappy, recbatchtest.LZ4, recbatchtest.Zstd}
	base := int64(10_000)
	for i := range count {
		n := 1 + rng.IntN(5)
		s := recbatchtest.Values(base, make([]string, n)...)
		s.BaseOffset = l.EndOffset()
		s.Compression = codecs[i%len(codecs)]
		s.XerialSnappy = i%2 == 0
		s.TimestampDeltas = make([]int64, n)
		for j := range n {
			s.TimestampDeltas[j] = int64(rng.IntN(60)) - 20
			s.Records[j].Value = []byte(fmt.Sprintf("v%d", j))
			recs = append(recs, rec{s.BaseOffset + int64(j), base + s.TimestampDeltas[j]})
		}
		mustAppend(t, l, recbatchtest.Build(s))
		base += int64(rng.IntN(15)) // time mostly moves forward, with overlaps
	}
	return recs
}

// bruteForce is ListOffsets by definition: the first record in offset order
// whose timestamp is >= ts.
func bruteForce(recs []rec, ts int64) (int64, int64, bool) {
	for _, r := range recs {
		if r.ts >= ts {
			return r.offset, r.ts, true
		}
	}
	return -1, -1, false
}

func TestOffsetForTimestamp(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentBytes: 1500, IndexIntervalBytes: 200}
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	recs := appendRandomBatches(t, l, rand.New(rand.NewPCG(1, 2)), 80)
	lo, hi := recs[0].ts, recs[0].ts
	maxRec := recs[0]
	for _, r := range recs {
		lo, hi = min(lo, r.ts), max(hi, r.ts)
		if r.ts > maxRec.ts {
			maxRec = r
		}
	}
	check := func(l *Log, when string) {
		t.Helper()
		for ts := lo - 3; ts <= hi+3; ts++ {
			wo, wt, wf := bruteForce(recs, ts)
			o, gt, f, err := l.OffsetForTimestamp(ts)
			if err != nil || o != wo || gt != wt || f != wf {
				t.Fatalf("%s: OffsetForTimestamp(%d) = %d,%d,%v,%v; want %d,%d,%v", when, ts, o, gt, f, err, wo, wt, wf)
			}
		}
		if o, ts := l.MaxTimestamp(); o != maxRec.offset || ts != maxRec.ts {
			t.Fatalf("%s: MaxTimestamp = %d,%d; want %d,%d", when, o, ts, maxRec.offset, maxRec.ts)
		}
	}
	if n := len(segFiles(t, dir, ".log")); n < 4 {
		t.Fatalf("want several segments, have %d", n)
	}
	check(l, "live")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	check(openLog(t, dir, cfg), "reopened")
}

func TestOffsetForTimestampEmptyAndLogAppendTime(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	if o, ts, f, err := l.OffsetForTimestamp(0); err != nil || f || o != -1 || ts != -1 {
		t.Fatalf("empty log: %d %d %v %v", o, ts, f, err)
	}
	if o, ts := l.MaxTimestamp(); o != -1 || ts != -1 {
		t.Fatalf("empty MaxTimestamp: %d %d", o, ts)
	}
	s := recbatchtest.Values(900, "a", "b", "c")
	s.LogAppendTime = true
	s.TimestampDeltas = []int64{50, 0, 10} // ignored: all records carry the batch max (950)
	mustAppend(t, l, recbatchtest.Build(s))
	if o, ts, f, err := l.OffsetForTimestamp(901); err != nil || !f || o != 0 || ts != 950 {
		t.Fatalf("log append time: %d %d %v %v", o, ts, f, err)
	}
	if o, ts, f, err := l.OffsetForTimestamp(951); err != nil || f || o != -1 || ts != -1 {
		t.Fatalf("past max: %d %d %v %v", o, ts, f, err)
	}
}
