package chaos

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/services/cluster"
)

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.RemoveBinaries()
	os.Exit(code)
}

// TestChaos runs the seeded fault campaign. CHAOS_DURATION (default 2m)
// is how long faults are injected; CHAOS_SEED (default: the clock) fixes
// the schedule; CHAOS_REPORT names a file for the JSON report; CHAOS_LOGS
// a directory for the processes' logs. `make chaos` sets them from
// DURATION, SEED, REPORT and LOGS.
func TestChaos(t *testing.T) {
	cfg := Config{Duration: 2 * time.Minute, Seed: uint64(time.Now().UnixNano() % 1_000_000_000), ReportPath: os.Getenv("CHAOS_REPORT"), LogDir: os.Getenv("CHAOS_LOGS")}
	if s := os.Getenv("CHAOS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("CHAOS_DURATION=%q: want a positive duration such as 2m or 30m", s)
		}
		cfg.Duration = d
	}
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: want an unsigned integer", s)
		}
		cfg.Seed = seed
	}
	Run(t, cfg)
}
