package segment

import (
	"errors"
	"fmt"
	"os"
)

// TruncateTo removes the batch containing offset and every batch after it
// (Kafka's Log.truncateTo: a follower drops the suffix its leader does not
// have) and returns the new end offset, which is that batch's base offset
// (at most offset). An offset at or past EndOffset changes nothing; one at
// or below StartOffset is ErrOffsetOutOfRange (use ResetTo). The result is
// durable when it returns. A writer operation.
//
// Truncation rewrites bytes readers may hold positions of, so it is meant
// for logs nobody fetches from (followers); a reader that still reads a
// removed part gets ErrOffsetOutOfRange or short data, never bytes of a
// later append at the same position, because the log is reopened.
//
// Crash safety: segments after the one cut are removed newest first, then
// the cut segment's file is shortened and fsynced and its indexes dropped
// (Open rebuilds an active segment's indexes from the file). A crash
// part-way leaves a contiguous log ending at or after the new end; the
// caller repeats the truncation on restart (localstore records it before
// starting).
func (l *Log) TruncateTo(offset int64) (int64, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	if offset >= l.end {
		return l.end, nil
	}
	if offset <= l.start {
		return 0, fmt.Errorf("%w: cannot truncate to %d, the log starts at %d", ErrOffsetOutOfRange, offset, l.start)
	}
	s := l.segmentFor(offset)
	pos, at := lookupPosition(s.index, s.base, offset)
	pos, h, err := newHeaderReader(s.log, s.size).seek(pos, at, offset)
	if err != nil {
		return 0, err
	}
	newEnd := h.BaseOffset
	var later []*segment
	for _, other := range l.segs {
		if other.base > s.base {
			later = append(later, other)
		}
	}
	if err := l.closeAllForRewrite(); err != nil {
		return 0, err
	}
	for i := len(later) - 1; i >= 0; i-- {
		if err := removeSegmentFiles(l.dir, later[i].base); err != nil {
			return 0, err
		}
	}
	if err := truncateFile(segmentPath(l.dir, s.base, logSuffix), pos); err != nil {
		return 0, err
	}
	for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
		if err := os.Remove(segmentPath(l.dir, s.base, suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, err
		}
	}
	if err := syncDir(l.dir); err != nil {
		return 0, err
	}
	if err := l.reopen(); err != nil {
		return 0, err
	}
	if l.end != newEnd {
		return 0, fmt.Errorf("%w: truncated to %d, the log now ends at %d", ErrCorrupt, newEnd, l.end)
	}
	return newEnd, nil
}

// ResetTo empties the log and makes offset its start and end (Kafka's
// truncateFullyAndStartAt: a follower whose log ends before its leader's
// log start, or diverges before its own start, starts over there). A
// crash part-way leaves the
// old log, an empty one at 0 (the caller repeats the reset) or the empty
// one at offset. A writer operation.
func (l *Log) ResetTo(offset int64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if offset < 0 {
		return fmt.Errorf("%w: cannot reset to %d", ErrOffsetOutOfRange, offset)
	}
	bases := make([]int64, 0, len(l.segs))
	for _, s := range l.segs {
		bases = append(bases, s.base)
	}
	if err := l.closeAllForRewrite(); err != nil {
		return err
	}
	// Old segments go first (one of them may have the new one's name); a
	// crash before the new one exists leaves an empty directory, which
	// Open reads as an empty log at 0: the caller's recorded reset runs
	// again on restart.
	for _, base := range bases {
		if err := removeSegmentFiles(l.dir, base); err != nil {
			return err
		}
	}
	if err := writeLogStart(l.dir, offset); err != nil {
		return err
	}
	s, err := createSegment(l.dir, offset)
	if err != nil {
		return err
	}
	if err := errors.Join(s.sync(), s.close(), syncDir(l.dir)); err != nil {
		return err
	}
	return l.reopen()
}

// closeAllForRewrite fsyncs and closes every segment before a rewrite of
// the directory; the log is reopened afterwards (reopen).
func (l *Log) closeAllForRewrite() error {
	err := l.active().sync()
	l.mu.Lock()
	segs := l.segs
	l.mu.Unlock()
	for _, s := range segs {
		err = errors.Join(err, s.close())
	}
	return err
}

// reopen loads the directory again after a rewrite and takes its state;
// on failure the log is closed (its files are as the rewrite left them,
// for the next Open).
func (l *Log) reopen() error {
	fresh, err := open(l.dir, l.cfg)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.closed = true
		return err
	}
	l.segs, l.start, l.end, l.size = fresh.segs, fresh.start, fresh.end, fresh.size
	return nil
}

func removeSegmentFiles(dir string, base int64) error {
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		if err := os.Remove(segmentPath(dir, base, suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func truncateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}
