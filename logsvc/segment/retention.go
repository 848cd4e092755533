package segment

import (
	"errors"
	"slices"
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
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return 0, ErrClosed
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
	if n == 0 {
		return 0, nil
	}
	if n == len(segs) {
		if err := l.roll(); err != nil {
			return 0, err
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
	// Oldest first, so a crash part-way leaves a contiguous log.
	for _, s := range doomed {
		err = errors.Join(err, s.remove())
	}
	return n, errors.Join(err, syncDir(l.dir))
}
