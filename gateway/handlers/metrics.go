package handlers

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/telemetry"
)

// maxAPIKey bounds the per-key table of request series.
const maxAPIKey = 128

// Metrics are the gateway's request and data-path series. Every child is
// resolved when Metrics is built, so recording one is an atomic add.
type Metrics struct {
	requests     [maxAPIKey]prometheus.Observer // by API key; nil for keys not served
	produceDur   telemetry.ByMode[prometheus.Observer]
	produceBytes telemetry.ByMode[prometheus.Counter]
	fetchDur     telemetry.ByMode[prometheus.Observer]
	fetchBytes   telemetry.ByMode[prometheus.Counter]
}

// NewMetrics builds the handlers' metrics and registers them with reg (nil:
// kept but not exported):
//
//	streamline_gateway_request_duration_seconds{api}
//	streamline_gateway_produce_duration_seconds{storage_mode}
//	streamline_gateway_produce_bytes_total{storage_mode}
//	streamline_gateway_fetch_duration_seconds{storage_mode}
//	streamline_gateway_fetch_bytes_total{storage_mode}
func NewMetrics(reg prometheus.Registerer) *Metrics {
	hist := func(name, help string, label string) *prometheus.HistogramVec {
		return telemetry.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: telemetry.Namespace, Subsystem: "gateway", Name: name, Help: help, Buckets: telemetry.LatencyBuckets,
		}, []string{label}))
	}
	counter := func(name, help string) *prometheus.CounterVec {
		return telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: telemetry.Namespace, Subsystem: "gateway", Name: name, Help: help,
		}, []string{telemetry.LabelStorageMode}))
	}
	reqs := hist("request_duration_seconds", "Time to handle a Kafka request, by API (from the request being read until its response is ready).", "api")
	pd := hist("produce_duration_seconds", "Time to handle a Produce request until every batch of the storage mode's topics is durable, by storage_mode.", telemetry.LabelStorageMode)
	fd := hist("fetch_duration_seconds", "Time to handle a Fetch request holding partitions of the storage mode's topics, long-poll wait included, by storage_mode.", telemetry.LabelStorageMode)
	pb := counter("produce_bytes_total", "Record batch bytes received in Produce requests, by storage_mode of the topic.")
	fb := counter("fetch_bytes_total", "Record batch bytes returned in Fetch responses, by storage_mode of the topic.")
	m := &Metrics{
		produceDur:   telemetry.NewByMode(func(mode string) prometheus.Observer { return pd.WithLabelValues(mode) }),
		fetchDur:     telemetry.NewByMode(func(mode string) prometheus.Observer { return fd.WithLabelValues(mode) }),
		produceBytes: telemetry.NewByMode(func(mode string) prometheus.Counter { return pb.WithLabelValues(mode) }),
		fetchBytes:   telemetry.NewByMode(func(mode string) prometheus.Counter { return fb.WithLabelValues(mode) }),
	}
	for key := range registry {
		if key >= 0 && key < maxAPIKey {
			m.requests[key] = reqs.WithLabelValues(kmsg.NameForKey(key))
		}
	}
	return m
}

func (m *Metrics) observeRequest(key int16, began time.Time) {
	if key >= 0 && key < maxAPIKey && m.requests[key] != nil {
		m.requests[key].Observe(time.Since(began).Seconds())
	}
}

// modeIndex numbers the storage modes for perMode.
func modeIndex(mode meta.StorageMode) int {
	switch mode {
	case meta.StorageLocal:
		return 0
	case meta.StorageHybrid:
		return 1
	case meta.StorageDiskless:
		return 2
	}
	return -1
}

var modeNames = [3]string{telemetry.ModeLocal, telemetry.ModeHybrid, telemetry.ModeDiskless}

// perMode accumulates one request's bytes by storage mode (on the stack),
// recorded once at the end.
type perMode struct {
	bytes [3]int64
	seen  [3]bool
}

func (a *perMode) add(mode meta.StorageMode, n int) {
	if i := modeIndex(mode); i >= 0 {
		a.bytes[i] += int64(n)
		a.seen[i] = true
	}
}

// record observes the request's duration once per storage mode it touched
// and adds its bytes.
func (a *perMode) record(dur *telemetry.ByMode[prometheus.Observer], bytes *telemetry.ByMode[prometheus.Counter], began time.Time) {
	elapsed := time.Since(began).Seconds()
	for i, seen := range a.seen {
		if !seen {
			continue
		}
		dur.For(modeNames[i]).Observe(elapsed)
		if a.bytes[i] > 0 {
			bytes.For(modeNames[i]).Add(float64(a.bytes[i]))
		}
	}
}
