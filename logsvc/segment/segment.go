package segment

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/reclaim"
)

const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	baseDigits      = 20
)

// segment is one .log file and its indexes.
//
// base, dir and log never change. The fields marked "Log.mu" are written by
// the single writer while it holds Log.mu and read by readers under
// Log.mu.RLock; the writer itself may read them without the lock. The
// fields marked "writer" are only touched by the writer (and Open).
type segment struct {
	dir  string
	base int64
	log  *os.File // kept open for reads; closed when the segment is deleted

	size        int64         // Log.mu: bytes of whole batches in the file
	end         int64         // Log.mu: next offset after the last batch
	index       []offsetEntry // Log.mu
	times       []timeEntry   // Log.mu
	maxTs       int64         // Log.mu: largest batch MaxTimestamp, -1 if none
	maxTsOffset int64         // Log.mu: base offset of the batch holding maxTs

	sinceIndex   int       // writer: bytes appended since the last index entry
	firstAppend  time.Time // writer: when the first batch was appended (segment.ms)
	idxFile      *os.File  // writer: open only while the segment is active
	timeFile     *os.File  // writer
	idxFlushed   int       // writer: index entries already in idxFile
	timesFlushed int       // writer: time entries already in timeFile
	writtenBack  int64     // writer: the file's bytes before this were handed to writeback (Config.WritebackBytes)
}

func segmentPath(dir string, base int64, suffix string) string {
	return filepath.Join(dir, fmt.Sprintf("%0*d%s", baseDigits, base, suffix))
}

// parseSegmentName returns the base offset of a "<20 digits>.log" name.
func parseSegmentName(name string) (int64, bool) { return parseName(name, logSuffix) }

// parseName returns the base offset of a "<20 digits><suffix>" name.
func parseName(name, suffix string) (int64, bool) {
	digits, ok := strings.CutSuffix(name, suffix)
	if !ok || len(digits) != baseDigits {
		return 0, false
	}
	base, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || base < 0 {
		return 0, false
	}
	return base, true
}

func newSegment(dir string, base int64, f *os.File) *segment {
	return &segment{dir: dir, base: base, log: f, end: base, maxTs: -1, maxTsOffset: -1}
}

