package main

import (
	"slices"
	"testing"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "1MiB": 1 << 20, "512KiB": 512 << 10, "2 GiB": 2 << 30, "-1": -1, "100B": 100} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1MB", "x"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q): no error", in)
		}
	}
}

func TestParseModes(t *testing.T) {
	got, err := parseModes("local, hybrid")
	if err != nil || !slices.Equal(got, []string{"local", "hybrid"}) {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, in := range []string{"tiered", "local,local", ""} {
		if _, err := parseModes(in); err == nil {
			t.Errorf("parseModes(%q): no error", in)
		}
	}
	if r := reversed([]string{"a", "b", "c"}); !slices.Equal(r, []string{"c", "b", "a"}) {
		t.Fatalf("reversed: %v", r)
	}
}

func TestDescribe(t *testing.T) {
	cfg := map[string]string{"segment.bytes": "1048576", "local.retention.bytes": "4194304"}
	if got := describe(cfg, "hybrid"); !slices.Equal(got, []string{"1 MiB segments", "4 MiB local retention"}) {
		t.Fatalf("hybrid: %v", got)
	}
	// local.retention.bytes means nothing to a local topic.
	if got := describe(cfg, "local"); !slices.Equal(got, []string{"1 MiB segments"}) {
		t.Fatalf("local: %v", got)
	}
}

// TestBadFlagsAreUsageErrors: values no run can use exit 2 before
// anything starts.
func TestBadFlagsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--txn-records", "-1"},
		{"--rounds", "0"},
		{"--storage-mode", "tiered"},
	} {
		if code := run(args); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
