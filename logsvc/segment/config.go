package segment

import (
	"errors"
	"math"
	"time"
)

// Config controls rolling and indexing. Zero fields take the defaults.
type Config struct {
	// SegmentBytes rolls the active segment when the next batch would take it
	// past this size (Kafka segment.bytes). Default 1 GiB; capped at
	// math.MaxInt32 because index positions are 32-bit.
	SegmentBytes int64
	// SegmentAge rolls the active segment when its first batch was appended
	// longer ago than this (Kafka segment.ms). Default 7 days.
	SegmentAge time.Duration
	// IndexIntervalBytes is the minimum number of bytes between offset index
	// entries (Kafka index.interval.bytes). Default 4096.
	IndexIntervalBytes int
	// WritebackBytes starts the kernel's writeback of the active segment
	// each time this many bytes were appended since the last start (Linux
	// sync_file_range SYNC_FILE_RANGE_WRITE; elsewhere nothing), as
	// RocksDB's bytes_per_sync does. Without it a fast producer leaves
	// gigabytes dirty in the page cache (up to vm.dirty_ratio) until the
	// checkpoint's fsync, a roll's fsync or the kernel's flusher writes
	// them in one burst, and the WAL's writes queue behind that burst at
	// the device. Default 1 MiB; negative: off.
	WritebackBytes int64
	// Now is the clock; default time.Now. Tests inject a fake one.
	Now func() time.Time
}

// Defaults.
const (
	DefaultSegmentBytes       = 1 << 30
	DefaultSegmentAge         = 7 * 24 * time.Hour
	DefaultIndexIntervalBytes = 4096
	DefaultWritebackBytes     = 1 << 20
)

func (c Config) withDefaults() Config {
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	c.SegmentBytes = min(c.SegmentBytes, math.MaxInt32)
	if c.SegmentAge <= 0 {
		c.SegmentAge = DefaultSegmentAge
	}
	if c.IndexIntervalBytes <= 0 {
		c.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if c.WritebackBytes == 0 {
		c.WritebackBytes = DefaultWritebackBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

var (
	// ErrOffsetMismatch means an appended batch does not start at EndOffset.
	ErrOffsetMismatch = errors.New("segment: batch base offset does not match the log end offset")
	// ErrOffsetOutOfRange means the offset is below StartOffset or above
	// EndOffset (Kafka OFFSET_OUT_OF_RANGE).
	ErrOffsetOutOfRange = errors.New("segment: offset out of range")
	// ErrClosed means the log was closed.
	ErrClosed = errors.New("segment: log is closed")
	// ErrCorrupt means data that must be intact (an older segment, or the
	// chain of segment offsets) is not; Open refuses to start on it.
	ErrCorrupt = errors.New("segment: corrupt log")
)
