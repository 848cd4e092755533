package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/streamline-dev/streamline/services/cluster"
)

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.RemoveBinaries()
	os.Exit(code)
}

// result is one run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// cli runs the CLI in-process with stdin and args.
func cli(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var out, errb strings.Builder
	code := run(args, stdin, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// ok runs the CLI against admin and wants exit 0.
func ok(t *testing.T, admin string, stdin io.Reader, args ...string) result {
	t.Helper()
	r := cli(t, stdin, append([]string{"--admin-addr", admin}, args...)...)
	if r.code != 0 {
		t.Fatalf("streamline-cli %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// fails runs the CLI against admin and wants exit code with stderr
// containing every mention.
func fails(t *testing.T, admin string, code int, mentions []string, args ...string) result {
	t.Helper()
	r := cli(t, nil, append([]string{"--admin-addr", admin}, args...)...)
	if r.code != code {
		t.Fatalf("streamline-cli %s: want exit %d, got %s", strings.Join(args, " "), code, r)
	}
	for _, m := range mentions {
		if !strings.Contains(r.stderr, m) {
			t.Fatalf("streamline-cli %s: stderr does not mention %q: %s", strings.Join(args, " "), m, r)
		}
	}
	return r
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("output is not JSON (%v):\n%s", err, s)
	}
}

func lines(n int, format string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, format+"\n", i, i)
	}
	return b.String()
}

// TestCLI drives every command against a real all-in-one: topics with
// storage modes and remote-storage settings, produce and consume through
// the Kafka API, consumer groups with lag and resets, the cluster.
func TestCLI(t *testing.T) {
	s := cluster.StartAllInOne(t, cluster.WithoutAutoCreate())
	admin := s.AdminAddr()

	// A diskless topic with every remote-storage flag and a config.
	r := ok(t, admin, nil, "topics", "create", "cli-diskless", "--partitions", "3", "--storage-mode", "diskless",
		"--remote-storage-batch-size", "65536", "--remote-storage-batch-timeout-ms", "50",
		"--remote-storage-upload-parallelism", "2", "--remote-storage-read-cache-bytes", "1048576",
		"--config", "retention.ms=3600000")
	if !strings.Contains(r.stdout, `Created topic "cli-diskless": 3 partitions, replication factor 1, storage mode Diskless.`) {
		t.Fatalf("create: %s", r)
	}
	r = ok(t, admin, nil, "topics", "describe", "cli-diskless")
	for _, want := range []string{
		"Topic:        cli-diskless\n", "Partitions:   3\n", "Storage Mode: Diskless\n", "Remote Storage:\n",
		"Batch Size (bytes):  65536", "Batch Timeout (ms):  50", "Upload Parallelism:  2", "Read Cache (bytes):  1048576",
		"Configs:\n", "retention.ms", "3600000", "storage.mode", "diskless",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("describe does not show %q:\n%s", want, r.stdout)
		}
	}
	if !regexp.MustCompile(`(?m)^PARTITION +LEADER NODE +EPOCH +REPLICAS +ISR +LOG START +HIGH WATERMARK`).MatchString(r.stdout) ||
		len(regexp.MustCompile(`(?m)^[0-2] +\S+ +\d+ +\S+ +\S+ +0 +0 `).FindAllString(r.stdout, -1)) != 3 {
		t.Fatalf("describe: no partition table with 3 empty partitions:\n%s", r.stdout)
	}
	var desc struct {
		Topic struct {
			Name          string            `json:"name"`
			ID            string            `json:"id"`
			Partitions    int               `json:"partitions"`
			StorageMode   string            `json:"storage_mode"`
			Configs       map[string]string `json:"configs"`
			RemoteStorage struct {
				BatchSizeBytes    int64 `json:"batch_size_bytes"`
				BatchTimeoutMs    int64 `json:"batch_timeout_ms"`
				UploadParallelism int32 `json:"upload_parallelism"`
				ReadCacheBytes    int64 `json:"read_cache_bytes"`
			} `json:"remote_storage"`
		} `json:"topic"`
		Partitions []struct {
			Partition     int32  `json:"partition"`
			LeaderNode    string `json:"leader_node"`
			HighWatermark int64  `json:"high_watermark"`
		} `json:"partitions"`
	}
	mustJSON(t, ok(t, admin, nil, "topics", "describe", "cli-diskless", "-o", "json").stdout, &desc)
	rs := desc.Topic.RemoteStorage
	if desc.Topic.Name != "cli-diskless" || desc.Topic.ID == "" || desc.Topic.Partitions != 3 || desc.Topic.StorageMode != "diskless" ||
		rs.BatchSizeBytes != 65536 || rs.BatchTimeoutMs != 50 || rs.UploadParallelism != 2 || rs.ReadCacheBytes != 1048576 ||
		desc.Topic.Configs["retention.ms"] != "3600000" || len(desc.Partitions) != 3 || desc.Partitions[0].LeaderNode == "" {
		t.Fatalf("describe -o json: %+v", desc)
	}

	// Validate-only creates nothing.
	r = ok(t, admin, nil, "topics", "create", "cli-validated", "--partitions", "2", "--validate-only")
	if !strings.Contains(r.stdout, "Validated") {
		t.Fatalf("validate only: %s", r)
	}
	ok(t, admin, nil, "topics", "create", "cli-local", "--partitions", "2", "--storage-mode", "local")

	r = ok(t, admin, nil, "topics", "list")
	if !regexp.MustCompile(`(?m)^cli-diskless +3 +Diskless$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^cli-local +2 +Local$`).MatchString(r.stdout) || strings.Contains(r.stdout, "cli-validated") {
		t.Fatalf("list:\n%s", r.stdout)
	}
	var list struct {
		Topics []struct {
			Name        string `json:"name"`
			StorageMode string `json:"storage_mode"`
		} `json:"topics"`
	}
	mustJSON(t, ok(t, admin, nil, "topics", "list", "-o", "json").stdout, &list)
	if len(list.Topics) != 2 || list.Topics[0].Name != "cli-diskless" || list.Topics[1].StorageMode != "local" {
		t.Fatalf("list -o json: %+v", list)
	}

	// Produce 100 keyed lines (Kafka address discovered through the admin
	// API), consume them back as JSON.
	r = ok(t, admin, strings.NewReader(lines(100, "key-%d:value-%d")), "produce", "cli-local", "--key-separator", ":")
	if !regexp.MustCompile(`^Produced 100 records \(\d+ bytes\) to "cli-local" in \S+, 0 errors\.\n$`).MatchString(r.stdout) {
		t.Fatalf("produce summary: %s", r)
	}
	r = ok(t, admin, nil, "consume", "cli-local", "--from-beginning", "--max-records", "100", "-o", "json")
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		var rec struct {
			Topic     string  `json:"topic"`
			Partition int32   `json:"partition"`
			Offset    int64   `json:"offset"`
			Key       *string `json:"key"`
			Value     string  `json:"value"`
			Timestamp string  `json:"timestamp"`
		}
		mustJSON(t, sc.Text(), &rec)
		if rec.Topic != "cli-local" || rec.Key == nil || rec.Offset < 0 || rec.Partition < 0 || rec.Partition > 1 {
			t.Fatalf("record %s", sc.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, rec.Timestamp); err != nil {
			t.Fatalf("record timestamp: %v", err)
		}
		got[*rec.Key] = rec.Value
	}
	if len(got) != 100 || got["key-7"] != "value-7" || got["key-99"] != "value-99" {
		t.Fatalf("consumed %d distinct keys (key-7=%q): %s", len(got), got["key-7"], r)
	}
	if !strings.Contains(r.stderr, "Consumed 100 records") || !strings.Contains(r.stderr, "reached --max-records") {
		t.Fatalf("consume summary: %s", r)
	}

	// The diskless topic through explicit --bootstrap-servers, plain text.
	r = ok(t, admin, strings.NewReader(lines(100, "line %d of %d")), "produce", "cli-diskless", "--bootstrap-servers", s.KafkaAddr(), "-o", "json")
	var sum struct{ Records, Bytes, Errors int64 }
	mustJSON(t, r.stdout, &sum)
	if sum.Records != 100 || sum.Errors != 0 || sum.Bytes == 0 {
		t.Fatalf("produce -o json: %s", r)
	}

	// A group consumes everything and commits.
	r = ok(t, admin, nil, "consume", "cli-diskless", "--group", "cli-group", "--from-beginning", "--max-records", "100")
	vals := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	sort.Strings(vals)
	if len(vals) != 100 || vals[0] != "line 0 of 0" {
		t.Fatalf("group consume printed %d lines: %s", len(vals), r)
	}
	r = ok(t, admin, nil, "groups", "list")
	if !regexp.MustCompile(`(?m)^cli-group +Empty +consumer +\d+$`).MatchString(r.stdout) {
		t.Fatalf("groups list:\n%s", r)
	}
	var groups struct {
		Groups []struct{ Group, State string } `json:"groups"`
	}
	mustJSON(t, ok(t, admin, nil, "groups", "list", "-o", "json").stdout, &groups)
	if len(groups.Groups) != 1 || groups.Groups[0].Group != "cli-group" {
		t.Fatalf("groups list -o json: %+v", groups)
	}
	r = ok(t, admin, nil, "groups", "describe", "cli-group")
	for _, want := range []string{"Group:       cli-group\n", "State:       Empty\n", "Total Lag:   0\n", "TOPIC", "COMMITTED", "LAG"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("groups describe does not show %q:\n%s", want, r.stdout)
		}
	}
	var dg struct {
		Group    struct{ State string } `json:"group"`
		Offsets  []struct{ Committed, End, Lag int64 }
		TotalLag int64 `json:"total_lag"`
	}
	mustJSON(t, ok(t, admin, nil, "groups", "describe", "cli-group", "-o", "json").stdout, &dg)
	var committed int64
	for _, o := range dg.Offsets {
		committed += o.Committed
		if o.Committed != o.End || o.Lag != 0 {
			t.Fatalf("groups describe -o json: %+v", dg)
		}
	}
	// Unkeyed records go to one partition per batch (the sticky
	// partitioner): only partitions with a commit are listed.
	if len(dg.Offsets) == 0 || committed != 100 || dg.TotalLag != 0 {
		t.Fatalf("groups describe -o json: %+v", dg)
	}

	// Reset: a dry run commits nothing, then to the earliest offsets.
	r = ok(t, admin, nil, "groups", "reset-offsets", "cli-group", "--topic", "cli-diskless", "--to-earliest", "--partitions", "0,1", "--dry-run")
	if !strings.Contains(r.stdout, "Dry run") || len(regexp.MustCompile(`(?m)^cli-diskless +[01] +0$`).FindAllString(r.stdout, -1)) != 2 {
		t.Fatalf("reset dry run:\n%s", r)
	}
	mustJSON(t, ok(t, admin, nil, "groups", "describe", "cli-group", "-o", "json").stdout, &dg)
	if dg.TotalLag != 0 {
		t.Fatalf("a dry run changed the lag to %d", dg.TotalLag)
	}
	ok(t, admin, nil, "groups", "reset-offsets", "cli-group", "--topic", "cli-diskless", "--to-earliest")
	mustJSON(t, ok(t, admin, nil, "groups", "describe", "cli-group", "-o", "json").stdout, &dg)
	if dg.TotalLag != 100 {
		t.Fatalf("after reset to earliest: lag %d, want 100", dg.TotalLag)
	}
	ok(t, admin, nil, "groups", "reset-offsets", "cli-group", "--topic", "cli-diskless", "--to-datetime", time.Now().Add(time.Hour).Format(time.RFC3339))
	mustJSON(t, ok(t, admin, nil, "groups", "describe", "cli-group", "-o", "json").stdout, &dg)
	if dg.TotalLag != 0 {
		t.Fatalf("after reset to a future time: lag %d, want 0", dg.TotalLag)
	}
	fails(t, admin, 1, []string{"error: NotFound: ", "no-such-group"}, "groups", "describe", "no-such-group")

	// The cluster.
	r = ok(t, admin, nil, "cluster")
	for _, want := range []string{"Cluster ID:", "Controller:", "Gateways (1):", s.KafkaAddr(), "Log Nodes (1):", "Local: 2, Diskless: 3 (5 in all)", "Uploaders (1):"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("cluster does not show %q:\n%s", want, r.stdout)
		}
	}
	var cl struct {
		Controller string
		Gateways   []struct{ Host string }
		LogNodes   []struct {
			ID            string           `json:"id"`
			PartitionsLed map[string]int32 `json:"partitions_led"`
		} `json:"log_nodes"`
		Uploaders []struct{ ID string }
	}
	mustJSON(t, ok(t, admin, nil, "cluster", "-o", "json").stdout, &cl)
	if len(cl.Gateways) != 1 || len(cl.LogNodes) != 1 || len(cl.Uploaders) != 1 || cl.Controller != cl.LogNodes[0].ID ||
		cl.LogNodes[0].PartitionsLed["diskless"] != 3 || cl.LogNodes[0].PartitionsLed["local"] != 2 {
		t.Fatalf("cluster -o json: %+v", cl)
	}

	// Delete; then the topic is gone.
	r = ok(t, admin, nil, "topics", "delete", "cli-diskless")
	if r.stdout != "Deleted topic \"cli-diskless\".\n" {
		t.Fatalf("delete: %s", r)
	}
	fails(t, admin, 1, []string{"error: NotFound: ", "cli-diskless"}, "topics", "describe", "cli-diskless")
	fails(t, admin, 1, []string{"error: NotFound: "}, "topics", "delete", "cli-diskless")
	fails(t, admin, 1, []string{`topic "cli-diskless" does not exist`}, "produce", "cli-diskless")
	// Said once: no Kafka code name, no repeated "already exists", no hint
	// about the admin address (the call reached it).
	if r := fails(t, admin, 1, nil, "topics", "create", "cli-local"); r.stderr != "error: AlreadyExists: topic cli-local already exists\n" {
		t.Fatalf("create twice: stderr %q", r.stderr)
	}
	fails(t, admin, 1, []string{"error: InvalidArgument: ", "no.such.config"}, "topics", "create", "cli-bad", "--config", "no.such.config=1")
}

