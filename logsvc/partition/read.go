package partition

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamline-dev/streamline/logsvc/storage"
)

// ReadResult is one partition's part of a fetch.
type ReadResult struct {
	Err            *kerr.Error
	Message        string
	Records        []byte
	HighWatermark  int64
	LogStartOffset int64
}

// Read returns whole batches from offset, none beyond the high watermark.
// An offset below the log start or beyond the log end is
// OFFSET_OUT_OF_RANGE, so the client applies its auto.offset.reset.
func (p *Partition) Read(offset int64, maxBytes int, minOne bool) ReadResult {
	hwm := p.hwm.Load()
	start := p.log.StartOffset()
	res := ReadResult{HighWatermark: hwm, LogStartOffset: start}
	p.mu.Lock()
	leo := p.nextOffset
	p.mu.Unlock()
	if offset < start || offset > leo {
		res.Err = kerr.OffsetOutOfRange
		res.Message = fmt.Sprintf("offset %d is outside the log [%d, %d]", offset, start, leo)
		return res
	}
	if offset >= hwm {
		return res
	}
	b, err := p.log.Read(offset, maxBytes, hwm, minOne)
	switch {
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		// Retention removed it between the check and the read.
		res.Err, res.Message = kerr.OffsetOutOfRange, err.Error()
	case err != nil:
		res.Err, res.Message = kerr.KafkaStorageError, err.Error()
	}
	res.Records = b
	return res
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
	switch {
	case ts == LatestTimestamp:
		return p.hwm.Load(), -1, nil, ""
	case ts == EarliestTimestamp:
		return p.log.StartOffset(), -1, nil, ""
	case ts < 0:
		return -1, -1, kerr.InvalidRequest, fmt.Sprintf("unsupported special timestamp %d", ts)
	}
	o, t, found, err := p.log.OffsetForTimestamp(ts)
	if err != nil {
		return -1, -1, kerr.KafkaStorageError, err.Error()
	}
	if !found || o >= p.hwm.Load() {
		return -1, -1, nil, ""
	}
	return o, t, nil, ""
}

// ApplyRetention enforces the topic's retention.ms and retention.bytes.
func (p *Partition) ApplyRetention() error {
	t := p.cfg.Topic
	return p.log.ApplyRetention(
		t.Int64("retention.ms", p.cfg.Defaults),
		t.Int64("retention.bytes", p.cfg.Defaults),
	)
}
