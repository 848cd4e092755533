package segment

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/streamline-dev/streamline/shared/recbatch"
)

// locate finds the segment holding offset, an index position at or before
// its batch, and the segment's size snapshot. It returns a nil segment for
// offset == EndOffset.
func (l *Log) locate(offset int64) (s *segment, pos, at, limit int64, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, 0, 0, 0, ErrClosed
	}
	if offset < l.start || offset > l.end {
		return nil, 0, 0, 0, fmt.Errorf("%w: %d is outside [%d, %d]", ErrOffsetOutOfRange, offset, l.start, l.end)
	}
	if offset == l.end {
		return nil, 0, 0, 0, nil
	}
	s = l.segmentFor(offset)
	pos, at = lookupPosition(s.index, s.base, offset)
	return s, pos, at, s.size, nil
}

// Read returns whole batches starting with the one that contains offset (a
// fetch offset inside a batch returns that batch, as Kafka does), stopping
// before a batch whose base offset is >= maxOffset (the high watermark) and
// before exceeding maxBytes. If minOne is set the first batch is returned
// even when it alone exceeds maxBytes (KIP-74). Reading at EndOffset or at
// or past maxOffset returns nothing; below StartOffset or above EndOffset
// it returns ErrOffsetOutOfRange. The result may span segments.
func (l *Log) Read(offset int64, maxBytes int, maxOffset int64, minOne bool) ([]byte, error) {
	var out []byte
	next := offset
	for {
		s, pos, at, limit, err := l.locate(next)
		if err != nil {
			if len(out) > 0 {
				// Retention or Close overtook a multi-segment read; what
				// was read is still a valid answer.
				return out, nil
			}
			return nil, err
		}
		if s == nil || next >= maxOffset {
			return out, nil
		}
		var after int64
		var full bool
		out, after, full, err = readBatches(out, s, pos, at, limit, next, maxOffset, int64(maxBytes), minOne)
		if err != nil {
			if err = l.readErr(err); len(out) > 0 && errors.Is(err, ErrOffsetOutOfRange) {
				return out, nil
			}
			return nil, err
		}
		if full || after == next {
			return out, nil
		}
		next = after
	}
}

// readBatches appends to out the batches of s from the one containing next,
// within the budget described in Read. It returns the offset after the
// last batch taken and whether it stopped for the budget or maxOffset (as
// opposed to the end of the segment).
func readBatches(out []byte, s *segment, pos, at, limit, next, maxOffset, maxBytes int64, minOne bool) ([]byte, int64, bool, error) {
	hr := newHeaderReader(s.log, limit)
	defer hr.release()
	start, h, err := hr.seek(pos, at, next)
	if err != nil {
		return out, next, false, err
	}
	end, full := start, false
	for {
		size := int64(h.Size())
		first := len(out) == 0 && end == start
		if h.BaseOffset >= maxOffset || (int64(len(out))+end-start+size > maxBytes && !(minOne && first)) {
			full = true
			break
		}
		end += size
		next = h.NextOffset()
		if end >= limit {
			break
		}
		if h, err = hr.at(end); err != nil {
			return out, next, false, err
		}
	}
	if end > start {
		if withData, ok := hr.copyRange(out, start, end); ok {
			return withData, next, full, nil
		}
		n := len(out)
		out = slices.Grow(out, int(end-start))[:n+int(end-start)]
		if _, err := s.log.ReadAt(out[n:], start); err != nil {
			return out[:n], next, false, err
		}
	}
	return out, next, full, nil
}

// ScanHeaders calls fn with the header of every batch from the one
// containing from (or from StartOffset if from is below it) to the end of
// the log, reading headers only, except for control batches: their record
// is read too, and what it says is in Header.Marker (commit or abort; the
// partition rebuilds its transactions from them). It is used to rebuild
// idempotent-producer and transaction state after a restart. Batches
// appended while it runs may or may not be included; segments deleted while
// it runs are skipped. An error from fn stops the scan and is returned as
// is.
func (l *Log) ScanHeaders(from int64, fn func(h recbatch.Header) error) error {
	next := from
	for {
		l.mu.RLock()
		if l.closed {
			l.mu.RUnlock()
			return ErrClosed
		}
		next = max(next, l.start)
		if next >= l.end {
			l.mu.RUnlock()
			return nil
		}
		s := l.segmentFor(next)
		pos, at := lookupPosition(s.index, s.base, next)
		limit := s.size
		l.mu.RUnlock()

		hr := newHeaderReader(s.log, limit)
		pos, h, err := hr.seek(pos, at, next)
		for err == nil {
			if h.Control() {
				if h.Marker, h.CoordinatorEpoch, err = hr.marker(pos, h); err != nil {
					break
				}
			}
			if ferr := fn(h); ferr != nil {
				return ferr
			}
			next = h.NextOffset()
			if pos += int64(h.Size()); pos >= limit {
				break
			}
			h, err = hr.at(pos)
		}
		hr.release()
		// A segment closed under us was deleted by retention (start has
		// moved past it) or the log was closed; either way look again.
		if err != nil && !errors.Is(err, os.ErrClosed) {
			return err
		}
	}
}
