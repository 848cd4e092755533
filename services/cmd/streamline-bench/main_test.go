package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamline-dev/streamline/services/allinone"
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
		{"--preload-records", "-1"},
		{"--preload-then", "drop"},
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

// TestServerFlagsAreChecked: combinations of --server-bin, the S3 outage
// and the budget flags no run can use exit 2 before anything starts,
// naming the flag at fault.
func TestServerFlagsAreChecked(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "streamline")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--target", "streamline", "--s3-outage-for", "30s"}, "--s3-outage-for"},                        // no --s3
		{[]string{"--s3", "express", "--s3-outage-for", "30s"}, "--s3-outage-for"},                               // no --target streamline
		{[]string{"--target", "streamline", "--s3", "express", "--s3-outage-after", "15s"}, "--s3-outage-after"}, // no --s3-outage-for
		{[]string{"--target", "streamline", "--s3", "express", "--s3-outage-for", "-1s"}, "--s3-outage-for"},
		{[]string{"--target", "streamline", "--s3", "express", "--s3-outage-for", "1s", "--s3-outage-fault", "boom"}, "--s3-outage-fault"},
		{[]string{"--target", "streamline", "--server-bin", filepath.Join(t.TempDir(), "missing")}, "--server-bin"},
		{[]string{"--target", "streamline", "--server-bin", notExec}, "--server-bin"},
		{[]string{"--target", "streamline", "--server-bin", t.TempDir()}, "--server-bin"},
		{[]string{"--server-bin", os.Args[0]}, "--server-bin"}, // no --target streamline
		{[]string{"--target", "streamline", "--server-bin", os.Args[0], "--logsvc-nodes", "3"}, "--logsvc-nodes"},
		{[]string{"--target", "kfake", "--read-cache-bytes", "1MiB"}, "--read-cache-bytes"},
		{[]string{"--target", "streamline", "--diskless-max-buffered-bytes", "0"}, "--diskless-max-buffered-bytes"},
		{[]string{"--duration", "-5s"}, "--duration"},
		{[]string{"--target", "kfake", "--trace-breakdown"}, "--trace-breakdown"},
		{[]string{"--target", "streamline", "--server-bin", os.Args[0], "--trace-breakdown"}, "--trace-breakdown"},
	} {
		code, stderr := stderrOf(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.flag) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming %s", c.args, code, stderr, c.flag)
		}
	}
	// The flags that are fine together pass the check.
	if err := checkServerFlags("streamline", os.Args[0], 1, "express", 15*time.Second, 30*time.Second, time.Minute, byteSize{n: 1 << 20, set: true}, byteSize{}); err != nil {
		t.Fatalf("valid combination refused: %v", err)
	}
}

func TestChildArgs(t *testing.T) {
	cfg := allinone.Default()
	cfg.DataDir, cfg.AdminAddr, cfg.ObjectStore, cfg.ReadCacheBytes = "/tmp/x", "", "s3://bench", 8<<20
	cfg.Merge.Disabled = true
	args := strings.Join(childArgs(cfg), " ")
	for _, want := range []string{"--data-dir /tmp/x", "--object-store s3://bench", "--read-cache-bytes 8388608", "--merge=false", "--admin-addr  "} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	if strings.Contains(args, "--diskless-max-buffered-bytes") || strings.Contains(args, "--unsafe-no-fsync") {
		t.Errorf("args %q set flags left at their defaults", args)
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tstreamline\nVmPeak:\t  900 kB\nVmRSS:\t  123456 kB\nRssAnon:\t 100 kB\n"
	if n, err := parseVmRSS([]byte(status)); err != nil || n != 123456<<10 {
		t.Fatalf("got %d, %v", n, err)
	}
	if _, err := parseVmRSS([]byte("Name:\tzombie\n")); err == nil {
		t.Fatal("no VmRSS: no error")
	}
	// This process has one.
	if n, err := vmRSS(os.Getpid()); err != nil || n <= 0 {
		t.Fatalf("own RSS: %d, %v", n, err)
	}
}

// TestWindows: throughput and peak RSS per window of the samples, and
// when acknowledgements moved again after an outage.
func TestWindows(t *testing.T) {
	s := func(sec float64, rss, acked int64) sample {
		return sample{at: time.Duration(sec * float64(time.Second)), rss: rss, acked: acked}
	}
	samples := []sample{s(0, 10, 0), s(1, 20, 100), s(2, 50, 200), s(3, 40, 200), s(4, 30, 200), s(5, 30, 250), s(6, 25, 350)}
	if r, peak, ok := window(samples, 0, 2*time.Second); !ok || r != 100 || peak != 50 {
		t.Errorf("before: %v rec/s, peak %d, %v", r, peak, ok)
	}
	if r, peak, ok := window(samples, 2*time.Second, 4*time.Second); !ok || r != 0 || peak != 50 {
		t.Errorf("during: %v rec/s, peak %d, %v", r, peak, ok)
	}
	if _, _, ok := window(samples, 10*time.Second, 20*time.Second); ok {
		t.Error("a window without samples is ok")
	}
	if d, ok := resumedAfter(samples, 3*time.Second); !ok || d != 2*time.Second {
		t.Errorf("resumed after %v, %v; want 2s", d, ok)
	}
	if _, ok := resumedAfter(samples[:5], 3*time.Second); ok {
		t.Error("resumed without a new ack")
	}
	if peak, end := peakEnd(samples); peak != 50 || end != 25 {
		t.Errorf("peak %d end %d", peak, end)
	}
}

// TestPreloadRun: --preload-records writes its records to the preload
// topic and then deletes it, or keeps it with --preload-then keep.
func TestPreloadRun(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, del := range []bool{false, true} {
		topic := fmt.Sprintf("pre-%v", del)
		line, err := preloadRun(ctx, c.ListenAddrs(), topic, 2, 300, 64, 1, nil, del)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(line, "300 records") {
			t.Errorf("preload line %q does not say it wrote 300 records", line)
		}
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if del {
			if ends.Error() == nil {
				t.Errorf("%s: still listed after the delete: %v", topic, ends)
			}
			continue
		}
		var total int64
		ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
		if total != 300 {
			t.Errorf("%s kept with %d records, want 300", topic, total)
		}
	}
}
