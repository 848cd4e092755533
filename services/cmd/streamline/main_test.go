package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestBadHTTPAddrIsAUsageError: a malformed --http-addr stops the server
// before it starts anything, with the usage exit code.
func TestBadHTTPAddrIsAUsageError(t *testing.T) {
	for _, bad := range []string{"9094", "localhost", "127.0.0.1:http-port"} {
		if code := run([]string{"--data-dir", t.TempDir(), "--http-addr", bad}); code != 2 {
			t.Errorf("--http-addr %q: exit %d, want 2", bad, code)
		}
	}
}

// TestBadFlagsStopBeforeAnythingStarts runs the built binary with each bad
// flag: exit code 2, one line on stderr naming the flag and pointing to
// --help (not the whole usage), and no data directory created (nothing
// was started).
func TestBadFlagsStopBeforeAnythingStarts(t *testing.T) {
	bin := cluster.Binary(t, "./services/cmd/streamline")
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--default-storage-mode", "Hybrid"}, "--default-storage-mode"},
		{[]string{"--default-storage-mode", "cloud"}, "--default-storage-mode"},
		{[]string{"--partitions", "3"}, "--partitions"},
		{[]string{"--default-partitions", "x"}, "--default-partitions"},
		{[]string{"--default-partitions", "0"}, "--default-partitions"},
		{[]string{"--kafka-addr", "9092"}, "--kafka-addr"},
		{[]string{"--admin-addr", "localhost"}, "--admin-addr"},
		{[]string{"--etcd-peer-addr", "x"}, "--etcd-peer-addr"},
		{[]string{"--diskless-upload-parallelism", "-1"}, "--diskless-upload-parallelism"},
		{[]string{"--tiering-enabled"}, "--tiering-bucket"},
		{[]string{"--tiering-bucket", "my-bucket"}, "--tiering-enabled"},
		{[]string{"--tiering-enabled", "--tiering-bucket", "My_Bucket"}, "--tiering-bucket"},
		{[]string{"--tiering-enabled", "--tiering-bucket", "my-bucket", "--object-store", "file:///tmp/x"}, "--object-store"},
		{[]string{"--hybrid-upload-parallelism", "0"}, "--hybrid-upload-parallelism"},
		{[]string{"--hybrid-upload-bytes-per-second", "-2"}, "--hybrid-upload-bytes-per-second"},
		{[]string{"--memory-limit", "-2"}, "--memory-limit"},
		{[]string{"--hybrid-max-pending-bytes", "0"}, "--hybrid-max-pending-bytes"},
		{[]string{"--hybrid-upload-interval", "0s"}, "--hybrid-upload-interval"},
		{[]string{"--transaction-max-timeout", "0s"}, "--transaction-max-timeout"},
		{[]string{"--transactional-id-expiration", "-1h"}, "--transactional-id-expiration"},
		{[]string{"--transaction-version", "3"}, "--transaction-version"},
		{[]string{"--diskless-idle-flush", "-1ms"}, "--diskless-idle-flush"},
		{[]string{"--diskless-eager-flush=maybe"}, "--diskless-eager-flush"},
		{[]string{"--diskless-batch-timeout", "11s"}, "--diskless-batch-timeout: must be between 0 and 10s"},
	} {
		dataDir := filepath.Join(t.TempDir(), "data")
		cmd := exec.Command(bin, append([]string{"--data-dir", dataDir}, tc.args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%v: %v, want exit code 2", tc.args, err)
		}
		msg := strings.TrimSpace(stderr.String())
		if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, tc.flag) || !strings.HasSuffix(msg, "(see streamline --help)") {
			t.Errorf("%v: stderr %q, want one line naming %s and pointing to --help", tc.args, msg, tc.flag)
		}
		if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
			t.Errorf("%v: the data directory was created (%v): something started before the flags were checked", tc.args, err)
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.RemoveBinaries()
	os.Exit(code)
}
