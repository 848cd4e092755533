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
	var sum TierStats
	for _, g := range gs {
		mfs, err := g.Gather()
		if err != nil {
			return TierStats{}, err
		}
		sum = sum.add(tierStats(mfs))
	}
	return sum, nil
}

// TierStatsURL reads the counters from a server's Prometheus endpoint
// (e.g. http://127.0.0.1:9094/metrics).
func TierStatsURL(ctx context.Context, url string) (TierStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return TierStats{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return TierStats{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return TierStats{}, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseTierStats(resp.Body)
}

func parseTierStats(r io.Reader) (TierStats, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	byName, err := p.TextToMetricFamilies(r)
	if err != nil {
		return TierStats{}, err
	}
	mfs := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		mfs = append(mfs, mf)
	}
	return tierStats(mfs), nil
}

func (t TierStats) add(o TierStats) TierStats {
	return TierStats{t.Segments + o.Segments, t.Bytes + o.Bytes, t.Failures + o.Failures}
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
			if c := m.GetCounter(); c != nil {
				*dst += c.GetValue()
			} else if u := m.GetUntyped(); u != nil {
				*dst += u.GetValue()
			}
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
