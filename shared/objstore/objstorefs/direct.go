package objstorefs

import (
	"io"
	"os"
	"sync"

	"github.com/streamline-dev/streamline/shared/directio"
)

// Objects are written with O_DIRECT where the bucket's file system takes
// it (probed by New): the page cache gains nothing from an object just
// written, which is read back only on a read-cache miss or by the merger,
// and copying each object into it was the largest single cost of a
// saturated diskless node with a directory store (22% of all CPU samples).
// The object goes to the disk from an aligned buffer in whole 4 KiB blocks;
// the zeros that fill the last block are cut by a truncate to the object's
// size before the fsync, and the temporary file is renamed over the key
// only after that, so no reader ever sees them. Reads stay buffered.

// directChunk is the most a direct write buffers before writing.
const directChunk = 1 << 20

// chunkPool holds directChunk-sized aligned buffers.
var chunkPool = sync.Pool{New: func() any { return directio.AlignedBuffer(directChunk) }}

// directWriter writes one file from offset 0 through an aligned buffer.
type directWriter struct {
	f      *os.File // opened with directio.Flag
	buf    []byte   // aligned
	pooled bool
	n      int   // bytes in buf
	off    int64 // file offset of buf[0]
}

// newDirectWriter writes f, expecting about size bytes (a small object
// gets a buffer of its own size, a large one a pooled chunk).
func newDirectWriter(f *os.File, size int64) *directWriter {
	if size >= directChunk {
		return &directWriter{f: f, buf: chunkPool.Get().([]byte), pooled: true}
	}
	return &directWriter{f: f, buf: directio.AlignedBuffer(int(directio.RoundUp(max(size, 1))))}
}

func (d *directWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		c := copy(d.buf[d.n:], p)
		d.n += c
		p = p[c:]
		written += c
		if d.n == len(d.buf) {
			if _, err := d.f.WriteAt(d.buf, d.off); err != nil {
				return written, err
			}
			d.off += int64(d.n)
			d.n = 0
		}
	}
	return written, nil
}

// finish writes what is buffered, padded to a whole block, and cuts the
// file to the bytes written.
func (d *directWriter) finish() error {
	defer d.release()
	if d.n == 0 {
		return nil
	}
	padded := int(directio.RoundUp(int64(d.n)))
	clear(d.buf[d.n:padded])
	if _, err := d.f.WriteAt(d.buf[:padded], d.off); err != nil {
		return err
	}
	if padded == d.n {
		return nil
	}
	return d.f.Truncate(d.off + int64(d.n))
}

func (d *directWriter) release() {
	if d.pooled {
		chunkPool.Put(d.buf)
	}
	d.buf, d.pooled = nil, false
}

// writeTemp fills the temporary file tmp through write: directly (a second
// descriptor opened with O_DIRECT) when the bucket writes so, otherwise
// through tmp. The caller fsyncs tmp, which covers both.
func (b *Bucket) writeTemp(tmp *os.File, size int64, write func(io.Writer) error) error {
	if !b.direct.Load() {
		return write(tmp)
	}
	f, err := os.OpenFile(tmp.Name(), os.O_WRONLY|directio.Flag, 0)
	if err != nil {
		// Not expected after the probe; this put and the later ones go
		// through the page cache.
		b.direct.Store(false)
		return write(tmp)
	}
	d := newDirectWriter(f, size)
	err = write(d)
	if err == nil {
		err = d.finish()
	} else {
		d.release()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
