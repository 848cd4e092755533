package segment

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/streamline-dev/streamline/shared/recbatch"
)

// Open opens the log in dir, creating dir and an empty log at offset 0 if
// there is none, and recovers it (see the package documentation). An error
// names the directory; damage that loses data wraps ErrCorrupt.
func Open(dir string, cfg Config) (*Log, error) {
	l, err := open(dir, cfg)
	if err != nil {
		return nil, fmt.Errorf("log %s: %w", dir, err)
	}
	return l, nil
}

func open(dir string, cfg Config) (*Log, error) {
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	bases, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	if err := removeOrphanIndexes(dir, bases); err != nil {
		return nil, err
	}
	if err := removeRetired(dir); err != nil {
		return nil, err
	}
	l := &Log{dir: dir, cfg: cfg}
	if len(bases) == 0 {
		s, err := createSegment(dir, 0)
		if err != nil {
			return nil, err
		}
		if err := syncDir(dir); err != nil {
			s.close()
			return nil, err
		}
		l.segs = []*segment{s}
	}
	for i, base := range bases {
		s, err := openSegment(dir, base, i == len(bases)-1, cfg)
		if err == nil && i > 0 && l.segs[i-1].end != base {
			err = fmt.Errorf("%w: segment %d ends at offset %d but the next segment starts at %d", ErrCorrupt, l.segs[i-1].base, l.segs[i-1].end, base)
			s.close()
		}
		if err != nil {
			for _, s := range l.segs {
				s.close()
			}
			return nil, err
		}
		l.segs = append(l.segs, s)
	}
	l.start = l.segs[0].base
	l.end = l.active().end
	for _, s := range l.segs {
		l.size += s.size
	}
	// A start set by DeleteBefore; never past the end (the WAL replay of a
	// torn active segment may still have to restore records below it).
	ckpt, err := readLogStart(dir)
	if err == nil && min(ckpt, l.end) > l.start {
		err = l.dropBelow(min(ckpt, l.end))
	}
	if err != nil {
		for _, s := range l.segs {
			s.close()
		}
		return nil, err
	}
	return l, nil
}

func listSegments(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var bases []int64
	for _, e := range ents {
		if base, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			bases = append(bases, base)
		}
	}
	slices.Sort(bases)
	return bases, nil
}

// removeOrphanIndexes deletes index files whose .log is gone: a segment
// removed by retention or DeleteRecords before a crash (remove deletes the
// indexes first, but other tools may not). They describe nothing and would
// only pile up.
func removeOrphanIndexes(dir string, bases []int64) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	removed := false
	for _, e := range ents {
		for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
			base, ok := parseName(e.Name(), suffix)
			if !ok || slices.Contains(bases, base) {
				continue
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			removed = true
		}
	}
	if removed {
		return syncDir(dir)
	}
	return nil
}

