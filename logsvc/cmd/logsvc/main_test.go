package main

import "testing"

// TestBadHTTPAddrIsAUsageError: a malformed --http-addr (the error names
// the flag, see svcmain) stops the binary with the usage exit code before
// it connects to anything.
func TestBadHTTPAddrIsAUsageError(t *testing.T) {
	for _, bad := range []string{"9094", "localhost", "127.0.0.1:99999"} {
		if code := run([]string{"--http-addr", bad}); code != 2 {
			t.Errorf("--http-addr %q: exit %d, want 2", bad, code)
		}
	}
}

// TestTieringFlagsAreUsageErrors: the seed's S3 shorthands for
// --object-store are checked before anything connects (see svcmain).
func TestTieringFlagsAreUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--tiering-enabled"},
		{"--tiering-region", "us-east-1"},
		{"--tiering-enabled", "--tiering-bucket", "x"},
		{"--tiering-enabled", "--tiering-bucket", "my-bucket", "--object-store", "file:///tmp/x"},
	} {
		if code := run(args); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// TestNegativeIdleFlushIsAUsageError: --diskless-idle-flush takes 0 (off)
// or a positive duration.
func TestNegativeIdleFlushIsAUsageError(t *testing.T) {
	if code := run([]string{"--diskless-idle-flush", "-1ms"}); code != 2 {
		t.Errorf("--diskless-idle-flush -1ms: exit %d, want 2", code)
	}
}

// TestBatchTimeoutOutOfRangeIsAUsageError: --diskless-batch-timeout is
// between 0 and meta.MaxBatchTimeout (a produce waits for its flush).
func TestBatchTimeoutOutOfRangeIsAUsageError(t *testing.T) {
	for _, v := range []string{"-1ms", "10001ms", "1h"} {
		if code := run([]string{"--diskless-batch-timeout", v}); code != 2 {
			t.Errorf("--diskless-batch-timeout %s: exit %d, want 2", v, code)
		}
	}
}

// TestBadEagerFlushIsAUsageError: --diskless-eager-flush is a boolean.
func TestBadEagerFlushIsAUsageError(t *testing.T) {
	if code := run([]string{"--diskless-eager-flush=maybe"}); code != 2 {
		t.Errorf("--diskless-eager-flush=maybe: exit %d, want 2", code)
	}
}

// TestNonPositiveWALFileBytesIsAUsageError: a WAL file needs a size.
func TestNonPositiveWALFileBytesIsAUsageError(t *testing.T) {
	for _, v := range []string{"0", "-1"} {
		if code := run([]string{"--wal-file-bytes", v}); code != 2 {
			t.Errorf("--wal-file-bytes %s: exit %d, want 2", v, code)
		}
	}
}
