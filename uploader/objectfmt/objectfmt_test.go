package objectfmt

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestBuildDecodeRoundTrip(t *testing.T) {
	var a, b [16]byte
	a[0], b[0] = 1, 2
	bl := NewBuilder()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(bl.Add(a, 0, []byte("aaa"), 10, 12, 100))
	must(bl.Add(b, 3, []byte("bb"), 0, 0, 50))
	must(bl.Add(a, 0, []byte("AAAA"), 13, 16, 90))
	if err := bl.Add(a, 0, []byte("gap"), 20, 20, 1); err == nil {
		t.Fatal("a gap in offsets was accepted")
	}
	obj, secs := bl.Build()
	got, err := Decode(obj)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != secs[0] || got[1] != secs[1] {
		t.Fatalf("decoded %+v, built %+v", got, secs)
	}
	s := got[0]
	if s.BaseOffset != 10 || s.LastOffset != 16 || s.MaxTimestamp != 100 || string(obj[s.Position:s.Position+s.Length]) != "aaaAAAA" {
		t.Fatalf("section a: %+v %q", s, obj[s.Position:s.Position+s.Length])
	}
	if s := got[1]; string(obj[s.Position:s.Position+s.Length]) != "bb" || s.Partition != 3 {
		t.Fatalf("section b: %+v", s)
	}
}

func TestDecodeRejectsCorruption(t *testing.T) {
	bl := NewBuilder()
	_ = bl.Add([16]byte{9}, 1, []byte("data"), 0, 0, 0)
	obj, _ := bl.Build()
	for i := range obj {
		bad := bytes.Clone(obj)
		bad[i] ^= 0x40
		secs, err := Decode(bad)
		// Data bytes are not covered by the index CRC (each record batch
		// has its own); everything else must be caught.
		if i >= HeaderSize && i < HeaderSize+4 {
			continue
		}
		if err == nil {
			t.Fatalf("flipping byte %d went unnoticed: %+v", i, secs)
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d: %v", i, err)
		}
	}
	if _, err := Decode(obj[:len(obj)-1]); err == nil {
		t.Fatal("truncated object decoded")
	}
}

func TestNewKeySpreadsAndIsUnique(t *testing.T) {
	seen := map[string]bool{}
	prefixes := map[string]bool{}
	for i := 0; i < 200; i++ {
		k := NewKey("logsvc-1", 7, true)
		if seen[k] {
			t.Fatalf("duplicate key %s", k)
		}
		seen[k] = true
		prefixes[k[:4]] = true
		if !strings.Contains(k, "-00000000000000000007-") || k[4:14] != "/logsvc-1/" || !strings.HasSuffix(k, ".slo") {
			t.Fatalf("key %s", k)
		}
	}
	if len(prefixes) < 50 {
		t.Fatalf("only %d distinct prefixes in 200 keys", len(prefixes))
	}
	// Unspread (a local directory): one prefix, still unique and still
	// read back by KeyTime.
	flat := map[string]bool{}
	for i := 0; i < 200; i++ {
		k := NewKey("logsvc-1", 7, false)
		if flat[k] || !strings.HasPrefix(k, "0000/logsvc-1/") {
			t.Fatalf("unspread key %s (duplicate: %v)", k, flat[k])
		}
		flat[k] = true
		if _, ok := KeyTime(k); !ok {
			t.Fatalf("KeyTime(%q) failed", k)
		}
	}
}

func TestKeyTimeRoundTrip(t *testing.T) {
	before := time.Now().Truncate(time.Millisecond)
	k := NewKey("logsvc-1", 42, true)
	after := time.Now()
	got, ok := KeyTime(k)
	if !ok {
		t.Fatalf("KeyTime(%q) failed", k)
	}
	if got.Before(before) || got.After(after) {
		t.Fatalf("KeyTime(%q) = %v, want between %v and %v", k, got, before, after)
	}
	// A fixed time, a node id with '/' and '-' in it.
	at := time.UnixMilli(1_700_000_000_123)
	k = newKeyAt("rack-1/node-2", 3, at, true)
	if got, ok := KeyTime(k); !ok || !got.Equal(at) {
		t.Fatalf("KeyTime(%q) = %v, %v; want %v", k, got, ok, at)
	}
	if !strings.HasPrefix(k[4:], "/rack-1/node-2/1700000000123-00000000000000000003-") {
		t.Fatalf("key %s", k)
	}
}

func TestKeyTimeRejectsOtherKeys(t *testing.T) {
	for _, k := range []string{
		"",
		"foo.txt",
		"abcd/n/00000000000000000007-0123456789ab.slo",                 // the format without a time
		"abcd/1700000000123-00000000000000000003-0123456789ab.slo",     // no node
		"abcd//1700000000123-00000000000000000003-0123456789ab.slo",    // empty node
		"abcg/n/1700000000123-00000000000000000003-0123456789ab.slo",   // prefix not hex
		"abcde/n/1700000000123-00000000000000000003-0123456789ab.slo",  // prefix too long
		"abcd/n/1700000000123-00000000000000000003-0123456789ab.obj",   // suffix
		"abcd/n/170000000012-00000000000000000003-0123456789ab.slo",    // 12-digit time
		"abcd/n/17000000001x3-00000000000000000003-0123456789ab.slo",   // not digits
		"abcd/n/1700000000123-0000000000000000003-0123456789ab.slo",    // 19-digit seq
		"abcd/n/1700000000123-00000000000000000003-.slo",               // no random part
		"abcd/n/1700000000123-00000000000000000003-0123-456789ab.slo",  // extra part
		"abcd/n/1700000000123-00000000000000000003-0123456789ab.slo/x", // a "directory"
		"segments/abcd/n/1700000000123-00000000000000000003-0123456789ab.slo",
	} {
		if tm, ok := KeyTime(k); ok {
			t.Errorf("KeyTime(%q) = %v, true; want false", k, tm)
		}
	}
}

func FuzzDecode(f *testing.F) {
	bl := NewBuilder()
	_ = bl.Add([16]byte{1}, 0, []byte("x"), 0, 0, 0)
	obj, _ := bl.Build()
	f.Add(obj)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		secs, err := Decode(b)
		if err != nil {
			return
		}
		for _, s := range secs {
			if s.Position < HeaderSize || s.Position+s.Length > int64(len(b)) {
				t.Fatalf("section out of bounds: %+v of %d bytes", s, len(b))
			}
		}
	})
}
