package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	filePrefix = "wal-"
	fileSuffix = ".log"
	seqDigits  = 20 // enough for any uint64, so names sort like seqs
)

// fileName is the name of the WAL file whose first record has seq.
func fileName(seq uint64) string {
	return fmt.Sprintf("%s%0*d%s", filePrefix, seqDigits, seq, fileSuffix)
}

// parseFileName returns the first seq encoded in a WAL file name. Other
// names (temporary files, editor backups) are not WAL files and ignored.
func parseFileName(name string) (uint64, bool) {
	if len(name) != len(filePrefix)+seqDigits+len(fileSuffix) ||
		!strings.HasPrefix(name, filePrefix) || !strings.HasSuffix(name, fileSuffix) {
		return 0, false
	}
	digits := name[len(filePrefix) : len(filePrefix)+seqDigits]
	for _, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// fileInfo describes one WAL file. Its fields are guarded by WAL.filesMu
// once the WAL is open, because the writer updates the active file while
// Size, Prune and Replay read.
type fileInfo struct {
	path     string
	firstSeq uint64            // from the name
	lastSeq  uint64            // seq of the last record; 0 if none
	size     int64             // bytes of intact frames
	streams  map[string]uint64 // stream -> its last seq in this file, for Prune
}

// Open opens the WAL in dir, creating dir if needed. It scans every WAL
// file, truncates a torn or corrupt tail of the last file, removes empty
// trailing files, and starts the writer. Corruption anywhere but the tail
// of the last file fails with an error wrapping ErrCorrupt.
func Open(dir string, opts Options) (*WAL, error) {
	return open(dir, opts, nil)
}

// open is Open with a replacement for fsync of WAL files, for tests.
func open(dir string, opts Options, syncHook func(*os.File) error) (*WAL, error) {
	if opts.FileBytes <= 0 {
		opts.FileBytes = DefaultFileBytes
	}
	if opts.MaxQueueBytes <= 0 {
		opts.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if opts.MaxQueueRecords <= 0 {
		opts.MaxQueueRecords = DefaultMaxQueueRecords
	}
	if opts.NoSync {
		opts.Preallocate = false // nothing to make faster
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	w := &WAL{dir: dir, opts: opts, syncHook: syncHook, closing: make(chan struct{})}
	w.direct = opts.DirectIO && probeDirect(dir)
	// A spare left by the last run may be half written: start over.
	if err := os.Remove(w.sparePath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("wal: remove old spare: %w", err)
	}
	// Pruned files the last run did not finish giving back.
	if err := removeTrash(dir); err != nil {
		return nil, fmt.Errorf("wal: remove pruned files: %w", err)
	}

	files, err := listFiles(dir)
	if err != nil {
		return nil, err
	}
	var lastSeq uint64 // highest seq of any intact record so far
	for i, f := range files {
		if f.firstSeq <= lastSeq {
			return nil, fmt.Errorf("%w: %s: first seq %d but an earlier file reaches seq %d",
				ErrCorrupt, f.path, f.firstSeq, lastSeq)
		}
		if err := w.scanFile(f, i == len(files)-1); err != nil {
			return nil, err
		}
		if f.lastSeq != 0 {
			lastSeq = f.lastSeq
		}
	}

	// An empty last file is left by a crash right after a roll (or its only
	// frame was torn). It holds nothing, but its name still says where the
	// seqs had got to, which matters if every earlier file was pruned.
	nextSeq := lastSeq + 1
	removed := false
	for len(files) > 0 && files[len(files)-1].size == 0 {
		f := files[len(files)-1]
		if err := os.Remove(f.path); err != nil {
			return nil, fmt.Errorf("wal: remove empty file: %w", err)
		}
		nextSeq = max(nextSeq, f.firstSeq)
		files = files[:len(files)-1]
		removed = true
	}

	// Keep appending to the last file if it has room and its seqs run on
	// into nextSeq; otherwise start a new one.
	if n := len(files); n > 0 && files[n-1].size < opts.FileBytes && files[n-1].lastSeq+1 == nextSeq {
		w.active = files[n-1]
		w.sealed = files[:n-1]
		f, err := os.OpenFile(w.active.path, w.writeFlag(), 0)
		if err != nil {
			return nil, fmt.Errorf("wal: %w", err)
		}
		if err := w.setActiveFile(f, w.active.size); err != nil {
			f.Close()
			return nil, err
		}
		if removed && !opts.NoSync {
			if err := syncDir(dir); err != nil {
				w.f.Close()
				return nil, err
			}
		}
	} else {
		w.sealed = files
		// createFile fsyncs the directory, which also makes removals durable.
		var f *os.File
		if w.active, f, err = w.createFile(nextSeq); err != nil {
			return nil, err
		}
		_ = w.setActiveFile(f, 0) // a new file: nothing to read
	}
	for _, f := range w.sealed {
		w.size += f.size
	}
	w.size += w.active.size
	w.nextSeq = nextSeq
	w.activeSince = time.Now()
	w.start()
	w.startSpare()
	return w, nil
}

// listFiles returns the WAL files in dir in seq order.
func listFiles(dir string) ([]*fileInfo, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	var files []*fileInfo
	for _, e := range entries {
		seq, ok := parseFileName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		files = append(files, &fileInfo{
			path:     filepath.Join(dir, e.Name()),
			firstSeq: seq,
			streams:  make(map[string]uint64),
		})
	}
	slices.SortFunc(files, func(a, b *fileInfo) int {
		switch {
		case a.firstSeq < b.firstSeq:
			return -1
		case a.firstSeq > b.firstSeq:
			return 1
		}
		return 0
	})
	return files, nil
}

// scanFile reads f's frames, filling in lastSeq, size and streams. A bad
// frame in the last file truncates it there (the tail a crash tore); in any
// other file it is ErrCorrupt, since that data was acknowledged.
func (w *WAL) scanFile(f *fileInfo, last bool) error {
	flag := os.O_RDONLY
	if last {
		flag = os.O_RDWR // may need to truncate
	}
	h, err := os.OpenFile(f.path, flag, 0)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	defer h.Close()
	st, err := h.Stat()
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	fr := newFrameReader(h, st.Size())
	expect := f.firstSeq
	for {
		pos := fr.pos
		seq, r, err := fr.next(false)
		if err == nil && seq != expect {
			err = &frameError{pos: pos, reason: fmt.Sprintf("seq %d, want %d", seq, expect)}
		}
		if err == io.EOF {
			f.size = fr.pos
			return nil
		}
		var fe *frameError
		if errors.As(err, &fe) {
			if !last {
				return fmt.Errorf("%w: %s: %v", ErrCorrupt, f.path, fe)
			}
			if err := h.Truncate(fe.pos); err != nil {
				return fmt.Errorf("wal: truncate torn tail: %w", err)
			}
			// The truncation must be durable before new frames are acked
			// behind it, or a crash could bring the garbage back.
			if !w.opts.NoSync {
				if err := h.Sync(); err != nil {
					return fmt.Errorf("wal: sync after truncate: %w", err)
				}
			}
			w.truncated = st.Size() - fe.pos
			f.size = fe.pos
			return nil
		}
		if err != nil {
			return fmt.Errorf("wal: read %s: %w", f.path, err)
		}
		f.streams[r.Stream] = seq
		f.lastSeq = seq
		expect++
	}
}

// createFile creates the WAL file for records from seq on and fsyncs the
// directory, so the file still exists after a crash once anything in it
// has been acknowledged.
func (w *WAL) createFile(seq uint64) (*fileInfo, *os.File, error) {
	path := filepath.Join(w.dir, fileName(seq))
	h, err := os.OpenFile(path, w.writeFlag()|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("wal: create: %w", err)
	}
	if !w.opts.NoSync {
		if err := syncDir(w.dir); err != nil {
			h.Close()
			return nil, nil, err
		}
	}
	return &fileInfo{path: path, firstSeq: seq, streams: make(map[string]uint64)}, h, nil
}

// syncDir fsyncs a directory, making file creations and removals in it
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: sync dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: sync dir: %w", err)
	}
	return nil
}
