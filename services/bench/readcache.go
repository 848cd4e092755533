package bench

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The diskless read cache counters of the log service (package
// disklessstore), labeled by tier.
const (
	metricReadCacheHits   = "streamline_logsvc_read_cache_hits_total"
	metricReadCacheMisses = "streamline_logsvc_read_cache_misses_total"
)

// readCacheTiers is the order a diskless read tries its tiers in (the
// manifest page locates what the range cache and GETs then read).
var readCacheTiers = []string{"ring", "range", "manifest"}

// HitsMisses are one read cache tier's counters.
type HitsMisses struct{ Hits, Misses float64 }

// ReadCacheStats are a server's diskless read cache counters by tier
// (ring: recent batches; range: object ranges and flush windows;
// manifest: pages of manifest entries): how well a read behind the ring
// was served from memory.
type ReadCacheStats map[string]HitsMisses

// Sub is the difference of two snapshots (what happened between them).
func (s ReadCacheStats) Sub(before ReadCacheStats) ReadCacheStats {
	out := ReadCacheStats{}
	for tier, c := range s {
		b := before[tier]
		out[tier] = HitsMisses{c.Hits - b.Hits, c.Misses - b.Misses}
	}
	return out
}

// String is a one-line summary in read order, e.g. "ring 0% of 1200,
// range 91% of 9000, manifest 97% of 2400" (hits of lookups); tiers
// nothing looked up are left out.
func (s ReadCacheStats) String() string {
	tiers := make([]string, 0, len(s))
	for t := range s {
		tiers = append(tiers, t)
	}
	slices.SortFunc(tiers, func(a, b string) int { return cmp.Or(rank(a)-rank(b), strings.Compare(a, b)) })
	var parts []string
	for _, t := range tiers {
		c := s[t]
		if n := c.Hits + c.Misses; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f%% of %.0f", t, 100*c.Hits/n, n))
		}
	}
	return strings.Join(parts, ", ")
}

// rank orders known tiers as a read tries them, unknown ones after.
func rank(tier string) int {
	if i := slices.Index(readCacheTiers, tier); i >= 0 {
		return i
	}
	return len(readCacheTiers)
}

// ReadCacheStatsFrom sums the counters over the registries of in-process
// servers (one per log-service node).
func ReadCacheStatsFrom(gs ...prometheus.Gatherer) (ReadCacheStats, error) {
	mfs, err := gather(gs...)
	if err != nil {
		return nil, err
	}
	return readCacheStats(mfs), nil
}

// ReadCacheStatsURL reads the counters from a server's Prometheus endpoint.
func ReadCacheStatsURL(ctx context.Context, url string) (ReadCacheStats, error) {
	mfs, err := scrape(ctx, url)
	if err != nil {
		return nil, err
	}
	return readCacheStats(mfs), nil
}

func readCacheStats(mfs []*dto.MetricFamily) ReadCacheStats {
	s := ReadCacheStats{}
	for _, mf := range mfs {
		hit := mf.GetName() == metricReadCacheHits
		if !hit && mf.GetName() != metricReadCacheMisses {
			continue
		}
		for _, m := range mf.GetMetric() {
			tier := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "tier" {
					tier = lp.GetValue()
				}
			}
			c := s[tier]
			if hit {
				c.Hits += value(m)
			} else {
				c.Misses += value(m)
			}
			s[tier] = c
		}
	}
	return s
}
