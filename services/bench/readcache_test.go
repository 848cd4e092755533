package bench

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestReadCacheStats(t *testing.T) {
	const text = `# TYPE streamline_logsvc_read_cache_hits_total counter
streamline_logsvc_read_cache_hits_total{storage_mode="diskless",tier="manifest"} 95
streamline_logsvc_read_cache_hits_total{storage_mode="diskless",tier="range"} 30
streamline_logsvc_read_cache_hits_total{storage_mode="diskless",tier="ring"} 0
# TYPE streamline_logsvc_read_cache_misses_total counter
streamline_logsvc_read_cache_misses_total{storage_mode="diskless",tier="manifest"} 5
streamline_logsvc_read_cache_misses_total{storage_mode="diskless",tier="range"} 10
streamline_logsvc_read_cache_misses_total{storage_mode="diskless",tier="ring"} 40
# TYPE streamline_logsvc_partitions_led gauge
streamline_logsvc_partitions_led 3
`
	mfs, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	got := readCacheStats(mfs)
	if got["manifest"] != (HitsMisses{95, 5}) || got["range"] != (HitsMisses{30, 10}) || got["ring"] != (HitsMisses{0, 40}) {
		t.Fatalf("parsed %+v", got)
	}
	// In read order: ring, range, manifest.
	if s := got.String(); s != "ring 0% of 40, range 75% of 40, manifest 95% of 100" {
		t.Fatalf("String: %q", s)
	}
	before := ReadCacheStats{"ring": {0, 40}, "range": {10, 10}, "manifest": {95, 5}}
	if s := got.Sub(before).String(); s != "range 100% of 20" {
		t.Fatalf("Sub: %q (tiers nothing looked up are left out)", s)
	}

	// Two nodes' registries are summed.
	regs := make([]prometheus.Gatherer, 2)
	for i := range regs {
		r := prometheus.NewRegistry()
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricReadCacheHits}, []string{"tier"})
		c.WithLabelValues("manifest").Add(float64(i + 1))
		r.MustRegister(c)
		regs[i] = r
	}
	if got, err := ReadCacheStatsFrom(regs...); err != nil || got["manifest"].Hits != 3 {
		t.Fatalf("ReadCacheStatsFrom: %+v, %v", got, err)
	}
}
