package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestTierStats(t *testing.T) {
	const text = `# TYPE streamline_logsvc_tier_uploaded_segments_total counter
streamline_logsvc_tier_uploaded_segments_total{storage_mode="hybrid"} 12
# TYPE streamline_logsvc_tier_uploaded_bytes_total counter
streamline_logsvc_tier_uploaded_bytes_total{storage_mode="hybrid"} 1.2582912e+07
# TYPE streamline_logsvc_tier_upload_failures_total counter
streamline_logsvc_tier_upload_failures_total{storage_mode="hybrid"} 1
# TYPE streamline_logsvc_partitions_led gauge
streamline_logsvc_partitions_led 3
`
	got, err := parseTierStats(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if want := (TierStats{12, 12 << 20, 1}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if s := got.Sub(TierStats{2, 2 << 20, 1}).String(); s != "10 segments, 10.0 MiB uploaded" {
		t.Fatalf("String: %q", s)
	}

	// Two nodes' registries are summed.
	regs := make([]prometheus.Gatherer, 2)
	for i := range regs {
		r := prometheus.NewRegistry()
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: metricTierSegments, ConstLabels: prometheus.Labels{"storage_mode": "hybrid"}})
		c.Add(float64(i + 1))
		r.MustRegister(c)
		regs[i] = r
	}
	if got, err := TierStatsFrom(regs...); err != nil || got.Segments != 3 {
		t.Fatalf("TierStatsFrom: %+v, %v", got, err)
	}
}

func TestDirBytes(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int{"x": 10, "a/y": 5} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := DirBytes(dir); got != 15 {
		t.Fatalf("DirBytes = %d, want 15", got)
	}
	if got := DirBytes(filepath.Join(dir, "missing")); got != 0 {
		t.Fatalf("DirBytes(missing) = %d", got)
	}
}
