package main

import (
	"io"
	"os"
	"slices"
	"strings"
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

// stderrOf runs the command and returns its exit code and what it wrote
// to stderr.
func stderrOf(t *testing.T, args ...string) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	code := run(args)
	os.Stderr = old
	w.Close()
	out, _ := io.ReadAll(r)
	r.Close()
	return code, string(out)
}

// TestResultsDirNeedsRow: --results-dir without --row is refused before
// anything starts, naming the flag; so is --plot with a run's flags.
func TestResultsDirNeedsRow(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--results-dir", dir}, "--results-dir"},
		{[]string{"--target", "kfake", "--results-dir", dir}, "--results-dir"},
		{[]string{"--plot", dir, "--row", "x"}, "--plot"},
	} {
		code, stderr := stderrOf(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.flag) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming %s", c.args, code, stderr, c.flag)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("refused runs wrote %d files", len(entries))
	}
}

// TestPlotEmptyDir: --plot of a folder without results fails, naming it.
func TestPlotEmptyDir(t *testing.T) {
	dir := t.TempDir()
	code, stderr := stderrOf(t, "--plot", dir)
	if code != 1 || !strings.Contains(stderr, "--plot") || !strings.Contains(stderr, dir) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
