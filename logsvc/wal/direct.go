package wal

import (
	"fmt"
	"io"
	"os"

	"github.com/streamline-dev/streamline/shared/directio"
)

// Direct I/O (Options.DirectIO).
//
// A buffered write copies every WAL byte into the page cache, and the
// kernel later copies it out again to the disk; on a saturated node that
// copy, for the WAL and again for the segments, was most of the CPU the
// node used (a perf profile of local produce at 300k records/s: 54% of the
// kernel's samples in copy_folio_from_iter_atomic, half of them the WAL's).
// Nobody reads the WAL back except at recovery, so it gains nothing from
// the cache: with O_DIRECT the device reads the frames straight from the
// writer's buffer.
//
// O_DIRECT needs the buffer's address, the file offset and the length to
// be multiples of the device's logical block size, so every write covers
// whole 4 KiB blocks (a multiple of every common logical block size): it
// starts at the block holding the end of the file's frames, re-writing
// that block's frames (kept in tail) followed by the group's frames, and
// zeros fill its last block. The frames already in the re-written block
// are written with the bytes they have: a device writes each sector (512
// bytes or more) entirely or not at all, so neither a crash nor a power
// loss can leave a byte that was there changed (the argument PostgreSQL's
// and InnoDB's log writers rest on). A kill of the process does not even
// interrupt the write: the kernel finishes a direct write it started.
//
// The zeros after the frames are what recovery already treats as a torn
// tail (as in a preallocated file); a file is cut to its frames when it is
// sealed, so only the last file can end in them (Close cuts them too,
// unless the file is a preallocated one that ends in zeros anyway). The file format
// is unchanged: a WAL written with direct I/O opens without it and back.
//
// File systems without O_DIRECT (tmpfs) are probed at Open; the WAL then
// writes through the page cache as before.

// directBlock is the alignment of direct writes.
const directBlock = directio.Block

// probeDirect reports whether files in dir can be written with O_DIRECT
// (a variable for tests).
var probeDirect = directio.Supported

// writeFlag is the open flag of a WAL file the writer writes: O_DIRECT
// with direct I/O, where every write has an explicit offset; O_APPEND for
// a plain file otherwise.
func (w *WAL) writeFlag() int {
	if w.direct {
		return os.O_WRONLY | directio.Flag
	}
	return os.O_WRONLY | os.O_APPEND
}

// setActiveFile makes f the file the writer writes, whose frames end at
// size, loading the partly filled block at its end for direct writes.
func (w *WAL) setActiveFile(f *os.File, size int64) error {
	w.f = f
	w.tail = w.tail[:0]
	if !w.direct || size%directBlock == 0 {
		return nil
	}
	// A file written before (without direct I/O, or by an earlier process
	// and cut at Open): read its last partial block through a plain
	// descriptor, since an O_DIRECT read has alignment rules of its own.
	r, err := os.Open(f.Name())
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	defer r.Close()
	base := size &^ (directBlock - 1)
	w.tail = append(w.tail, make([]byte, size-base)...)
	if _, err := io.ReadFull(io.NewSectionReader(r, base, size-base), w.tail); err != nil {
		return fmt.Errorf("wal: read the last block of %s: %w", f.Name(), err)
	}
	return nil
}

// writeDirect writes buf, the frames following the active file's, as
// whole blocks from the block holding the file's end (see above).
func (w *WAL) writeDirect(buf []byte) error {
	size := w.active.size
	base := size &^ (directBlock - 1)
	t := len(w.tail) // == size - base
	n := t + len(buf)
	padded := (n + directBlock - 1) &^ (directBlock - 1)
	if cap(w.dbuf) < padded {
		w.dbuf = directio.AlignedBuffer(padded + padded/4)
	}
	d := w.dbuf[:padded]
	copy(d, w.tail)
	copy(d[t:], buf)
	clear(d[n:])
	if _, err := w.f.WriteAt(d, base); err != nil {
		return err
	}
	end := size + int64(len(buf))
	w.tail = append(w.tail[:0], d[end&^(directBlock-1)-base:n]...)
	return nil
}
