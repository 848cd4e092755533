// Package reclaim deletes large files without stalling the fsyncs of other
// files on the same disk.
//
// Unlinking a file frees all its extents in one file-system transaction:
// on ext4, a few hundred MiB freed at once is a journal commit that every
// fsync issued meanwhile (the node WAL's group commit) waits behind. On the
// 2-core benchmark VM, removing 3 GiB in 256 MiB files while a 4 KiB
// O_DIRECT write + fdatasync loop ran took that loop's p999 from 3.5 to
// 40-43 ms and its worst to 44-47 ms; shrinking each file 16 MiB at a
// time with a 5 ms pause after each step kept p999 at 5.1 ms and the
// worst at 7.2 ms, and took 1.6 s instead of 0.6 s. RocksDB's
// DeleteScheduler (rate_bytes_per_sec, bytes_max_delete_chunk) does the
// same for its compacted files; Kafka defers segment deletion for the
// same reason.
//
// A file being reclaimed must already be out of reach of its readers
// under any name they open (renamed to a trash name, or inside an
// entombed directory): a crash leaves it partly truncated, and whoever
// finds it at the next start removes it again.
package reclaim

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Pacing is how fast files are given back: StepBytes freed per step,
// then Pause.
type Pacing struct {
	StepBytes int64
	Pause     time.Duration
	// sleep waits d or until stop is closed, and reports whether it
	// waited the whole time; nil is a timer (tests observe the steps).
	sleep func(d time.Duration, stop <-chan struct{}) bool
}

// Default frees up to 16 MiB per 5 ms step: about 3 GB/s at most, and
// each step's journal commit small enough not to be felt by a WAL fsync.
var Default = Pacing{StepBytes: 16 << 20, Pause: 5 * time.Millisecond}

// ErrStopped is returned when stop was closed before everything was
// removed; what is left is for the next start to find and remove.
var ErrStopped = errors.New("reclaim: stopped before everything was removed")

// Remove deletes the file at path, first shrinking it StepBytes at a time
// with a Pause after each step (after the unlink, too, if the file was
// larger than a step). A missing file is not an error. If stop is closed
// it returns ErrStopped, leaving the file (perhaps shorter).
func (p Pacing) Remove(path string, stop <-chan struct{}) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return p.unlink(path, 0, stop) // not writable: unlinked as it is
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	size := st.Size()
	for p.StepBytes > 0 && size > p.StepBytes {
		size -= p.StepBytes
		if err := f.Truncate(size); err != nil {
			f.Close()
			return err
		}
		if !p.wait(stop) {
			f.Close()
			return ErrStopped
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return p.unlink(path, st.Size(), stop)
}

// unlink removes path and pauses after it if the file was larger than a
// step.
func (p Pacing) unlink(path string, size int64, stop <-chan struct{}) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if size > p.StepBytes && !p.wait(stop) {
		return ErrStopped
	}
	return nil
}

// RemoveAll deletes the tree at path as os.RemoveAll does (a missing path
// is not an error), giving back each regular file with Remove first. If
// stop is closed it returns ErrStopped, leaving the rest of the tree.
func (p Pacing) RemoveAll(path string, stop <-chan struct{}) error {
	err := filepath.WalkDir(path, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return p.Remove(name, stop)
	})
	if err != nil {
		return err
	}
	return os.RemoveAll(path)
}

// Sweep removes the regular files in dir whose names match: what a crash
// left of files being given back under a trash name, found at the next
// start (nothing else runs then, so they are unlinked at once).
func Sweep(dir string, match func(name string) bool) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !match(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// wait pauses after a step; false if stop was closed.
func (p Pacing) wait(stop <-chan struct{}) bool {
	if p.sleep != nil {
		return p.sleep(p.Pause, stop)
	}
	select {
	case <-stop:
		return false
	default:
	}
	if p.Pause <= 0 {
		return true
	}
	t := time.NewTimer(p.Pause)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}