// TestCLIAlterTopic sets and removes topic configs with topics alter
// (AlterTopicConfigs, which the gateway serves through Kafka's
// IncrementalAlterConfigs).
func TestCLIAlterTopic(t *testing.T) {
	s := cluster.StartAllInOne(t, cluster.WithoutAutoCreate())
	admin := s.AdminAddr()
	ok(t, admin, nil, "topics", "create", "cli-alter", "--partitions", "1", "--storage-mode", "diskless", "--config", "retention.ms=3600000")
	r := ok(t, admin, nil, "topics", "alter", "cli-alter", "--set", "remote.storage.batch.timeout.ms=75", "--delete", "retention.ms")
	if !strings.Contains(r.stdout, "remote.storage.batch.timeout.ms") {
		t.Fatalf("alter: %s", r)
	}
	var desc struct {
		Topic struct {
			Configs       map[string]string `json:"configs"`
			RemoteStorage struct {
				BatchTimeoutMs int64 `json:"batch_timeout_ms"`
			} `json:"remote_storage"`
		} `json:"topic"`
	}
	mustJSON(t, ok(t, admin, nil, "topics", "describe", "cli-alter", "-o", "json").stdout, &desc)
	if desc.Topic.RemoteStorage.BatchTimeoutMs != 75 || desc.Topic.Configs["retention.ms"] == "3600000" {
		t.Fatalf("after alter: %+v", desc.Topic)
	}
	fails(t, admin, 1, []string{"error: InvalidArgument: ", "no.such.config"}, "topics", "alter", "cli-alter", "--set", "no.such.config=1")
	fails(t, admin, 1, []string{"error: NotFound: "}, "topics", "alter", "missing-topic", "--set", "retention.ms=1")
	fails(t, admin, 1, []string{"error: InvalidArgument: ", "storage.mode of a diskless topic cannot be changed"},
		"topics", "alter", "cli-alter", "--set", "storage.mode=local")

	// A hybrid topic (the all-in-one has an object store): created, shown,
	// changed to local and back; never to diskless.
	r = ok(t, admin, nil, "topics", "create", "cli-hybrid", "--partitions", "2", "--storage-mode", "hybrid", "--config", "local.retention.ms=60000")
	if !strings.Contains(r.stdout, `Created topic "cli-hybrid": 2 partitions, replication factor 1, storage mode Hybrid.`) {
		t.Fatalf("create hybrid: %s", r)
	}
	r = ok(t, admin, nil, "topics", "describe", "cli-hybrid")
	for _, want := range []string{"Storage Mode: Hybrid\n", "local.retention.ms", "60000", "local.retention.bytes", "-2"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("describe hybrid does not show %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "Remote Storage:") {
		t.Fatalf("describe hybrid shows the diskless batching settings:\n%s", r.stdout)
	}
	if !regexp.MustCompile(`(?m)^cli-hybrid +2 +Hybrid$`).MatchString(ok(t, admin, nil, "topics", "list").stdout) {
		t.Fatal("list does not show cli-hybrid as Hybrid")
	}
	describedMode := func(name string) string {
		var d struct {
			Topic struct {
				StorageMode string            `json:"storage_mode"`
				Configs     map[string]string `json:"configs"`
			} `json:"topic"`
		}
		mustJSON(t, ok(t, admin, nil, "topics", "describe", name, "-o", "json").stdout, &d)
		if d.Topic.Configs["storage.mode"] != d.Topic.StorageMode {
			t.Fatalf("%s: storage_mode %q, configs[storage.mode] %q", name, d.Topic.StorageMode, d.Topic.Configs["storage.mode"])
		}
		return d.Topic.StorageMode
	}
	if m := describedMode("cli-hybrid"); m != "hybrid" {
		t.Fatalf("describe -o json: storage_mode %q", m)
	}
	ok(t, admin, nil, "topics", "alter", "cli-hybrid", "--set", "storage.mode=local")
	if m := describedMode("cli-hybrid"); m != "local" {
		t.Fatalf("after --set storage.mode=local: %q", m)
	}
	ok(t, admin, nil, "topics", "alter", "cli-hybrid", "--set", "storage.mode=hybrid")
	if m := describedMode("cli-hybrid"); m != "hybrid" {
		t.Fatalf("after --set storage.mode=hybrid: %q", m)
	}
	fails(t, admin, 1, []string{"error: InvalidArgument: ", "a local or hybrid topic cannot become diskless"},
		"topics", "alter", "cli-hybrid", "--set", "storage.mode=diskless")
	fails(t, admin, 1, []string{"error: InvalidArgument: ", "local.retention.ms must not be more than retention.ms"},
		"topics", "alter", "cli-hybrid", "--set", "retention.ms=59999")
}

// TestCLIUsageErrors checks that a wrong command line exits 2 naming the
// flag, before any call: the admin address is a closed port, where any
// call would fail with exit 1.
func TestCLIUsageErrors(t *testing.T) {
	closed := cluster.FreeAddr(t)
	for _, tc := range []struct {
		args    []string
		mention string
	}{
		{[]string{"topics", "create", "t", "--partitions", "x"}, `invalid value "x" for flag --partitions: not an integer`},
		{[]string{"topics", "create", "t", "--partitions", "-3"}, `invalid value "-3" for flag --partitions`},
		{[]string{"topics", "create", "t", "--storage-mode", "cloud"}, `invalid value "cloud" for flag --storage-mode`},
		{[]string{"topics", "create", "t", "--remote-storage-batch-size", "big"}, `flag --remote-storage-batch-size`},
		{[]string{"topics", "create", "t", "--config", "retention.ms"}, `invalid value "retention.ms" for flag --config: want key=value`},
		{[]string{"topics", "create"}, "missing argument NAME"},
		{[]string{"topics", "describe", "a", "b"}, `unexpected argument "b"`},
		{[]string{"topics", "alter", "t"}, "--set"},
		{[]string{"topics", "nope"}, `unknown command "nope"`},
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"topics", "list", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"topics", "list", "-o", "yaml"}, `invalid value "yaml" for flag --output`},
		{[]string{"cluster", "--timeout", "soon"}, `invalid value "soon" for flag --timeout`},
		{[]string{"groups", "reset-offsets", "g", "--topic", "t"}, "give exactly one of --to-earliest"},
		{[]string{"groups", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-latest"}, "--to-earliest and --to-latest"},
		{[]string{"groups", "reset-offsets", "g", "--to-earliest"}, "missing flag --topic"},
		{[]string{"groups", "reset-offsets", "g", "--topic", "t", "--to-datetime", "yesterday"}, `invalid value "yesterday" for flag --to-datetime`},
		{[]string{"groups", "reset-offsets", "g", "--topic", "t", "--to-latest", "--partitions", "a"}, `flag --partitions`},
		{[]string{"consume", "t", "--max-records", "many"}, `invalid value "many" for flag --max-records`},
		{[]string{"consume", "t", "--timeout-idle", "-1s"}, `flag --timeout-idle`},
		{[]string{"produce", "t", "--bootstrap-servers", "nohost"}, `flag --bootstrap-servers`},
	} {
		r := cli(t, nil, append([]string{"--admin-addr", closed}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "error: "+tc.mention) && !strings.Contains(r.stderr, tc.mention) || !strings.Contains(r.stderr, "--help' for usage") {
			t.Errorf("%v: want exit 2 mentioning %q, got %s", tc.args, tc.mention, r)
		}
	}

	// Environment: a bad STREAMLINE_OUTPUT is a usage error naming both.
	t.Setenv(envOutput, "xml")
	r := cli(t, nil, "--admin-addr", closed, "cluster")
	if r.code != 2 || !strings.Contains(r.stderr, "--output (from STREAMLINE_OUTPUT)") {
		t.Errorf("bad %s: %s", envOutput, r)
	}

	// Nobody listening: exit 1 with the gRPC code and a hint.
	t.Setenv(envOutput, "")
	r = cli(t, nil, "--admin-addr", closed, "cluster")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: Unavailable: ") || !strings.Contains(r.stderr, "hint:") {
		t.Errorf("closed admin port: %s", r)
	}
}

// TestCLIEnvAndProgress takes the admin address and output format from the
// environment, and shows progress lines on long runs with --progress.
func TestCLIEnvAndProgress(t *testing.T) {
	s := cluster.StartAllInOne(t, cluster.WithoutAutoCreate())
	t.Setenv(envAdminAddr, s.AdminAddr())
	t.Setenv(envOutput, "json")
	old := progressInterval
	progressInterval = 100 * time.Millisecond
	t.Cleanup(func() { progressInterval = old })

	r := cli(t, nil, "topics", "create", "cli-env", "--partitions", "1")
	var created struct {
		Topic struct {
			Name        string `json:"name"`
			StorageMode string `json:"storage_mode"`
		} `json:"topic"`
	}
	mustJSON(t, r.stdout, &created)
	if r.code != 0 || created.Topic.Name != "cli-env" || created.Topic.StorageMode != "local" {
		t.Fatalf("create through the environment: %s", r)
	}

	// Produce from a slow writer for over half a second.
	pr, pw := io.Pipe()
	go func() {
		defer pw.Close()
		for i := range 10 {
			fmt.Fprintf(pw, "slow %d\n", i)
			time.Sleep(60 * time.Millisecond)
		}
	}()
	r = cli(t, pr, "produce", "cli-env", "--progress", "-o", "text")
	if r.code != 0 || !strings.Contains(r.stdout, "Produced 10 records") || !regexp.MustCompile(`(?m)^produced \d+ records? \(\d+ B\) in \S+, \d+ records/s$`).MatchString(r.stderr) {
		t.Fatalf("produce --progress: %s", r)
	}
	// Consume until idle, with progress.
	r = cli(t, nil, "consume", "cli-env", "--from-beginning", "--timeout-idle", "700ms", "--progress", "-o", "text")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 10 || !strings.Contains(r.stderr, "consumed 10 records") || !strings.Contains(r.stderr, "(no record for 700ms)") {
		t.Fatalf("consume --timeout-idle --progress: %s", r)
	}
	// Without --progress and with stderr not a terminal: only the summary.
	r = cli(t, nil, "consume", "cli-env", "--from-beginning", "--max-records", "3", "--print-key", "--key-separator", "|", "-o", "text")
	if r.code != 0 || r.stdout != "|slow 0\n|slow 1\n|slow 2\n" || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("consume --print-key: %s", r)
	}
}

