package segment

import (
	"errors"
	"math"
	"slices"
	"sort"
)

// ApplyRetention deletes old segments with Kafka's semantics; -1 disables a
// limit. retentionMs deletes segments whose largest timestamp is more than
// retentionMs before now; retentionBytes deletes the oldest segments while
// the log would still hold at least retentionBytes without them. Only whole
// segments are deleted and only from the front, stopping at the first one
// that must stay, so StartOffset moves to the base of the first remaining
// segment. If the active segment has to go too it is rolled first: the new,
// empty active segment is named by the end offset, so the log keeps
// StartOffset == EndOffset == the old end across restarts.
//
// Like Kafka this does not know the high watermark; callers that must not
// delete unreplicated data should not call it with limits that would.
func (l *Log) ApplyRetention(retentionMs, retentionBytes int64) (deleted int, err error) {
	return l.ApplyRetentionBelow(retentionMs, retentionBytes, math.MaxInt64)
}

// ApplyRetentionBelow is ApplyRetention that never deletes a segment
// holding an offset at or above ceiling: hybrid topics delete their local
// copies only below what the object tier has committed. The byte limit
// still counts every segment, so the local copy shrinks to the limit as
// the tier catches up.
func (l *Log) ApplyRetentionBelow(retentionMs, retentionBytes, ceiling int64) (deleted int, err error) {
	// Retention passes run one at a time (rmu), so files are always
	// retired oldest first and a crash leaves a contiguous log; the
	// writer lock is held only to detach the segments, so appends do not
	// wait for the file removals and the directory fsync.
	l.rmu.Lock()
	defer l.rmu.Unlock()
	doomed, err := l.detachExpired(retentionMs, retentionBytes, ceiling)
	if err != nil || len(doomed) == 0 {
		return 0, err
	}
	// Retired (renamed) at once, given back a step at a time here: the
	// pass runs in the background, one at a time.
	trash, err := retireAll(l.dir, doomed)
	return len(doomed), errors.Join(err, giveBack(trash))
}

// detachExpired takes the segments retention deletes out of the log (the
// start moves past them) and returns them for removal.
func (l *Log) detachExpired(retentionMs, retentionBytes, ceiling int64) ([]*segment, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	// The writer may read segment state without mu: only it changes it.
	segs := l.segs
	n := 0
	if retentionMs >= 0 {
		now := l.cfg.Now().UnixMilli()
		for n < len(segs) && segs[n].size > 0 && now-segs[n].largestTimestamp() > retentionMs {
			n++
		}
	}
	if retentionBytes >= 0 {
		remaining := l.size
		for _, s := range segs[:n] {
			remaining -= s.size
		}
		for n < len(segs) && segs[n].size > 0 && remaining-segs[n].size >= retentionBytes {
			remaining -= segs[n].size
			n++
		}
	}
	for n > 0 && segmentEnd(segs, n-1, l.end) > ceiling {
		n--
	}
	if n == 0 {
		return nil, nil
	}
	if n == len(segs) {
		if err := l.roll(); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	doomed := slices.Clone(l.segs[:n])
	l.segs = slices.Clone(l.segs[n:])
	l.start = max(l.start, l.segs[0].base) // DeleteBefore may have moved it into the first segment
	for _, s := range doomed {
		l.size -= s.size
	}
	l.mu.Unlock()
	return doomed, nil
}

// segmentEnd is the offset after segs[i]'s last batch: the next segment's
// base, or the log end for the active one. The writer calls it.
func segmentEnd(segs []*segment, i int, logEnd int64) int64 {
	if i+1 < len(segs) {
		return segs[i+1].base
	}
	return logEnd
}

// SealedEnd is the first offset of the active segment: every batch below
// it is in a rolled segment, which no longer changes.
func (l *Log) SealedEnd() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.active().base
}

// SegmentEndAfter is the end of the segment holding offset (the next
// segment's base; the log end for the active segment), for uploading one
// rolled segment at a time.
func (l *Log) SegmentEndAfter(offset int64) int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset })
	if i >= len(l.segs) {
		return l.end
	}
	return l.segs[i].base
}

// BytesFrom is the size of the segments holding offsets at or above
// offset: what a hybrid partition holds locally that its object tier does
// not have yet when offset is the tier's end.
func (l *Log) BytesFrom(offset int64) int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for i, s := range l.segs {
		if segmentEnd(l.segs, i, l.end) > offset {
			n += s.size
		}
	}
	return n
}
