package segment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// logStartFile holds the log start offset set by DeleteBefore when it lies
// above the first segment's base (see the package documentation).
const logStartFile = "log-start-offset"

// readLogStart returns the checkpointed log start offset, 0 if there is
// none. A checkpoint that does not parse is ignored (it is only ever
// replaced by rename, so it cannot be torn; garbage means someone else
// wrote it) and the segments' own start applies.
func readLogStart(dir string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, logStartFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return 0, nil
	}
	return n, nil
}

// writeLogStart replaces the checkpoint atomically and durably: a
// temporary file is written and fsynced, renamed over the old one, and the
// directory fsynced.
func writeLogStart(dir string, offset int64) error {
	tmp := filepath.Join(dir, logStartFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.FormatInt(offset, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, logStartFile)); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// DeleteBefore advances the log start offset to offset (Kafka
// DeleteRecords): reads below it fail with ErrOffsetOutOfRange from now
// on, and segments wholly below it are deleted. offset may lie inside a
// segment, even inside a batch; the start then stays there (a read at it
// returns the whole batch containing it, as a fetch does). The new start
// is checkpointed (fsynced) before anything is deleted, so it survives a
// crash. An offset at or below StartOffset changes nothing; above
// EndOffset it is ErrOffsetOutOfRange. A writer operation.
func (l *Log) DeleteBefore(offset int64) error {
	l.rmu.Lock() // after any retention pass's removals: oldest files go first
	defer l.rmu.Unlock()
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return ErrClosed
	}
	// The writer may read segment state without mu: only it changes it.
	if offset > l.end {
		return fmt.Errorf("%w: cannot delete below %d, the log ends at %d", ErrOffsetOutOfRange, offset, l.end)
	}
	if offset <= l.start {
		return nil
	}
	if err := writeLogStart(l.dir, offset); err != nil {
		return err
	}
	// Everything is deleted: roll, so the empty active segment is named by
	// the end offset and holds the start across restarts.
	// If rolling fails the active segment simply stays (below the start,
	// which is durable either way).
	if offset == l.end && l.active().size > 0 {
		_ = l.roll()
	}
	return l.dropBelow(offset)
}

// dropBelow sets the start to offset and deletes the segments that end at
// or before it, never the active one. Called by the writer (or Open).
func (l *Log) dropBelow(offset int64) error {
	n := 0
	for n < len(l.segs)-1 && l.segs[n].end <= offset {
		n++
	}
	l.mu.Lock()
	doomed := slices.Clone(l.segs[:n])
	l.segs = slices.Clone(l.segs[n:])
	l.start = max(offset, l.segs[0].base)
	for _, s := range doomed {
		l.size -= s.size
	}
	l.mu.Unlock()
	if n == 0 {
		return nil
	}
	trash, err := retireAll(l.dir, doomed)
	if len(trash) > 0 {
		// The writer must not wait for the files to be given back.
		go giveBack(trash)
	}
	return err
}

// SetConfig changes the rolling thresholds (segment.bytes, segment.ms) of
// a running log; they apply from the next append. Zero fields keep their
// defaults, as in Open; Now and IndexIntervalBytes are not changed. A
// writer operation.
func (l *Log) SetConfig(cfg Config) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	cfg.Now, cfg.IndexIntervalBytes = l.cfg.Now, l.cfg.IndexIntervalBytes
	l.cfg = cfg.withDefaults()
}
