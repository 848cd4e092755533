package localstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/streamline-dev/streamline/logsvc/segment"
	"github.com/streamline-dev/streamline/logsvc/storage"
)

// Truncation of a follower's log (storage.Truncater). The segments are
// cut (package segment), but the node WAL may still hold records of the
// removed suffix: replayed after a crash they would come back at offsets
// the leader has since filled with other batches. So every truncation is
// recorded in the partition directory before the segments are touched:
//
//	partitions/<topicID>-<n>/truncation   {"seq":S,"offset":X,"reset":false,"done":true}
//
// S is the WAL sequence number the next append gets. When the record is
// written, the segments are fsynced: every record of the stream below S is
// either in them (below X) or removed, so replay skips the stream's WAL
// records with seq < S. "done" is set once the segments are cut; a
// truncation a crash interrupted (done false) is finished when the
// partition is recovered or opened, before anything reads or appends.

const truncationFile = "truncation"

// truncation is the record of a partition's last truncation.
type truncation struct {
	Seq    uint64 `json:"seq"`
	Offset int64  `json:"offset"`
	Reset  bool   `json:"reset"`
	Done   bool   `json:"done"`
}

func readTruncation(dir string) (truncation, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, truncationFile))
	if errors.Is(err, os.ErrNotExist) {
		return truncation{}, false, nil
	}
	if err != nil {
		return truncation{}, false, err
	}
	var t truncation
	if err := json.Unmarshal(b, &t); err != nil {
		return truncation{}, false, fmt.Errorf("%s/%s: %w", dir, truncationFile, err)
	}
	return t, true, nil
}

// writeTruncation replaces the record durably (temporary file, fsync,
// rename, directory fsync).
func writeTruncation(dir string, t truncation) error {
	b, _ := json.Marshal(t)
	tmp := filepath.Join(dir, truncationFile+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, truncationFile)); err != nil {
		return err
	}
	return syncDir(dir)
}

// cut applies t to seg and returns the new end.
func cut(seg *segment.Log, t truncation) (int64, error) {
	if t.Reset {
		return t.Offset, seg.ResetTo(t.Offset)
	}
	return seg.TruncateTo(t.Offset)
}

// finishTruncation completes a truncation a crash interrupted and returns
// the WAL seq below which the stream's records are to be skipped (0: none).
func finishTruncation(seg *segment.Log) (uint64, error) {
	t, ok, err := readTruncation(seg.Dir())
	if err != nil || !ok {
		return 0, err
	}
	if !t.Done {
		if _, err := cut(seg, t); err != nil {
			return 0, fmt.Errorf("finishing an interrupted truncation to %d: %w", t.Offset, err)
		}
		t.Done = true
		if err := writeTruncation(seg.Dir(), t); err != nil {
			return 0, err
		}
	}
	return t.Seq, nil
}

// TruncateTo implements storage.Truncater: it removes the batch containing
// offset and all after it, through the applier (after the appends queued
// before it), durably, and returns the new end.
func (l *Log) TruncateTo(offset int64) (int64, error) {
	var end int64
	res := make(chan error, 1)
	if err := l.send(op{kind: opTruncate, offset: offset, res: res, newEnd: &end}); err != nil {
		return 0, err
	}
	return end, <-res
}

// ResetTo implements storage.Truncater: the log becomes empty, starting
// (and ending) at offset.
func (l *Log) ResetTo(offset int64) error {
	res := make(chan error, 1)
	if err := l.send(op{kind: opTruncate, offset: offset, reset: true, res: res, newEnd: new(int64)}); err != nil {
		return err
	}
	return <-res
}

// truncate runs on the applier: fsync what is applied, record the
// truncation, cut, mark it done.
func (l *Log) truncate(offset int64, reset bool, newEnd *int64) error {
	if f := l.failed.Load(); f != nil {
		return *f
	}
	if !reset && offset >= l.seg.EndOffset() {
		*newEnd = l.seg.EndOffset()
		return nil
	}
	if err := l.seg.Sync(); err != nil {
		return err
	}
	t := truncation{Seq: l.e.wal.NextSeq(), Offset: offset, Reset: reset}
	dir := l.seg.Dir()
	if err := writeTruncation(dir, t); err != nil {
		return err
	}
	end, err := cut(l.seg, t)
	if err != nil {
		// The segment log may be closed now; the partition must be
		// reopened, which finishes the truncation.
		err = fmt.Errorf("%w: %s: truncating to %d: %v", storage.ErrStorage, l.stream, offset, err)
		l.failed.CompareAndSwap(nil, &err)
		return err
	}
	t.Done = true
	if err := writeTruncation(dir, t); err != nil {
		return err
	}
	*newEnd = end
	l.e.log.Info("truncated follower log", "stream", l.stream, "offset", offset, "reset", reset, "end", end)
	return nil
}
