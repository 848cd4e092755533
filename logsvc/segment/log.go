package segment

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/streamline-dev/streamline/shared/recbatch"
)

// Log is one partition's log. Append, Roll, ApplyRetention, Close and
// Remove are writer operations: they are serialized by wmu and meant to be
// called from one goroutine. Sync may be called from any goroutine. Read, OffsetForTimestamp, MaxTimestamp,
// ScanHeaders and the offset/size getters may run concurrently with them.
//
// Readers hold mu only to find segments and snapshot sizes and index
// positions, then read the files with ReadAt without the lock. Bytes below
// a snapshot size never change (appends only extend files; truncation
// happens only in Open), so those reads need no lock. A segment deleted by
// retention is closed; a reader still using it gets os.ErrClosed from
// ReadAt (os.File makes that safe), which is reported as
// ErrOffsetOutOfRange since the data is now below the log start.
type Log struct {
	dir string
	cfg Config

	wmu sync.Mutex // serializes writer operations
	rmu sync.Mutex // serializes retention passes (taken before wmu)

	mu     sync.RWMutex
	segs   []*segment // ascending base offsets; the last is active
	start  int64
	end    int64
	size   int64
	closed bool
}

// active returns the active segment. Callers hold mu or are the writer.
func (l *Log) active() *segment { return l.segs[len(l.segs)-1] }

// segmentFor returns the segment holding offset, which must be in
// [start, end]. Callers hold mu.
func (l *Log) segmentFor(offset int64) *segment {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset })
	return l.segs[max(i-1, 0)]
}

// StartOffset is the first retained offset (Kafka log start offset).
func (l *Log) StartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.start
}

// EndOffset is the offset the next appended batch must start at (Kafka log
// end offset).
func (l *Log) EndOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.end
}

// Size is the total size of the segment files in bytes, indexes excluded.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.size
}

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// Append writes one batch at the end of the log, rolling to a new segment
// first if the active one is full or old. The batch must be exactly one v2
// batch whose baseOffset equals EndOffset(). Its CRC is checked again: a
// batch that recovery would reject must not be accepted in the first place,
// or everything appended after it would be cut off at the next restart.
func (l *Log) Append(batch []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return ErrClosed
	}
	h, err := recbatch.Validate(batch)
	if err != nil {
		return err
	}
	if h.Size() != len(batch) {
		return fmt.Errorf("%w: %d bytes after the batch", recbatch.ErrInvalid, len(batch)-h.Size())
	}
	if h.BaseOffset != l.end {
		return fmt.Errorf("%w: batch starts at %d, log ends at %d", ErrOffsetMismatch, h.BaseOffset, l.end)
	}
	now := l.cfg.Now()
	if l.shouldRoll(h, now) {
		if err := l.roll(); err != nil {
			return err
		}
	}
	s := l.active()
	pos := s.size
	if _, err := s.log.WriteAt(batch, pos); err != nil {
		// Drop a partial write so the next append starts clean; if even that
		// fails, recovery will cut it off at the next Open.
		_ = s.log.Truncate(pos)
		return err
	}
	if pos == 0 {
		s.firstAppend = now
	}
	if end := pos + int64(len(batch)); l.cfg.WritebackBytes > 0 && end-s.writtenBack >= l.cfg.WritebackBytes {
		startWriteback(s.log, s.writtenBack, end-s.writtenBack)
		s.writtenBack = end
	}
	l.mu.Lock()
	s.addBatch(h, pos, l.cfg.IndexIntervalBytes)
	l.end = s.end
	l.size += int64(len(batch))
	l.mu.Unlock()
	return nil
}

// shouldRoll reports whether the batch must go to a new segment. An empty
// segment is never rolled, so every rolled segment holds at least one batch.
func (l *Log) shouldRoll(h recbatch.Header, now time.Time) bool {
	s := l.active()
	if s.size == 0 {
		return false
	}
	return s.size+int64(h.Size()) > l.cfg.SegmentBytes ||
		now.Sub(s.firstAppend) > l.cfg.SegmentAge ||
		h.LastOffset()-s.base > math.MaxInt32 // relative offsets are 32-bit
}

// Roll closes the active segment (if it holds any batch) and starts a new
// one at EndOffset.
func (l *Log) Roll() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return l.roll()
}

// roll makes the active segment durable before the next one exists, which
// is what lets recovery assume only the last segment can be torn.
func (l *Log) roll() error {
	old := l.active()
	if old.size == 0 {
		return nil
	}
	l.mu.Lock()
	old.maybeAppendTime() // the final entry carries the segment's max timestamp
	l.mu.Unlock()
	if err := old.sync(); err != nil {
		return err
	}
	s, err := createSegment(l.dir, old.end)
	if err != nil {
		return err
	}
	if err := syncDir(l.dir); err != nil {
		s.remove()
		return err
	}
	// Not fatal: the indexes are synced and no longer written.
	_ = old.closeIndexFiles()
	l.mu.Lock()
	l.segs = append(l.segs, s)
	l.mu.Unlock()
	return nil
}

// syncFile is (*os.File).Sync; tests replace it to hold a Sync midway.
var syncFile = (*os.File).Sync

// Sync makes every batch appended before the call durable: it flushes the
// active segment's indexes and fsyncs its files. Only the index flush holds
// the writer lock; the fsyncs run beside later appends, so a checkpoint's
// fsync of many megabytes never stalls the write path. A file closed
// meanwhile was synced by whoever closed it (a roll or Close) or deleted
// with its segment (retention, truncation): either way nothing is owed.
func (l *Log) Sync() error {
	l.wmu.Lock()
	if l.closed {
		l.wmu.Unlock()
		return ErrClosed
	}
	s := l.active()
	if err := s.flushIndexes(); err != nil {
		l.wmu.Unlock()
		return err
	}
	files := []*os.File{s.log}
	if s.idxFile != nil {
		files = append(files, s.idxFile, s.timeFile)
	}
	l.wmu.Unlock()
	for _, f := range files {
		if err := syncFile(f); err != nil && !errors.Is(err, os.ErrClosed) {
			return err
		}
	}
	return nil
}

// Close syncs and closes the log. It is idempotent. Concurrent readers get
// ErrClosed.
func (l *Log) Close() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.close()
}

func (l *Log) close() error {
	if l.closed {
		return nil
	}
	err := l.active().sync()
	l.mu.Lock()
	l.closed = true
	segs := l.segs
	l.mu.Unlock()
	for _, s := range segs {
		err = errors.Join(err, s.close())
	}
	return err
}

// Remove closes the log and deletes its directory (the topic was deleted),
// crash-safely: the directory is entombed first (see Entomb). It returns
// the entombed path, whose files the caller removes (os.RemoveAll), in the
// background if it likes.
func (l *Log) Remove() (tomb string, err error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	err = l.close()
	tomb, rerr := Entomb(l.dir)
	return tomb, errors.Join(err, rerr)
}

// readErr turns the error of a read that raced with retention or Close into
// the error the caller should see.
func (l *Log) readErr(err error) error {
	if !errors.Is(err, os.ErrClosed) {
		return err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	return ErrOffsetOutOfRange
}
