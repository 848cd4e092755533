package main

import "testing"

// TestBadHTTPAddrIsAUsageError: a malformed --http-addr stops the server
// before it starts anything, with the usage exit code.
func TestBadHTTPAddrIsAUsageError(t *testing.T) {
	for _, bad := range []string{"9094", "localhost", "127.0.0.1:http-port"} {
		if code := run([]string{"--data-dir", t.TempDir(), "--http-addr", bad}); code != 2 {
			t.Errorf("--http-addr %q: exit %d, want 2", bad, code)
		}
	}
}
