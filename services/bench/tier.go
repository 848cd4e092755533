package bench

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The hybrid upload counters of the log service (package hybridstore).
const (
	metricTierSegments = "streamline_logsvc_tier_uploaded_segments_total"
	metricTierBytes    = "streamline_logsvc_tier_uploaded_bytes_total"
	metricTierFailures = "streamline_logsvc_tier_upload_failures_total"
)

// TierStats are the hybrid-topic upload counters of a server: rolled
// local segments uploaded to the object tier and committed, the bytes of
// batches in them, and failed attempts (retried).
type TierStats struct {
	Segments, Bytes, Failures float64
}

// Sub is the difference of two snapshots (what happened between them).
func (t TierStats) Sub(before TierStats) TierStats {
	return TierStats{t.Segments - before.Segments, t.Bytes - before.Bytes, t.Failures - before.Failures}
}

// String is a one-line summary ("12 segments, 11.8 MiB uploaded").
func (t TierStats) String() string {
	s := fmt.Sprintf("%.0f segments, %.1f MiB uploaded", t.Segments, t.Bytes/(1<<20))
	if t.Failures > 0 {
		s += fmt.Sprintf(", %.0f upload failures", t.Failures)
	}
	return s
}

// TierStatsFrom sums the counters over the registries of in-process
// servers (one per log-service node).
func TierStatsFrom(gs ...prometheus.Gatherer) (TierStats, error) {
	mfs, err := gather(gs...)
	if err != nil {
		return TierStats{}, err
	}
	return tierStats(mfs), nil
}

// TierStatsURL reads the counters from a server's Prometheus endpoint
// (e.g. http://127.0.0.1:9094/metrics).
func TierStatsURL(ctx context.Context, url string) (TierStats, error) {
	mfs, err := scrape(ctx, url)
	if err != nil {
		return TierStats{}, err
	}
	return tierStats(mfs), nil
}

func parseTierStats(r io.Reader) (TierStats, error) {
	mfs, err := parseMetrics(r)
	if err != nil {
		return TierStats{}, err
	}
	return tierStats(mfs), nil
}

// gather is the metric families of every registry, one after another
// (counters are summed by their readers).
func gather(gs ...prometheus.Gatherer) ([]*dto.MetricFamily, error) {
	var all []*dto.MetricFamily
	for _, g := range gs {
		mfs, err := g.Gather()
		if err != nil {
			return nil, err
		}
		all = append(all, mfs...)
	}
	return all, nil
}

// scrape reads the metric families of a Prometheus text endpoint.
func scrape(ctx context.Context, url string) ([]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body)
}

func parseMetrics(r io.Reader) ([]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	byName, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	mfs := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		mfs = append(mfs, mf)
	}
	return mfs, nil
}

// value is a counter's (or an untyped sample's) value.
func value(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetUntyped().GetValue()
}

func tierStats(mfs []*dto.MetricFamily) TierStats {
	var t TierStats
	for _, mf := range mfs {
		var dst *float64
		switch mf.GetName() {
		case metricTierSegments:
			dst = &t.Segments
		case metricTierBytes:
			dst = &t.Bytes
		case metricTierFailures:
			dst = &t.Failures
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			*dst += value(m)
		}
	}
	return t
}

// DirBytes is the size of the regular files under dir (0 if it does not
// exist): what an in-process server keeps on its disk.
func DirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // removed while walking (retention, compaction of the WAL)
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
