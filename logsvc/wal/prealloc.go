package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/streamline-dev/streamline/shared/directio"
)

// Preallocation (Options.Preallocate): the WAL keeps one spare file of at
// least FileBytes, fully written, and a roll renames it to the new WAL
// file's name. The spare is a pruned WAL file when Prune has one to give
// (recycling, as PostgreSQL does: no extra writes), otherwise FileBytes of
// zeros written and fsynced by a background goroutine. Frames then overwrite blocks that are already
// allocated and initialized, so the file's size and extent map do not
// change and an fsync has only the data to flush: on ext4 a 16 KiB
// write+fsync went from p50 0.63 / p90 2.9 / p99 6.8 ms appending to p50
// 0.26 / p90 0.80 / p99 2.7 ms over zeros (PostgreSQL's wal_init_zero does
// the same). fallocate would not do: its unwritten extents are converted on
// first write, a metadata change per write.
//
// A file started from the spare ("prezeroed", though a recycled one holds
// old frames) is cut to its frames and fsynced before the next file is
// created, so only the last file can end in something that is not one of
// its frames. Recovery reads zeros as a bad frame, and an old frame as a
// frame with the wrong seq (every old seq is below the file's, since seqs
// only grow), and truncates the last file there, like any torn tail. The file a WAL opens with (a fresh one
// or the last one reused) is not prezeroed; once a spare is ready the
// writer rolls away from it early.

const (
	spareName  = "wal-spare.tmp" // not a WAL file name: listFiles ignores it
	spareChunk = 1 << 20         // zeros written (and fsynced) at a time
)

// Spare file states.
const (
	spareNone = iota
	sparePreparing
	spareReady
)

func (w *WAL) sparePath() string { return filepath.Join(w.dir, spareName) }

// startSpare starts preparing a spare unless one is ready or on its way.
func (w *WAL) startSpare() {
	if !w.opts.Preallocate {
		return
	}
	w.spareMu.Lock()
	defer w.spareMu.Unlock()
	if w.spareState != spareNone || w.spareStop {
		return
	}
	w.spareState = sparePreparing
	w.spareWG.Add(1)
	go w.prepareSpare()
}

// prepareSpare writes the spare file: FileBytes of zeros, fsynced a chunk
// at a time so that little dirty data is ever pending (on ext4 an fsync of
// the active file may have to write out other files' dirty data too). On
// any failure (disk full) the spare is removed and the WAL goes on with
// plain files; the next roll tries again.
func (w *WAL) prepareSpare() {
	defer w.spareWG.Done()
	err := w.writeSpare()
	w.spareMu.Lock()
	defer w.spareMu.Unlock()
	if err != nil {
		os.Remove(w.sparePath())
		w.spareState = spareNone
		w.spareErr = err
		return
	}
	w.spareState = spareReady
}

var errSpareStopped = errors.New("wal: closed while preparing the spare file")

func (w *WAL) writeSpare() (err error) {
	f, err := os.OpenFile(w.sparePath(), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("wal: create spare: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("wal: close spare: %w", cerr)
		}
	}()
	zeros := make([]byte, spareChunk)
	for off := int64(0); off < w.opts.FileBytes; off += spareChunk {
		w.spareMu.Lock()
		stop := w.spareStop
		w.spareMu.Unlock()
		if stop {
			return errSpareStopped
		}
		n := min(int64(spareChunk), w.opts.FileBytes-off)
		if _, err := f.Write(zeros[:n]); err != nil {
			return fmt.Errorf("wal: write spare: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("wal: sync spare: %w", err)
		}
	}
	return nil
}

// spareReadyNow reports whether a spare can be taken.
func (w *WAL) spareReadyNow() bool {
	w.spareMu.Lock()
	defer w.spareMu.Unlock()
	return w.spareState == spareReady
}

// takeSpare makes the ready spare the WAL file for records from seq on:
// renamed to its name and the directory fsynced, as createFile does. ok is
// false when no spare is ready (the caller creates a plain file).
func (w *WAL) takeSpare(seq uint64) (info *fileInfo, f *os.File, ok bool, err error) {
	if !w.spareReadyNow() {
		return nil, nil, false, nil
	}
	path := filepath.Join(w.dir, fileName(seq))
	if _, err := os.Lstat(path); err == nil {
		return nil, nil, false, fmt.Errorf("wal: create: %s exists", path)
	}
	err = os.Rename(w.sparePath(), path)
	w.spareMu.Lock()
	w.spareState = spareNone // taken, or unusable: prepare another
	w.spareMu.Unlock()
	if err != nil {
		os.Remove(w.sparePath())
		return nil, nil, false, fmt.Errorf("wal: rename spare: %w", err)
	}
	flag := os.O_WRONLY // the writer writes a spare at explicit offsets
	if w.direct {
		flag |= directio.Flag
	}
	h, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, nil, false, fmt.Errorf("wal: open %s: %w", path, err)
	}
	if err := syncDir(w.dir); err != nil {
		h.Close()
		return nil, nil, false, err
	}
	return &fileInfo{path: path, firstSeq: seq, streams: make(map[string]uint64)}, h, true, nil
}

// zeroFillMinLife: after a roll, a zero-filled spare is prepared only if
// the file just sealed took at least this long to fill. Faster than that
// (above 32 MiB/s with 64 MiB files), writing a file of zeros per file of
// records would double the WAL's disk writes when the disk is what limits
// throughput; the spares then come from recycled files (Prune), and a roll
// without one starts a plain file.
const zeroFillMinLife = 2 * time.Second

// rolled is called by the writer after each roll, with when the sealed
// file was started.
func (w *WAL) rolled(sealedSince time.Time) {
	if w.opts.zeroFillAlways || time.Since(sealedSince) >= zeroFillMinLife {
		w.startSpare()
	}
}

// recycle makes a pruned file the spare, if the WAL wants one and f is
// big enough; false means the caller deletes f. A crash right after the
// rename may leave the spare (removed at Open) or, if the rename was not
// durable, f under its old name (pruned again: its records are durable in
// their segments).
func (w *WAL) recycle(f *fileInfo) bool {
	if !w.opts.Preallocate {
		return false
	}
	st, err := os.Stat(f.path)
	if err != nil || st.Size() < w.opts.FileBytes {
		return false
	}
	w.spareMu.Lock()
	defer w.spareMu.Unlock()
	if w.spareState != spareNone || w.spareStop {
		return false
	}
	if err := os.Rename(f.path, w.sparePath()); err != nil {
		return false
	}
	w.spareState = spareReady
	w.recycled++
	return true
}

// stopSpare stops a preparation in progress and waits for it (Close).
func (w *WAL) stopSpare() {
	w.spareMu.Lock()
	w.spareStop = true
	w.spareMu.Unlock()
	w.spareWG.Wait()
}
