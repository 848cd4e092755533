package telemetry

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every Streamline metric name.
const Namespace = "streamline"

// LabelStorageMode is the label of data-path series: a topic's
// storage.mode (local, hybrid, diskless).
const LabelStorageMode = "storage_mode"

// Storage modes as label values (the values of meta.StorageMode).
const (
	ModeLocal    = "local"
	ModeHybrid   = "hybrid"
	ModeDiskless = "diskless"
)

// LatencyBuckets are the histogram buckets of every latency, in seconds:
// 0.5 ms (a local produce on a fast disk) to 10 s (a stuck upload).
var LatencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// NewRegistry returns a registry holding the Go runtime and process
// collectors, to which the services add their own.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Register registers c with reg and returns the collector to use: c, or
// the identical collector registered before (two services of one process,
// or two gateways of one test, share such series). With reg nil, c is
// returned unregistered: it counts, nobody scrapes it. A collector that
// clashes with a different one of the same name is a programming error
// and panics.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("telemetry: register metric: %v", err))
	}
	return c
}

// ByMode holds one label child per storage mode, resolved once, so a hot
// path picks its series with a switch instead of a label lookup (no
// allocation, no lock).
type ByMode[T any] struct {
	local, hybrid, diskless T
	get                     func(mode string) T
}

// NewByMode resolves get for every storage mode; get is called again only
// for a mode that is none of them.
func NewByMode[T any](get func(mode string) T) ByMode[T] {
	return ByMode[T]{local: get(ModeLocal), hybrid: get(ModeHybrid), diskless: get(ModeDiskless), get: get}
}

// For returns mode's child.
func (b *ByMode[T]) For(mode string) T {
	switch mode {
	case ModeLocal:
		return b.local
	case ModeDiskless:
		return b.diskless
	case ModeHybrid:
		return b.hybrid
	}
	return b.get(mode)
}

// Etcd commit operations (the op label of EtcdCommitDuration).
const (
	// OpDisklessCommit is an uploader's commit of a flush's coordinates
	// (one transaction per group of partitions).
	OpDisklessCommit = "diskless_commit"
	// OpGroupOffsets is a gateway's commit of a group's offsets.
	OpGroupOffsets = "group_offsets"
)

// EtcdCommitDuration is streamline_etcd_commit_duration_seconds{op}: the
// time of the etcd transactions the data path waits on.
func EtcdCommitDuration(reg prometheus.Registerer) *prometheus.HistogramVec {
	return Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "etcd", Name: "commit_duration_seconds",
		Help:    "Latency of etcd commit transactions the data path waits on, by op (diskless_commit: an uploader commits a flush's coordinates; group_offsets: a gateway commits a group's offsets).",
		Buckets: LatencyBuckets,
	}, []string{"op"}))
}

// NewCollector returns a collector of metrics computed at scrape time by
// reading a component's own counters (buffer stats, cache hits, group
// counts), so the component's hot path does nothing for them. collect runs
// on every scrape and sends metrics of descs only.
func NewCollector(collect func(ch chan<- prometheus.Metric), descs ...*prometheus.Desc) prometheus.Collector {
	return &scrapeCollector{descs: descs, collect: collect}
}

type scrapeCollector struct {
	descs   []*prometheus.Desc
	collect func(ch chan<- prometheus.Metric)
}

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// NewDesc describes a streamline_<subsystem>_<name> metric.
func NewDesc(subsystem, name, help string, labels []string, constLabels prometheus.Labels) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, subsystem, name), help, labels, constLabels)
}
