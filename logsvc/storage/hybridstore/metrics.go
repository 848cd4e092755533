package hybridstore

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamline-dev/streamline/shared/telemetry"
)

var (
	modeLabel = prometheus.Labels{telemetry.LabelStorageMode: telemetry.ModeHybrid}

	descUploadedSegments = telemetry.NewDesc("logsvc", "tier_uploaded_segments_total",
		"Rolled local segments of hybrid partitions uploaded to the object tier and committed.", nil, modeLabel)
	descUploadedBytes = telemetry.NewDesc("logsvc", "tier_uploaded_bytes_total",
		"Bytes of batches in the segments uploaded to the object tier.", nil, modeLabel)
	descUploadFailures = telemetry.NewDesc("logsvc", "tier_upload_failures_total",
		"Segment uploads or commits that failed and are retried (object store or uploader outages).", nil, modeLabel)
	descUploadPace = telemetry.NewDesc("logsvc", "tier_upload_pace_bytes_per_second",
		"The pace segment uploads are held to (--hybrid-upload-bytes-per-second, or the automatic pace following the node's hybrid ingest rate); 0: unlimited.", nil, modeLabel)
)

// Collector exports the upload counters, read at scrape time:
// streamline_logsvc_tier_uploaded_segments_total, _tier_uploaded_bytes_total,
// _tier_upload_failures_total and the gauge _tier_upload_pace_bytes_per_second,
// with storage_mode="hybrid".
func (e *Engine) Collector() prometheus.Collector {
	return telemetry.NewCollector(func(ch chan<- prometheus.Metric) {
		s := e.Stats()
		ch <- prometheus.MustNewConstMetric(descUploadedSegments, prometheus.CounterValue, float64(s.UploadedSegments))
		ch <- prometheus.MustNewConstMetric(descUploadedBytes, prometheus.CounterValue, float64(s.UploadedBytes))
		ch <- prometheus.MustNewConstMetric(descUploadFailures, prometheus.CounterValue, float64(s.UploadFailures))
		ch <- prometheus.MustNewConstMetric(descUploadPace, prometheus.GaugeValue, e.pace.rate())
	}, descUploadedSegments, descUploadedBytes, descUploadFailures, descUploadPace)
}
