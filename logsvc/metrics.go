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
//	streamline_logsvc_replication_bytes_total{direction,storage_mode}: batch
//	  bytes sent to followers (out) and written as a follower (in)
//	streamline_logsvc_isr_changes_total{change}: ISR shrinks and expands
//	  committed by this node's partitions
//	streamline_logsvc_under_replicated_partitions{node}: led partitions
//	  whose ISR is smaller than their replica set (scrape time)
//	streamline_logsvc_follower_lag_offsets{node}: the largest follower lag
//	  behind the leader's log end over the led partitions (scrape time)
//
// plus the diskless engine's (disklessstore.Engine.Collector).
type nodeMetrics struct {
	appendDur telemetry.ByMode[prometheus.Observer]
	replBytes *prometheus.CounterVec
	isrChange *prometheus.CounterVec
	reg       prometheus.Registerer
	added     []prometheus.Collector
}

func newNodeMetrics(reg prometheus.Registerer) *nodeMetrics {
	h := telemetry.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: telemetry.Namespace, Subsystem: "logsvc", Name: "append_duration_seconds",
		Help:    "Time from a batch's append on its partition until it is durable (local: WAL fsync; diskless: object PUT and etcd commit), by storage_mode.",
		Buckets: telemetry.LatencyBuckets,
	}, []string{telemetry.LabelStorageMode}))
	repl := telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: telemetry.Namespace, Subsystem: "logsvc", Name: "replication_bytes_total",
		Help: "Record batch bytes replicated between log-service nodes: sent to followers (direction=out) and written as a follower (direction=in), by storage_mode.",
	}, []string{"direction", telemetry.LabelStorageMode}))
	isr := telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: telemetry.Namespace, Subsystem: "logsvc", Name: "isr_changes_total",
		Help: "ISR changes committed by partitions this node leads: change=shrink (a follower fell behind or died) or expand (it caught up).",
	}, []string{"change"}))
	return &nodeMetrics{reg: reg, replBytes: repl, isrChange: isr,
		appendDur: telemetry.NewByMode(func(mode string) prometheus.Observer { return h.WithLabelValues(mode) })}
}

func (m *nodeMetrics) replicationIn(mode string, n int) {
	m.replBytes.WithLabelValues("in", mode).Add(float64(n))
}

func (m *nodeMetrics) replicationOut(mode string, n int) {
	m.replBytes.WithLabelValues("out", mode).Add(float64(n))
}

func (m *nodeMetrics) isrChanged(expanded bool) {
	if expanded {
		m.isrChange.WithLabelValues("expand").Inc()
	} else {
		m.isrChange.WithLabelValues("shrink").Inc()
	}
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
	underDesc := telemetry.NewDesc("logsvc", "under_replicated_partitions", "Partitions this node leads whose ISR is smaller than their replica set.",
		nil, prometheus.Labels{"node": node})
	lagDesc := telemetry.NewDesc("logsvc", "follower_lag_offsets", "The largest lag of a follower behind the leader's log end, in offsets, over the partitions this node leads.",
		nil, prometheus.Labels{"node": node})
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
		under, maxLag := 0, int64(0)
		l.mu.RLock()
		for _, e := range l.m {
			isr, replicas, lag := e.p.ReplicationStatus()
			if isr < replicas {
				under++
			}
			maxLag = max(maxLag, lag)
		}
		l.mu.RUnlock()
		ch <- prometheus.MustNewConstMetric(underDesc, prometheus.GaugeValue, float64(under))
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(maxLag))
	}, desc, underDesc, lagDesc)
}