// TestCLIHelp runs --help on every command.
func TestCLIHelp(t *testing.T) {
	a := &app{ctx: context.Background()}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.Fields(c.CommandPath())[1:]
		r := cli(t, nil, append(path, "--help")...)
		about := c.Long
		if about == "" {
			about = c.Short
		}
		about, _, _ = strings.Cut(about, "\n")
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, about) || !strings.Contains(r.stdout, "--admin-addr") {
			t.Errorf("%s --help: %s", c.CommandPath(), r)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(a.rootCommand())
}

// TestCLIBinary runs the built binary: exit codes through os.Exit, the
// environment, stdin, and Ctrl-C ending a consume with its summary.
func TestCLIBinary(t *testing.T) {
	bin := cluster.Binary(t, "./services/cmd/streamline-cli")
	s := cluster.StartAllInOne(t, cluster.WithoutAutoCreate())
	runBin := func(stdin string, args ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), envAdminAddr+"="+s.AdminAddr(), envOutput+"=")
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		code := 0
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return result{code, out.String(), errb.String()}
	}
	if r := runBin("", "topics", "create", "bin-topic", "--partitions", "2"); r.code != 0 {
		t.Fatalf("create: %s", r)
	}
	if r := runBin("a\nb\nc", "produce", "bin-topic"); r.code != 0 || !strings.Contains(r.stdout, "Produced 3 records") {
		t.Fatalf("produce: %s", r)
	}
	if r := runBin("", "consume", "bin-topic", "--from-beginning", "--max-records", "3"); r.code != 0 || len(strings.Fields(r.stdout)) != 3 {
		t.Fatalf("consume: %s", r)
	}
	if r := runBin("", "topics", "describe", "no-such-topic"); r.code != 1 || !strings.HasPrefix(r.stderr, "error: NotFound: ") {
		t.Fatalf("describe a missing topic: %s", r)
	}
	if r := runBin("", "topics", "create", "x", "--partitions", "x"); r.code != 2 || !strings.Contains(r.stderr, `invalid value "x" for flag --partitions`) {
		t.Fatalf("bad flag: %s", r)
	}

	// Ctrl-C ends a consume that would wait forever: summary, exit 0.
	cmd := exec.Command(bin, "consume", "bin-topic", "--group", "bin-group", "--from-beginning")
	cmd.Env = append(os.Environ(), envAdminAddr+"="+s.AdminAddr(), envOutput+"=")
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(out.String(), "\n") < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if err != nil || !strings.Contains(errb.String(), "Consumed 3 records") || !strings.Contains(errb.String(), "(interrupted)") {
		t.Fatalf("consume ended by SIGINT: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	// It committed what it printed and left the group.
	r := cli(t, nil, "--admin-addr", s.AdminAddr(), "groups", "describe", "bin-group", "-o", "json")
	var dg struct {
		Members  []any `json:"members"`
		TotalLag int64 `json:"total_lag"`
	}
	mustJSON(t, r.stdout, &dg)
	if len(dg.Members) != 0 || dg.TotalLag != 0 {
		t.Fatalf("group after SIGINT: %s", r)
	}
}

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
