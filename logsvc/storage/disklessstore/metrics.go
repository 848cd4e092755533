package disklessstore

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamline-dev/streamline/shared/telemetry"
)

var (
	modeLabel = prometheus.Labels{telemetry.LabelStorageMode: telemetry.ModeDiskless}

	descBufferBytes = telemetry.NewDesc("logsvc", "buffer_bytes",
		"Bytes held by the diskless batching buffer: pending, uploading and awaiting commit (bounded by the buffer's memory limit).", nil, modeLabel)
	descBufferPending = telemetry.NewDesc("logsvc", "buffer_pending_bytes",
		"Bytes in the diskless buffer not cut into a flush yet.", nil, modeLabel)
	descBufferUploads = telemetry.NewDesc("logsvc", "buffer_uploads_in_flight",
		"Flushes of the diskless buffer being uploaded now.", nil, modeLabel)
	descBufferBlocked = telemetry.NewDesc("logsvc", "buffer_blocked_appends",
		"Appends blocked now because the diskless buffer is full (backpressure).", nil, modeLabel)
	descFlushes = telemetry.NewDesc("logsvc", "buffer_flushes_total",
		"Flushes cut by the diskless buffer (one object each).", nil, modeLabel)
	descFlushedBytes = telemetry.NewDesc("logsvc", "buffer_flushed_bytes_total",
		"Bytes in the flushes cut by the diskless buffer.", nil, modeLabel)
	descOverflows = telemetry.NewDesc("logsvc", "buffer_overflows_total",
		"Appends that found the diskless buffer full and had to wait for memory (backpressure events).", nil, modeLabel)
	descOverflowGaveUp = telemetry.NewDesc("logsvc", "buffer_overflow_timeouts_total",
		"Appends that gave up waiting for memory in the diskless buffer.", nil, modeLabel)
	descFailedBatches = telemetry.NewDesc("logsvc", "buffer_failed_batches_total",
		"Batches of the diskless buffer that failed (upload or commit error, fenced, closed).", nil, modeLabel)
	descCacheHits = telemetry.NewDesc("logsvc", "read_cache_hits_total",
		"Diskless reads answered from memory, by tier (ring: recent committed batches; range: the LRU of object ranges and flush object windows; manifest: a partition's cached page of manifest entries).", []string{"tier"}, modeLabel)
	descCacheMisses = telemetry.NewDesc("logsvc", "read_cache_misses_total",
		"Diskless reads a tier could not answer, by tier (a range miss is a GET of an object range or of the flush object window holding it; a manifest miss reads a page of entries from etcd).", []string{"tier"}, modeLabel)
	descIdleFlushes = telemetry.NewDesc("logsvc", "buffer_idle_flushes_total",
		"Flushes the diskless buffer cut before the batch timeout because appends stopped (--diskless-idle-flush).", nil, modeLabel)
	descEagerFlushes = telemetry.NewDesc("logsvc", "buffer_eager_flushes_total",
		"Flushes the diskless buffer cut before the batch timeout because no upload was running (--diskless-eager-flush).", nil, modeLabel)
	descPartialCommits = telemetry.NewDesc("logsvc", "buffer_partial_commits_total",
		"Commits of part of a diskless flush's partitions: those whose earlier flushes were committed while another partition's earlier flush was still uploading.", nil, modeLabel)
	descHedged = telemetry.NewDesc("logsvc", "hedged_uploads_total",
		"Diskless uploads hedged: uploaded again through another uploader because the first ran past the recent p90.", nil, modeLabel)
)

// Collector exports the engine's counters, read at scrape time (the data
// path only counts, as it did before):
//
//	streamline_logsvc_buffer_bytes, _buffer_pending_bytes,
//	_buffer_uploads_in_flight, _buffer_blocked_appends (gauges)
//	streamline_logsvc_buffer_flushes_total, _buffer_idle_flushes_total,
//	_buffer_eager_flushes_total, _buffer_flushed_bytes_total,
//	_buffer_overflows_total, _buffer_overflow_timeouts_total,
//	_buffer_failed_batches_total, _buffer_partial_commits_total
//	streamline_logsvc_read_cache_hits_total{tier}, _read_cache_misses_total{tier}
//	streamline_logsvc_hedged_uploads_total
//
// all with storage_mode="diskless".
func (e *Engine) Collector() prometheus.Collector {
	return telemetry.NewCollector(func(ch chan<- prometheus.Metric) {
		s := e.buf.Stats()
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
		}
		counter := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
		}
		gauge(descBufferBytes, float64(s.BufferedBytes))
		gauge(descBufferPending, float64(s.PendingBytes))
		gauge(descBufferUploads, float64(s.Uploading))
		gauge(descBufferBlocked, float64(s.Waiting))
		counter(descFlushes, float64(s.Flushes))
		counter(descIdleFlushes, float64(s.IdleFlushes))
		counter(descEagerFlushes, float64(s.EagerFlushes))
		counter(descFlushedBytes, float64(s.FlushedBytes))
		counter(descOverflows, float64(s.OverflowWaits))
		counter(descOverflowGaveUp, float64(s.OverflowGaveUp))
		counter(descFailedBatches, float64(s.FailedItems))
		counter(descPartialCommits, float64(s.PartialCommits))
		hits, misses := e.cache.stats()
		counter(descCacheHits, float64(e.ringHits.Load()), "ring")
		counter(descCacheMisses, float64(e.ringMisses.Load()), "ring")
		counter(descCacheHits, float64(hits), "range")
		counter(descCacheMisses, float64(misses), "range")
		counter(descCacheHits, float64(e.manifestHits.Load()), "manifest")
		counter(descCacheMisses, float64(e.manifestMisses.Load()), "manifest")
		counter(descHedged, float64(e.HedgedUploads()))
	}, descBufferBytes, descBufferPending, descBufferUploads, descBufferBlocked, descFlushes, descIdleFlushes, descEagerFlushes, descFlushedBytes,
		descOverflows, descOverflowGaveUp, descFailedBatches, descPartialCommits, descCacheHits, descCacheMisses, descHedged)
}
