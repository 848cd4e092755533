package partition

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
)

// ReadResult is one partition's part of a fetch.
type ReadResult struct {
	Err            *kerr.Error
	Message        string
	Records        []byte
	HighWatermark  int64
	LogStartOffset int64
	// LastStableOffset is the partition's LSO (reported at both isolation
	// levels, as Kafka does).
	LastStableOffset int64
	// AbortedTransactions (ReadCommitted only) are the aborted
	// transactions whose records may be in Records: first offset below
	// the end of Records, abort marker at or after the fetch offset; in
	// first-offset order.
	AbortedTransactions []AbortedTxn
}

// Isolation is a fetch's or ListOffsets' isolation level (Kafka's
// isolation_level).
type Isolation int8

const (
	// ReadUncommitted reads up to the high watermark.
	ReadUncommitted Isolation = 0
	// ReadCommitted reads up to the last stable offset and is told the
	// aborted transactions in what it read.
	ReadCommitted Isolation = 1
)

// Read returns whole batches from offset, none beyond the high watermark
// (read_uncommitted). An offset below the log start or beyond the log end
// is OFFSET_OUT_OF_RANGE, so the client applies its auto.offset.reset.
func (p *Partition) Read(offset int64, maxBytes int, minOne bool) ReadResult {
	return p.ReadIsolated(offset, maxBytes, minOne, ReadUncommitted)
}

// ReadIsolated is Read at an isolation level: ReadCommitted returns no
// batch at or beyond the last stable offset, and the aborted transactions
// overlapping what it returns.
func (p *Partition) ReadIsolated(offset int64, maxBytes int, minOne bool, iso Isolation) ReadResult {
	hwm := p.hwm.Load()
	lso := p.lsoAt(hwm)
	start := p.log.StartOffset()
	res := ReadResult{HighWatermark: hwm, LogStartOffset: start, LastStableOffset: lso}
	p.mu.Lock()
	leo := p.nextOffset
	p.mu.Unlock()
	if offset < start || offset > leo {
		res.Err = kerr.OffsetOutOfRange
		res.Message = fmt.Sprintf("offset %d is outside the log [%d, %d]", offset, start, leo)
		return res
	}
	limit := hwm
	if iso == ReadCommitted {
		limit = lso
	}
	if offset >= limit {
		return res
	}
	b, err := p.log.Read(offset, maxBytes, limit, minOne)
	switch {
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		// Retention removed it between the check and the read.
		res.Err, res.Message = kerr.OffsetOutOfRange, err.Error()
	case err != nil:
		res.Err, res.Message = kerr.KafkaStorageError, err.Error()
	}
	res.Records = b
	if iso == ReadCommitted && len(b) > 0 {
		res.AbortedTransactions = p.abortedIn(offset, func() int64 { return endOf(b, limit) })
	}
	return res
}

// endOf is the offset after the last whole batch in b (read from a log
// bounded by limit; limit if b does not parse, which a log never returns).
func endOf(b []byte, limit int64) int64 {
	end := limit
	if _, err := recbatch.Iterate(b, false, func(h recbatch.Header, _ []byte) error {
		end = h.NextOffset()
		return nil
	}); err != nil {
		return limit
	}
	return end
}

// Special ListOffsets timestamps.
const (
	LatestTimestamp   = -1
	EarliestTimestamp = -2
)

// ListOffset resolves a ListOffsets lookup: latest (the high watermark),
// earliest (the log start) or the first offset at or after a timestamp
// (offset -1 and timestamp -1 when there is none).
func (p *Partition) ListOffset(ts int64) (offset, timestamp int64, kerrCode *kerr.Error, msg string) {
	return p.ListOffsetIsolated(ts, ReadUncommitted)
}

// ListOffsetIsolated is ListOffset at an isolation level: with
// ReadCommitted, latest is the last stable offset and a timestamp lookup
// answers only offsets below it (Kafka's lastFetchableOffset).
func (p *Partition) ListOffsetIsolated(ts int64, iso Isolation) (offset, timestamp int64, kerrCode *kerr.Error, msg string) {
	limit := p.hwm.Load()
	if iso == ReadCommitted {
		limit = p.lsoAt(limit)
	}
	switch {
	case ts == LatestTimestamp:
		return limit, -1, nil, ""
	case ts == EarliestTimestamp:
		return p.log.StartOffset(), -1, nil, ""
	case ts < 0:
		return -1, -1, kerr.InvalidRequest, fmt.Sprintf("unsupported special timestamp %d", ts)
	}
	o, t, found, err := p.log.OffsetForTimestamp(ts)
	if err != nil {
		return -1, -1, kerr.KafkaStorageError, err.Error()
	}
	if !found || o >= limit {
		return -1, -1, nil, ""
	}
	return o, t, nil, ""
}

// ApplyRetention enforces the topic's retention.ms and retention.bytes
// (their values as of the last Reconfigure), and forgets the aborted
// transactions wholly below the new log start.
func (p *Partition) ApplyRetention() error {
	t := p.Topic()
	err := p.log.ApplyRetention(
		t.Int64(meta.ConfigRetentionMs, p.cfg.Defaults),
		t.Int64(meta.ConfigRetentionBytes, p.cfg.Defaults),
	)
	p.trimAborted(p.log.StartOffset())
	return err
}

// DeleteRecords is Kafka's DeleteRecords on the leader: it advances the
// log start offset to offset (-1: the high watermark) and returns the new
// log start (the low watermark). An offset above the high watermark, or
// negative other than -1, is OFFSET_OUT_OF_RANGE; one at or below the log
// start changes nothing. The change is made only while this node still
// leads the partition (the same check as before a produce is
// acknowledged), and is durable when it returns. Aborted transactions
// wholly below the new start are forgotten.
func (p *Partition) DeleteRecords(ctx context.Context, offset int64) (low int64, e *kerr.Error, msg string) {
	hwm := p.hwm.Load()
	if offset == -1 {
		offset = hwm
	}
	if offset < 0 || offset > hwm {
		return -1, kerr.OffsetOutOfRange, fmt.Sprintf("cannot delete records below offset %d of %s-%d: the high watermark is %d",
			offset, p.cfg.Topic.Name, p.cfg.Partition, hwm)
	}
	p.mu.Lock()
	failed, closed := p.failed, p.closed
	p.mu.Unlock()
	switch {
	case closed:
		return -1, kerr.NotLeaderForPartition, fmt.Sprintf("partition %s-%d is no longer led by this node", p.cfg.Topic.Name, p.cfg.Partition)
	case failed != nil:
		return -1, kerr.KafkaStorageError, fmt.Sprintf("partition storage failed: %v", failed)
	}
	if offset <= p.log.StartOffset() {
		return p.log.StartOffset(), nil, ""
	}
	if r, fenced := p.fence(ctx); fenced {
		return -1, r.Err, r.Message
	}
	err := p.log.DeleteRecords(offset)
	switch {
	case errors.Is(err, storage.ErrFenced):
		return -1, kerr.NotLeaderForPartition, err.Error()
	case errors.Is(err, storage.ErrClosed):
		return -1, kerr.NotLeaderForPartition, fmt.Sprintf("partition %s-%d is no longer led by this node", p.cfg.Topic.Name, p.cfg.Partition)
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		return -1, kerr.OffsetOutOfRange, err.Error()
	case err != nil:
		return -1, kerr.KafkaStorageError, err.Error()
	}
	p.trimAborted(p.log.StartOffset())
	p.lg.Info("deleted records", "log_start", p.log.StartOffset())
	return p.log.StartOffset(), nil, ""
}
