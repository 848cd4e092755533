package segment

import (
	"errors"
	"os"
	"sort"

	"github.com/streamline-dev/streamline/shared/recbatch"
)

// OffsetForTimestamp implements ListOffsets by timestamp: the earliest
// offset whose record timestamp is >= ts, and that timestamp. found is false
// if no record is that late. The segment is picked by its largest
// timestamp, the scan start by the time index, and the answer has record
// precision: the first batch whose MaxTimestamp is >= ts is decoded
// (decompressing if needed) to find the record.
//
// If that batch's records cannot be decoded the answer falls back to the
// batch's base offset and MaxTimestamp: a consumer starting there misses
// nothing, whereas an error would fail every lookup for this time forever.
//
// Records below StartOffset are never an answer, even when their segment
// or batch is still on disk (DeleteBefore moved the start into it).
func (l *Log) OffsetForTimestamp(ts int64) (offset int64, timestamp int64, found bool, err error) {
	for attempt := 0; ; attempt++ {
		offset, timestamp, found, err = l.offsetForTimestamp(ts)
		// A segment deleted by retention mid-lookup: the answer now lies in
		// the remaining segments, so look again.
		if errors.Is(err, os.ErrClosed) && attempt < 3 {
			continue
		}
		if err != nil {
			return -1, -1, false, l.readErr(err)
		}
		return offset, timestamp, found, nil
	}
}

func (l *Log) offsetForTimestamp(ts int64) (int64, int64, bool, error) {
	after := int64(-1) // base of the last segment searched
	for {
		l.mu.RLock()
		if l.closed {
			l.mu.RUnlock()
			return -1, -1, false, ErrClosed
		}
		var s *segment
		from := l.start
		for i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > after }); i < len(l.segs); i++ {
			if c := l.segs[i]; c.size > 0 && c.maxTs >= ts && c.end > from {
				s = c
				break
			}
		}
		if s == nil {
			l.mu.RUnlock()
			return -1, -1, false, nil
		}
		pos, at := lookupPosition(s.index, s.base, lookupTime(s.times, s.base, ts))
		limit := s.size
		l.mu.RUnlock()

		off, t, found, err := findTimestamp(s, pos, at, limit, ts, from)
		if err != nil || found {
			return off, t, found, err
		}
		// Only reachable if a batch header's MaxTimestamp overstates its
		// records; keep looking in later segments.
		after = s.base
	}
}

// findTimestamp scans s from pos for the first record at or after offset
// from with timestamp >= ts.
func findTimestamp(s *segment, pos, at, limit, ts, from int64) (int64, int64, bool, error) {
	hr := newHeaderReader(s.log, limit)
	defer hr.release()
	pos = hr.verify(pos, at)
	var buf []byte
	for pos < limit {
		h, err := hr.at(pos)
		if err != nil {
			return -1, -1, false, err
		}
		if h.MaxTimestamp >= ts && h.LastOffset() >= from {
			buf = growBuf(buf, h.Size())
			if _, err := s.log.ReadAt(buf, pos); err != nil {
				return -1, -1, false, err
			}
			metas, err := recbatch.RecordTimestamps(buf)
			if err != nil {
				return max(h.BaseOffset, from), h.MaxTimestamp, true, nil
			}
			for _, m := range metas {
				if m.Timestamp >= ts && h.BaseOffset+int64(m.OffsetDelta) >= from {
					return h.BaseOffset + int64(m.OffsetDelta), m.Timestamp, true, nil
				}
			}
		}
		pos += int64(h.Size())
	}
	return -1, -1, false, nil
}

// MaxTimestamp returns the largest batch timestamp in the log and the offset
// of the first record carrying it (ListOffsets -3), or -1, -1 if no batch
// has a timestamp or the log is closed.
func (l *Log) MaxTimestamp() (offset, timestamp int64) {
	for attempt := 0; ; attempt++ {
		offset, timestamp, err := l.maxTimestamp()
		// The segment was deleted by retention mid-lookup: the maximum is
		// now elsewhere.
		if errors.Is(err, os.ErrClosed) && attempt < 3 {
			continue
		}
		if err != nil {
			return -1, -1
		}
		return offset, timestamp
	}
}

func (l *Log) maxTimestamp() (offset, timestamp int64, err error) {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return -1, -1, ErrClosed
	}
	var best *segment
	for _, s := range l.segs {
		if s.maxTs >= 0 && (best == nil || s.maxTs > best.maxTs) {
			best = s
		}
	}
	if best == nil {
		l.mu.RUnlock()
		return -1, -1, nil
	}
	ts, batchOffset := best.maxTs, best.maxTsOffset
	pos, at := lookupPosition(best.index, best.base, batchOffset)
	limit := best.size
	l.mu.RUnlock()

	hr := newHeaderReader(best.log, limit)
	defer hr.release()
	pos, h, err := hr.seek(pos, at, batchOffset)
	if err != nil {
		return -1, -1, err
	}
	buf := make([]byte, h.Size())
	if _, err := best.log.ReadAt(buf, pos); err != nil {
		return -1, -1, err
	}
	// Refine to record precision. If the records cannot be decoded or none
	// carries the header's MaxTimestamp, the batch's base offset is still a
	// correct lower bound.
	if metas, err := recbatch.RecordTimestamps(buf); err == nil {
		for _, m := range metas {
			if m.Timestamp == ts {
				return h.BaseOffset + int64(m.OffsetDelta), ts, nil
			}
		}
	}
	return batchOffset, ts, nil
}

// growBuf returns b resized to n bytes, reusing its array if it can.
func growBuf(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
