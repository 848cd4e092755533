package svcmain

import (
	"runtime/debug"
	"testing"
)

func TestApplyMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1)) // restore
	t.Setenv("GOMEMLIMIT", "")

	limit, by, err := ApplyMemoryLimit(MemoryLimitAuto, 228<<20)
	if err != nil || limit != 228<<20+memoryHeadroom || debug.SetMemoryLimit(-1) != limit {
		t.Fatalf("automatic limit = %d (%q, %v), runtime has %d; want budgets + headroom %d", limit, by, err, debug.SetMemoryLimit(-1), 228<<20+memoryHeadroom)
	}
	if limit, _, err := ApplyMemoryLimit(1<<30, 228<<20); err != nil || limit != 1<<30 || debug.SetMemoryLimit(-1) != 1<<30 {
		t.Fatalf("explicit limit = %d, %v; runtime has %d", limit, err, debug.SetMemoryLimit(-1))
	}
	if limit, _, err := ApplyMemoryLimit(MemoryLimitNone, 228<<20); err != nil || limit != 0 || debug.SetMemoryLimit(-1) != mathMaxInt64 {
		t.Fatalf("no limit = %d, %v; runtime has %d", limit, err, debug.SetMemoryLimit(-1))
	}
	if _, _, err := ApplyMemoryLimit(-2, 228<<20); err == nil {
		t.Fatal("--memory-limit -2 accepted")
	}

	// GOMEMLIMIT wins over the automatic limit, not over an explicit one.
	// The runtime read it at start, so the test sets the runtime's limit
	// as the environment would have.
	t.Setenv("GOMEMLIMIT", "300MiB")
	debug.SetMemoryLimit(300 << 20)
	if limit, by, err := ApplyMemoryLimit(MemoryLimitAuto, 228<<20); err != nil || limit != 300<<20 || by != "GOMEMLIMIT=300MiB" {
		t.Fatalf("automatic limit with GOMEMLIMIT set = %d (%q, %v), want GOMEMLIMIT's 300 MiB", limit, by, err)
	}
	if limit, _, _ := ApplyMemoryLimit(512<<20, 228<<20); limit != 512<<20 {
		t.Fatalf("explicit limit with GOMEMLIMIT set = %d, want 512 MiB", limit)
	}
}
