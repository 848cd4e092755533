package segment

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

// fakeClock is an injectable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// mkBatch builds a batch of n records at base with timestamps ts, ts+1, ...
func mkBatch(base, ts int64, n int) []byte {
	vals := make([]string, n)
	for i := range vals {
		vals[i] = fmt.Sprintf("value-%08d-%04d", base, i)
	}
	s := recbatchtest.Values(ts, vals...)
	s.BaseOffset = base
	return recbatchtest.Build(s)
}

func openLog(t testing.TB, dir string, cfg Config) *Log {
	t.Helper()
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustAppend(t testing.TB, l *Log, b []byte) {
	t.Helper()
	if err := l.Append(b); err != nil {
		t.Fatalf("Append at %d: %v", l.EndOffset(), err)
	}
}

// appendBatches appends count batches of recs records each with timestamps
// starting at ts and returns them in order.
func appendBatches(t testing.TB, l *Log, count, recs int, ts int64) [][]byte {
	t.Helper()
	var out [][]byte
	for range count {
		b := mkBatch(l.EndOffset(), ts, recs)
		ts += int64(recs)
		mustAppend(t, l, b)
		out = append(out, b)
	}
	return out
}

func readAll(t testing.TB, l *Log) []byte {
	t.Helper()
	b, err := l.Read(l.StartOffset(), 1<<30, l.EndOffset(), true)
	if err != nil {
		t.Fatalf("Read all: %v", err)
	}
	return b
}

// headers splits concatenated batches, verifying every CRC.
func headers(t testing.TB, b []byte) []recbatch.Header {
	t.Helper()
	var hs []recbatch.Header
	n, err := recbatch.Iterate(b, true, func(h recbatch.Header, _ []byte) error {
		hs = append(hs, h)
		return nil
	})
	if err != nil || n != len(b) {
		t.Fatalf("iterate read result: %d of %d bytes valid: %v", n, len(b), err)
	}
	return hs
}

func concat(bs [][]byte) []byte { return bytes.Join(bs, nil) }

func segFiles(t testing.TB, dir, suffix string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// copyDir copies the regular files of src into a new temp dir.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}
