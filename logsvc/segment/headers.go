package segment

import (
	"fmt"
	"io"
	"sync"

	"github.com/streamline-dev/streamline/shared/recbatch"
)

// headerWindow is how much a headerReader reads at once. Small batches are
// then parsed from memory many per syscall, while a large batch is skipped
// without reading its body.
const headerWindow = 16 << 10

// headerReader reads batch headers at arbitrary positions of a segment file
// up to limit (a size snapshot, so concurrent appends beyond it are never
// seen half-written). It is not safe for concurrent use; each reader makes
// its own.
type headerReader struct {
	r      io.ReaderAt
	limit  int64
	buf    []byte
	bufPos int64 // file position of buf[0]
}

func newHeaderReader(r io.ReaderAt, limit int64) *headerReader {
	return &headerReader{r: r, limit: limit}
}

// windows recycles headerReader windows: a reader is made per fetch, and a
// fresh 16 KiB window for each was the log service's largest allocation
// at 10k records/s (266 MB per 100,000 records).
var windows = sync.Pool{New: func() any { b := make([]byte, headerWindow); return &b }}

// release returns the window to the pool; the reader must not be used
// after it.
func (hr *headerReader) release() {
	if hr.buf != nil {
		b := hr.buf[:cap(hr.buf)]
		windows.Put(&b)
		hr.buf = nil
	}
}

// copyRange appends the bytes [start, end) of the file to out if the
// window holds them all, and reports whether it did: a read of the batches
// whose headers were just parsed (the small ones at a partition's tail)
// needs no second read of the file.
func (hr *headerReader) copyRange(out []byte, start, end int64) ([]byte, bool) {
	if start < hr.bufPos || end > hr.bufPos+int64(len(hr.buf)) {
		return out, false
	}
	return append(out, hr.buf[start-hr.bufPos:end-hr.bufPos]...), true
}

// at parses the header of the batch at pos and checks that the whole batch
// lies before limit.
func (hr *headerReader) at(pos int64) (recbatch.Header, error) {
	if pos < 0 || pos+recbatch.HeaderSize > hr.limit {
		return recbatch.Header{}, fmt.Errorf("%w at position %d (limit %d)", recbatch.ErrTruncated, pos, hr.limit)
	}
	if pos < hr.bufPos || pos+recbatch.HeaderSize > hr.bufPos+int64(len(hr.buf)) {
		if hr.buf == nil {
			hr.buf = *windows.Get().(*[]byte)
		}
		hr.buf = hr.buf[:min(int64(cap(hr.buf)), hr.limit-pos)]
		if _, err := hr.r.ReadAt(hr.buf, pos); err != nil {
			hr.buf = hr.buf[:0]
			return recbatch.Header{}, err
		}
		hr.bufPos = pos
	}
	h, err := recbatch.ParseHeader(hr.buf[pos-hr.bufPos:])
	if err != nil {
		return h, fmt.Errorf("position %d: %w", pos, err)
	}
	if int64(h.Size()) > hr.limit-pos {
		return h, fmt.Errorf("%w: batch at position %d needs %d bytes, %d left", recbatch.ErrTruncated, pos, h.Size(), hr.limit-pos)
	}
	return h, nil
}

// marker reads the record of the control batch h at pos (the whole batch is
// before limit: at checked it) and returns what it says. Control batches are
// small, so their bytes are usually in the window already.
func (hr *headerReader) marker(pos int64, h recbatch.Header) (recbatch.Marker, int32, error) {
	size := int64(h.Size())
	if pos >= hr.bufPos && pos+size <= hr.bufPos+int64(len(hr.buf)) {
		m, epoch := recbatch.EndTxnMarkerOf(hr.buf[pos-hr.bufPos : pos-hr.bufPos+size])
		return m, epoch, nil
	}
	b := make([]byte, size)
	if _, err := hr.r.ReadAt(b, pos); err != nil {
		return recbatch.MarkerNone, 0, err
	}
	m, epoch := recbatch.EndTxnMarkerOf(b)
	return m, epoch, nil
}

// verify returns pos if the batch there starts at offset at, as the index
// entry that gave pos says, and 0 otherwise. Open checks index files only
// loosely (reading every entry would mean reading the whole segment), so a
// damaged entry that looked plausible is caught here, and the reader falls
// back to scanning the segment from its start instead of parsing garbage.
func (hr *headerReader) verify(pos, at int64) int64 {
	if pos == 0 {
		return 0
	}
	if h, err := hr.at(pos); err == nil && h.BaseOffset == at {
		return pos
	}
	return 0
}

// seek scans forward from the index position (pos, at) to the batch
// containing offset, returning its position and header. It fails if offset
// is not in [at, limit).
func (hr *headerReader) seek(pos, at, offset int64) (int64, recbatch.Header, error) {
	pos = hr.verify(pos, at)
	for {
		h, err := hr.at(pos)
		if err != nil {
			return pos, h, err
		}
		if h.BaseOffset > offset {
			return pos, h, fmt.Errorf("%w: batch at position %d starts at offset %d, past the wanted %d", ErrCorrupt, pos, h.BaseOffset, offset)
		}
		if h.NextOffset() > offset {
			return pos, h, nil
		}
		pos += int64(h.Size())
	}
}
