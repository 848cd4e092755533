package svcmain

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
)

// Memory limit. Go's collector lets the heap grow to twice what is live
// before collecting (GOGC=100), so a node whose buffers and caches are
// full holds up to twice their size in RSS: measured on the all-in-one
// under a saturating diskless load, 645-950 MiB peak RSS against 228 MiB
// of configured buffer and caches. A soft memory limit (GOMEMLIMIT) makes
// the collector work harder as the heap nears it instead; with it the
// same load peaked at 373 MiB.
const (
	// MemoryLimitAuto as --memory-limit derives the limit from the
	// node's memory budgets (the default).
	MemoryLimitAuto = 0
	// MemoryLimitNone as --memory-limit sets no limit (GOGC alone).
	MemoryLimitNone = -1
	// memoryHeadroom is what an automatic limit allows beyond the
	// budgets: the rest of the process (connections, requests in flight,
	// an embedded etcd, the runtime). RSS stays near the limit plus the
	// binary's mapped pages, about budgets + 200 MiB.
	memoryHeadroom = 168 << 20
)

// MemoryLimitFlag registers --memory-limit and returns its value.
func (f *Flags) MemoryLimitFlag() *int64 {
	return f.FlagSet.Int64("memory-limit", MemoryLimitAuto,
		"soft memory limit of the process in bytes (the Go runtime collects harder as the heap nears it); 0: automatic, the node's buffer and cache budgets plus 168 MiB, unless GOMEMLIMIT is set; -1: none")
}

// ApplyMemoryLimit sets the runtime's soft memory limit from the
// --memory-limit value: an explicit limit, none, or (MemoryLimitAuto)
// budget plus headroom unless the GOMEMLIMIT environment variable
// already set one. It returns the limit in force (0: none) and what set
// it, for the startup log.
func ApplyMemoryLimit(flag, budget int64) (int64, string, error) {
	switch {
	case flag < MemoryLimitNone:
		return 0, "", fmt.Errorf("invalid value %d for flag --memory-limit: a limit in bytes, 0 (automatic) or -1 (none)", flag)
	case flag == MemoryLimitNone:
		debug.SetMemoryLimit(mathMaxInt64)
		return 0, "--memory-limit -1", nil
	case flag > 0:
		debug.SetMemoryLimit(flag)
		return flag, "--memory-limit", nil
	}
	if env := os.Getenv("GOMEMLIMIT"); env != "" {
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT=" + env, nil // -1 reads it
	}
	limit := budget + memoryHeadroom
	debug.SetMemoryLimit(limit)
	return limit, "automatic (buffer and cache budgets + 168 MiB)", nil
}

// LogMemoryLimit logs what ApplyMemoryLimit returned.
func LogMemoryLimit(log *slog.Logger, limit int64, source string) {
	if limit == 0 {
		log.Info("no memory limit", "set_by", source)
		return
	}
	log.Info("memory limit", "mib", limit>>20, "set_by", source)
}

const mathMaxInt64 = 1<<63 - 1