func openSegment(dir string, base int64, last bool, cfg Config) (*segment, error) {
	flags := os.O_RDONLY
	if last {
		flags = os.O_RDWR
	}
	f, err := os.OpenFile(segmentPath(dir, base, logSuffix), flags, 0)
	if err != nil {
		return nil, err
	}
	s := newSegment(dir, base, f)
	fi, err := f.Stat()
	if err == nil {
		if last {
			err = s.recoverActive(fi.Size(), cfg)
		} else {
			err = s.loadOlder(fi.Size(), cfg.IndexIntervalBytes)
		}
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// scanWindow is how much of the active segment recovery reads at a time; it
// grows if a single batch is larger.
const scanWindow = 1 << 20

var errStopScan = errors.New("stop scan")

// recoverActive CRC-checks every batch of the last segment, truncates the
// file after the intact prefix and rebuilds the indexes from the scan.
func (s *segment) recoverActive(fileSize int64, cfg Config) error {
	var buf []byte
	win := int64(scanWindow)
	firstMaxTs := int64(-1)
	for s.size < fileSize {
		n := min(win, fileSize-s.size)
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := s.log.ReadAt(buf, s.size); err != nil {
			return err
		}
		windowEnd := s.size + n
		valid, err := recbatch.Iterate(buf, true, func(h recbatch.Header, b []byte) error {
			// A CRC-valid batch at the wrong offset (the CRC does not cover
			// baseOffset) is as unusable as a torn one.
			// Index entries hold 32-bit relative offsets and positions.
			if h.BaseOffset != s.end || h.LastOffset()-s.base > math.MaxInt32 || s.size > math.MaxUint32 {
				return errStopScan
			}
			if s.size == 0 {
				firstMaxTs = h.MaxTimestamp
			}
			s.addBatch(h, s.size, cfg.IndexIntervalBytes)
			return nil
		})
		if err == nil {
			continue
		}
		if errors.Is(err, recbatch.ErrTruncated) && windowEnd < fileSize {
			// The window, not the file, ended inside a batch: read again from
			// the batch start, with a window big enough to hold it.
			rest := buf[valid:]
			if len(rest) < recbatch.HeaderSize {
				continue
			}
			if h, herr := recbatch.ParseHeader(rest); herr == nil && s.size+int64(h.Size()) <= fileSize {
				win = max(win, int64(h.Size()))
				continue
			}
		}
		break // torn or corrupt: everything from s.size on is dropped
	}
	if s.size < fileSize {
		if err := s.log.Truncate(s.size); err != nil {
			return err
		}
		if err := s.log.Sync(); err != nil {
			return err
		}
	}
	if s.size > 0 {
		// The append time of the first batch is not stored; its timestamp is
		// the best approximation (Kafka uses it for segment.ms too). A
		// timestamp in the future or missing falls back to now.
		now := cfg.Now()
		s.firstAppend = now
		if firstMaxTs >= 0 && firstMaxTs <= now.UnixMilli() {
			s.firstAppend = time.UnixMilli(firstMaxTs)
		}
	}
	s.writtenBack = s.size // written by an earlier process: the kernel's flusher owns it (TruncateTo and ResetTo reopen the log, so this also covers a cut)
	if err := s.openIndexFiles(true); err != nil {
		return err
	}
	return s.flushIndexes()
}

// loadOlder loads a rolled segment's indexes, rebuilding them if they do not
// check out.
func (s *segment) loadOlder(size int64, interval int) error {
	if s.tryLoadIndexes(size) == nil {
		return nil
	}
	s.index, s.times, s.size, s.end, s.maxTs, s.maxTsOffset = nil, nil, 0, s.base, -1, -1
	return s.rebuildOlder(size, interval)
}

// tryLoadIndexes reads the index files and checks them against the .log
// without reading all of it: the first batch must start at the base offset,
// and the batches from the last offset index entry on must run exactly to
// the end of the file, giving the segment's end offset.
func (s *segment) tryLoadIndexes(size int64) error {
	if size == 0 {
		return errBadIndex // an empty rolled segment cannot be right; let the scan say so
	}
	ib, err := os.ReadFile(segmentPath(s.dir, s.base, indexSuffix))
	if err != nil {
		return err
	}
	tb, err := os.ReadFile(segmentPath(s.dir, s.base, timeIndexSuffix))
	if err != nil {
		return err
	}
	index, err := decodeOffsetIndex(ib, size)
	if err != nil {
		return err
	}
	times, err := decodeTimeIndex(tb)
	if err != nil {
		return err
	}
	hr := newHeaderReader(s.log, size)
	if h, err := hr.at(0); err != nil || h.BaseOffset != s.base {
		return errBadIndex
	}
	pos, next := int64(0), s.base
	if len(index) > 0 {
		last := index[len(index)-1]
		pos, next = int64(last.pos), s.base+int64(last.rel)
	}
	tailMax := int64(-1)
	for pos < size {
		h, err := hr.at(pos)
		if err != nil || h.BaseOffset != next {
			return errBadIndex
		}
		tailMax = max(tailMax, h.MaxTimestamp)
		pos += int64(h.Size())
		next = h.NextOffset()
	}
	maxTs, maxTsOffset := int64(-1), int64(-1)
	if len(times) > 0 {
		last := times[len(times)-1]
		maxTs, maxTsOffset = last.ts, s.base+int64(last.rel)
	}
	// The final time entry written at roll holds the segment's maximum, so
	// no later batch may exceed it.
	if maxTsOffset >= next || tailMax > maxTs || next-1-s.base > math.MaxInt32 {
		return errBadIndex
	}
	s.index, s.times, s.size, s.end, s.maxTs, s.maxTsOffset = index, times, size, next, maxTs, maxTsOffset
	return nil
}

// rebuildOlder scans the batch headers of a rolled segment, rebuilds and
// fsyncs its index files. Rolled segments were fsynced, so unlike the active
// segment any damage here is corruption, not a torn write.
func (s *segment) rebuildOlder(size int64, interval int) error {
	hr := newHeaderReader(s.log, size)
	for pos := int64(0); pos < size; {
		h, err := hr.at(pos)
		if err != nil {
			return fmt.Errorf("%w: segment %d: %v", ErrCorrupt, s.base, err)
		}
		if h.BaseOffset != s.end || h.LastOffset()-s.base > math.MaxInt32 || pos > math.MaxUint32 {
			return fmt.Errorf("%w: segment %d: batch at position %d has offset %d, want %d", ErrCorrupt, s.base, pos, h.BaseOffset, s.end)
		}
		s.addBatch(h, pos, interval)
		pos += int64(h.Size())
	}
	s.maybeAppendTime()
	if err := s.openIndexFiles(true); err != nil {
		return err
	}
	return errors.Join(s.sync(), s.closeIndexFiles())
}