// createSegment creates an empty segment (truncating leftovers with the same
// name) with its index files open for appending.
func createSegment(dir string, base int64) (*segment, error) {
	f, err := os.OpenFile(segmentPath(dir, base, logSuffix), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	s := newSegment(dir, base, f)
	if err := s.openIndexFiles(true); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// openIndexFiles opens the index files for writing; truncate discards what
// they hold so that the in-memory entries can be written from scratch.
func (s *segment) openIndexFiles(truncate bool) error {
	flags := os.O_RDWR | os.O_CREATE
	if truncate {
		flags |= os.O_TRUNC
	}
	idx, err := os.OpenFile(segmentPath(s.dir, s.base, indexSuffix), flags, 0o644)
	if err != nil {
		return err
	}
	tf, err := os.OpenFile(segmentPath(s.dir, s.base, timeIndexSuffix), flags, 0o644)
	if err != nil {
		idx.Close()
		return err
	}
	s.idxFile, s.timeFile = idx, tf
	s.idxFlushed, s.timesFlushed = 0, 0
	return nil
}

// addBatch records a batch written at pos in the in-memory state and indexes.
// Appends and recovery scans both go through here, so a rebuilt index is
// identical to the one written live. Callers hold Log.mu if readers exist.
func (s *segment) addBatch(h recbatch.Header, pos int64, interval int) {
	if s.sinceIndex >= interval {
		s.index = append(s.index, offsetEntry{rel: uint32(h.BaseOffset - s.base), pos: uint32(pos)})
		s.maybeAppendTime()
		s.sinceIndex = 0
	}
	s.sinceIndex += h.Size()
	if h.MaxTimestamp > s.maxTs {
		s.maxTs, s.maxTsOffset = h.MaxTimestamp, h.BaseOffset
	}
	s.size = pos + int64(h.Size())
	s.end = h.NextOffset()
}

// maybeAppendTime adds a time index entry if the largest timestamp grew
// since the last one.
func (s *segment) maybeAppendTime() {
	if s.maxTs < 0 || (len(s.times) > 0 && s.maxTs <= s.times[len(s.times)-1].ts) {
		return
	}
	s.times = append(s.times, timeEntry{ts: s.maxTs, rel: uint32(s.maxTsOffset - s.base)})
}

// flushIndexes writes index entries not yet in the files. They are kept in
// memory and written lazily because the active segment's indexes are rebuilt
// from the .log on every Open anyway; only a rolled segment relies on them.
func (s *segment) flushIndexes() error {
	if s.idxFile == nil {
		return nil
	}
	if n := len(s.index); n > s.idxFlushed {
		if _, err := s.idxFile.WriteAt(appendOffsetEntries(nil, s.index[s.idxFlushed:n]), int64(s.idxFlushed)*offsetEntrySize); err != nil {
			return err
		}
		s.idxFlushed = n
	}
	if n := len(s.times); n > s.timesFlushed {
		if _, err := s.timeFile.WriteAt(appendTimeEntries(nil, s.times[s.timesFlushed:n]), int64(s.timesFlushed)*timeEntrySize); err != nil {
			return err
		}
		s.timesFlushed = n
	}
	return nil
}

// sync flushes the indexes and fsyncs all three files.
func (s *segment) sync() error {
	if err := s.flushIndexes(); err != nil {
		return err
	}
	if err := s.log.Sync(); err != nil {
		return err
	}
	if s.idxFile != nil {
		if err := s.idxFile.Sync(); err != nil {
			return err
		}
		if err := s.timeFile.Sync(); err != nil {
			return err
		}
	}
	return nil
}

func (s *segment) closeIndexFiles() error {
	if s.idxFile == nil {
		return nil
	}
	err := errors.Join(s.idxFile.Close(), s.timeFile.Close())
	s.idxFile, s.timeFile = nil, nil
	return err
}

func (s *segment) close() error {
	return errors.Join(s.closeIndexFiles(), s.log.Close())
}

// deletedSuffix marks the log file of a segment that retention or
// DeleteRecords took out of the log (retire): it is no segment name, so
// Open never reads it, and it is given back to the file system a step at
// a time (giveBack); Open removes any a crash left.
const deletedSuffix = ".deleted"

// retire closes the segment, deletes its indexes and renames its log file
// out of the segment names, and returns the new path ("" if it was gone).
// The caller fsyncs the directory before the file shrinks (retireAll).
func (s *segment) retire() (string, error) {
	err := s.closeIndexAndLog()
	p := segmentPath(s.dir, s.base, logSuffix)
	if rerr := os.Rename(p, p+deletedSuffix); rerr != nil {
		if errors.Is(rerr, os.ErrNotExist) {
			return "", err
		}
		return "", errors.Join(err, rerr)
	}
	return p + deletedSuffix, err
}

// retireAll retires segs, oldest first (a crash part-way leaves a
// contiguous log), and fsyncs dir; it returns the retired files to give
// back, none unless the renames are durable: a file must not shrink while
// a crash could still bring it back under its segment name.
func retireAll(dir string, segs []*segment) ([]string, error) {
	var trash []string
	var err error
	for _, s := range segs {
		t, rerr := s.retire()
		err = errors.Join(err, rerr)
		if t != "" {
			trash = append(trash, t)
		}
	}
	if serr := syncDir(dir); serr != nil {
		return nil, errors.Join(err, serr)
	}
	return trash, err
}

// giveBack deletes retired segment files a step at a time (package
// reclaim): a 1 GiB segment unlinked at once is an ext4 journal commit
// that the node WAL's fsyncs wait behind.
func giveBack(paths []string) error {
	var err error
	for _, p := range paths {
		err = errors.Join(err, reclaim.Default.Remove(p, nil))
	}
	return err
}

// removeRetired removes the retired segment files a crash left in dir.
func removeRetired(dir string) error {
	return reclaim.Sweep(dir, func(name string) bool {
		seg, ok := strings.CutSuffix(name, deletedSuffix)
		if ok {
			_, ok = parseSegmentName(seg)
		}
		return ok
	})
}

// closeIndexAndLog closes the segment and deletes its index files.
func (s *segment) closeIndexAndLog() error {
	err := s.close()
	for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
		if rerr := os.Remove(segmentPath(s.dir, s.base, suffix)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// remove closes and deletes the segment. Indexes go first: a crash in
// between leaves a .log without indexes, which Open rebuilds, rather than
// orphaned index files.
func (s *segment) remove() error {
	err := s.closeIndexAndLog()
	if rerr := os.Remove(segmentPath(s.dir, s.base, logSuffix)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// largestTimestamp is what time-based retention compares against: the
// largest batch timestamp, or (like Kafka) the file's modification time when
// no batch carried one.
func (s *segment) largestTimestamp() int64 {
	if s.maxTs >= 0 {
		return s.maxTs
	}
	if fi, err := s.log.Stat(); err == nil {
		return fi.ModTime().UnixMilli()
	}
	return math.MaxInt64 // unknown: never expire by time
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// startWriteback is writeback (the platform's); tests replace it to see
// the ranges handed to the kernel.
var startWriteback = writeback
