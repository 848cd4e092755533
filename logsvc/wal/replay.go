package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// Replay calls fn for every intact record in seq order, oldest first.
// Torn or corrupt tails were already truncated by Open. Replay may only be
// called before the first Append (the log must not change underneath it,
// and recovery has to finish before new writes anyway); later calls return
// ErrReplayAfterAppend. Record.Data is freshly allocated and may be kept.
// An error from fn stops the replay and is returned as is.
func (w *WAL) Replay(fn func(seq uint64, r Record) error) error {
	w.mu.Lock()
	closed, appended := w.closed, w.appended
	w.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case appended:
		return ErrReplayAfterAppend
	}

	w.pruneMu.Lock() // a concurrent Prune must not delete files mid-read
	defer w.pruneMu.Unlock()
	type span struct {
		path string
		size int64
	}
	w.filesMu.Lock()
	var spans []span
	for _, f := range append(slices.Clip(w.sealed), w.active) {
		spans = append(spans, span{f.path, f.size})
	}
	w.filesMu.Unlock()

	for _, s := range spans {
		if err := replayFile(s.path, s.size, fn); err != nil {
			return err
		}
	}
	return nil
}

// replayFile calls fn for the frames in the first size bytes of path,
// which Open has already validated.
func replayFile(path string, size int64, fn func(uint64, Record) error) error {
	h, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("wal: replay: %w", err)
	}
	defer h.Close()
	fr := newFrameReader(h, size)
	for {
		seq, r, err := fr.next(true)
		if err == io.EOF {
			return nil
		}
		var fe *frameError
		if errors.As(err, &fe) {
			// Open checked these bytes; someone changed the file since.
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, path, fe)
		}
		if err != nil {
			return fmt.Errorf("wal: replay %s: %w", path, err)
		}
		if err := fn(seq, r); err != nil {
			return err
		}
	}
}

// Prune deletes sealed (non-active) WAL files all of whose records are
// durable elsewhere: for every stream with records in the file,
// durable(stream) must return (s, true) with s >= the stream's last seq in
// that file, or ok=false meaning the stream no longer exists (its records
// are garbage). durable is called without WAL locks held, at most once per
// stream per call. Files need not be pruned oldest first: a file is deleted
// only when nothing in it is needed, so gaps are harmless. Returns the
// number of files deleted.
func (w *WAL) Prune(durable func(stream string) (seq uint64, ok bool)) (int, error) {
	w.pruneMu.Lock()
	defer w.pruneMu.Unlock()
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return 0, ErrClosed
	}

	// Sealed files are never written again, so their stream maps can be
	// read without the lock; only the slice itself changes (on roll).
	w.filesMu.Lock()
	sealed := slices.Clone(w.sealed)
	w.filesMu.Unlock()

	type answer struct {
		seq uint64
		ok  bool
	}
	cache := make(map[string]answer)
	needed := func(f *fileInfo) bool {
		for stream, last := range f.streams {
			a, seen := cache[stream]
			if !seen {
				a.seq, a.ok = durable(stream)
				cache[stream] = a
			}
			if a.ok && a.seq < last {
				return true
			}
		}
		return false
	}

	deleted := make(map[*fileInfo]bool)
	var trashed []string // renamed out of the WAL, given back in the background
	var firstErr error
	for _, f := range sealed {
		if needed(f) {
			continue
		}
		if w.recycle(f) {
			deleted[f] = true
			continue
		}
		t, err := trash(f.path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			firstErr = fmt.Errorf("wal: prune: %w", err)
			break
		}
		if err == nil {
			trashed = append(trashed, t)
		}
		deleted[f] = true
	}
	if len(deleted) == 0 {
		return 0, firstErr
	}
	w.filesMu.Lock()
	w.sealed = slices.DeleteFunc(w.sealed, func(f *fileInfo) bool {
		if deleted[f] {
			w.size -= f.size
			return true
		}
		return false
	})
	w.filesMu.Unlock()
	// A file brought back by a crash would only replay records that are
	// durable anyway, but its trash copy must not shrink before the
	// rename is durable (below), and a durable directory keeps the
	// seq-continuity reasoning in Open simple.
	if !w.opts.NoSync && firstErr == nil {
		firstErr = syncDir(w.dir)
	}
	// Only once the renames are durable may the files shrink: a crash
	// must not bring one back under its WAL name, shortened (with NoSync
	// nothing is durable anyway).
	if firstErr == nil || w.opts.NoSync {
		w.reclaimTrash(trashed)
	}
	return len(deleted), firstErr
}
