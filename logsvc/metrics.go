package logsvc

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/telemetry"
)

// nodeMetrics are the node's series:
//
//	streamline_logsvc_append_duration_seconds{storage_mode}: from a batch's
//	  append until it is durable (local: WAL fsync; diskless: PUT + commit)
//	streamline_logsvc_partitions_led{node,storage_mode}: read at scrape time
//
// plus the diskless engine's (disklessstore.Engine.Collector).
type nodeMetrics struct {
	appendDur telemetry.ByMode[prometheus.Observer]
	reg       prometheus.Registerer
	added     []prometheus.Collector
}

func newNodeMetrics(reg prometheus.Registerer) *nodeMetrics {
	h := telemetry.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: telemetry.Namespace, Subsystem: "logsvc", Name: "append_duration_seconds",
		Help:    "Time from a batch's append on its partition until it is durable (local: WAL fsync; diskless: object PUT and etcd commit), by storage_mode.",
		Buckets: telemetry.LatencyBuckets,
	}, []string{telemetry.LabelStorageMode}))
	return &nodeMetrics{reg: reg, appendDur: telemetry.NewByMode(func(mode string) prometheus.Observer { return h.WithLabelValues(mode) })}
}

// add registers a collector of this node until close; one that another
// node of the process registered already (same series) is skipped.
func (m *nodeMetrics) add(c prometheus.Collector) {
	if m.reg == nil || m.reg.Register(c) != nil {
		return
	}
	m.added = append(m.added, c)
}

func (m *nodeMetrics) close() {
	for _, c := range m.added {
		m.reg.Unregister(c)
	}
	m.added = nil
}

// ledCollector counts the partitions the node leads, by storage mode.
func (l *leader) collector(node string) prometheus.Collector {
	desc := telemetry.NewDesc("logsvc", "partitions_led", "Partitions this log-service node leads, by storage_mode of their topic.",
		[]string{telemetry.LabelStorageMode}, prometheus.Labels{"node": node})
	return telemetry.NewCollector(func(ch chan<- prometheus.Metric) {
		counts := map[meta.StorageMode]int{meta.StorageLocal: 0, meta.StorageDiskless: 0}
		l.mu.RLock()
		for _, e := range l.m {
			counts[e.p.Topic().StorageMode]++
		}
		l.mu.RUnlock()
		for mode, n := range counts {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(n), string(mode))
		}
	}, desc)
}
