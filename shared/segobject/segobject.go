// Package segobject is the format of a segment object: one partition's
// contiguous record batches in object storage, as the uploader fleet's
// merger writes them from many small intake ranges, and as hybrid topics
// upload their rolled local segments (uploader/segupload).
//
// An object is
//
//	"SLSEGv1\n"                        header, 8 bytes
//	record batches                     byte for byte as produced (CRCs unchanged), offsets contiguous
//	index entries, 24 bytes each       one per block: base offset, position, max timestamp
//	index CRC-32C, 4 bytes             over the entries
//	footer, 24 bytes                   index position (8), index length incl. CRC (4), entry count (4), "SLSEGEND"
//
// A block is a run of whole batches starting at an index entry; a new block
// starts at the first batch at or past IndexInterval bytes after the
// previous entry, as Kafka's index.interval.bytes does. An entry's max
// timestamp is the largest batch max timestamp in its block, so one index
// serves both lookups:
//
//   - by offset: the last entry whose base offset is <= X starts the block
//     holding X;
//   - by time: the first entry whose max timestamp is >= T starts the
//     first block that can hold a record at or after T.
//
// The manifest entry of a segment carries the index's position and length,
// so a reader never reads the footer: one range GET for the index (cached),
// one for the bytes. The footer makes the object self-describing for tools
// and audits (ReadFooter).
//
// Writer streams: it holds only the index (24 bytes per block, 0.6% of
// the data at the default interval), never the batches.
package segobject

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"

	"github.com/streamline-dev/streamline/shared/recbatch"
)

const (
	headerMagic = "SLSEGv1\n"
	footerMagic = "SLSEGEND"
	// HeaderSize is where the first batch starts.
	HeaderSize = 8
	// FooterSize is the fixed tail of every object.
	FooterSize = 24
	entrySize  = 24
	// DefaultIndexInterval is the data bytes between index entries (Kafka's
	// index.interval.bytes default).
	DefaultIndexInterval = 4096
	// maxEntries bounds what a decoder accepts, so a corrupt length cannot
	// make it allocate without limit (1 GiB of 64-byte batches).
	maxEntries = 1 << 24
)

// ErrCorrupt wraps every decoding failure and every batch that fails its
// checks on the way out of an object.
var ErrCorrupt = errors.New("segobject: corrupt segment object")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Entry is one index entry: the block of batches from Position starts with
// the batch at BaseOffset; MaxTimestamp is the largest max timestamp of its
// batches.
type Entry struct {
	BaseOffset   int64
	Position     int64
	MaxTimestamp int64
}

// Info describes a written object; the manifest entry is made of it.
type Info struct {
	Size         int64 // the whole object
	DataPos      int64 // = HeaderSize
	DataLen      int64
	IndexPos     int64
	IndexLen     int64 // entries and CRC
	BaseOffset   int64
	LastOffset   int64
	MaxTimestamp int64
	// Batches counts the batches given to Append (blocks copied whole by
	// AppendBlocks are not parsed, so not counted).
	Batches int
}

// Writer writes one segment object to an io.Writer.
type Writer struct {
	w        *bufio.Writer
	interval int64
	pos      int64 // bytes written so far
	index    []Entry
	lastIdx  int64 // position of the last entry
	info     Info
	err      error
}

// NewWriter starts an object on w; interval is the index interval in bytes
// (<= 0: DefaultIndexInterval).
func NewWriter(w io.Writer, interval int64) *Writer {
	if interval <= 0 {
		interval = DefaultIndexInterval
	}
	sw := &Writer{w: bufio.NewWriterSize(w, 64<<10), interval: interval, info: Info{BaseOffset: -1, LastOffset: -1, MaxTimestamp: -1}}
	sw.write([]byte(headerMagic))
	return sw
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	n, err := w.w.Write(b)
	w.pos += int64(n)
	w.err = err
}

// Append copies one whole record batch. Batches must be contiguous: each
// starts at the offset after the previous one's last.
func (w *Writer) Append(batch []byte) error {
	if w.err != nil {
		return w.err
	}
	h, err := recbatch.ParseHeader(batch)
	if err != nil || h.Size() != len(batch) {
		return fmt.Errorf("segobject: not one whole record batch (%v)", err)
	}
	if w.info.LastOffset >= 0 && h.BaseOffset != w.info.LastOffset+1 {
		return fmt.Errorf("segobject: batch at offset %d does not follow %d", h.BaseOffset, w.info.LastOffset)
	}
	if len(w.index) == 0 || w.pos-w.lastIdx >= w.interval {
		w.index = append(w.index, Entry{BaseOffset: h.BaseOffset, Position: w.pos, MaxTimestamp: h.MaxTimestamp})
		w.lastIdx = w.pos
	} else if e := &w.index[len(w.index)-1]; h.MaxTimestamp > e.MaxTimestamp {
		e.MaxTimestamp = h.MaxTimestamp
	}
	if w.info.BaseOffset < 0 {
		w.info.BaseOffset = h.BaseOffset
	}
	w.info.LastOffset = h.LastOffset()
	w.info.MaxTimestamp = max(w.info.MaxTimestamp, h.MaxTimestamp)
	w.info.Batches++
	w.write(batch)
	return w.err
}

// AppendBlocks copies whole blocks of another segment: data starts at a
// block boundary and entries are that segment's index entries for it,
// their positions relative to the start of data. The blocks keep their
// index entries (shifted), so merging segments reads no batch headers and
// the merged object's size is known before it is written (Size).
// The first batch must follow the last one appended.
func (w *Writer) AppendBlocks(data []byte, entries []Entry) error {
	if w.err != nil {
		return w.err
	}
	if len(entries) == 0 || entries[0].Position != 0 || len(data) == 0 || data0(entries) >= len(data) {
		return errors.New("segobject: AppendBlocks needs data starting with its first entry's block")
	}
	if w.info.LastOffset >= 0 && entries[0].BaseOffset != w.info.LastOffset+1 {
		return fmt.Errorf("segobject: block at offset %d does not follow %d", entries[0].BaseOffset, w.info.LastOffset)
	}
	last := int64(-1)
	n, err := recbatch.Iterate(data[data0(entries):], false, func(h recbatch.Header, _ []byte) error {
		last = h.LastOffset()
		return nil
	})
	if err != nil || data0(entries)+n != len(data) {
		return fmt.Errorf("segobject: blocks do not end with a whole batch (%v)", err)
	}
	for _, e := range entries {
		e.Position += w.pos
		w.index = append(w.index, e)
		w.lastIdx = e.Position
		w.info.MaxTimestamp = max(w.info.MaxTimestamp, e.MaxTimestamp)
	}
	if w.info.BaseOffset < 0 {
		w.info.BaseOffset = entries[0].BaseOffset
	}
	w.info.LastOffset = last
	w.write(data)
	return w.err
}

// data0 is where the last block of entries starts: AppendBlocks parses
// only that block's batches to learn the last offset.
func data0(entries []Entry) int { return int(entries[len(entries)-1].Position) }

// Size is the size of an object holding dataLen bytes of batches in
// blocks index entries.
func Size(dataLen int64, blocks int) int64 {
	return HeaderSize + dataLen + int64(blocks)*entrySize + 4 + FooterSize
}

// Close writes the index and footer and flushes; it does not close the
// underlying writer. An object needs at least one batch.
func (w *Writer) Close() (Info, error) {
	if w.err != nil {
		return Info{}, w.err
	}
	if len(w.index) == 0 {
		return Info{}, errors.New("segobject: no batches")
	}
	w.info.DataPos, w.info.DataLen, w.info.IndexPos = HeaderSize, w.pos-HeaderSize, w.pos
	idx := encodeIndex(w.index)
	w.write(idx)
	var f [FooterSize]byte
	binary.BigEndian.PutUint64(f[0:8], uint64(w.info.IndexPos))
	binary.BigEndian.PutUint32(f[8:12], uint32(len(idx)))
	binary.BigEndian.PutUint32(f[12:16], uint32(len(w.index)))
	copy(f[16:], footerMagic)
	w.write(f[:])
	if w.err == nil {
		w.err = w.w.Flush()
	}
	if w.err != nil {
		return Info{}, w.err
	}
	w.info.IndexLen, w.info.Size = int64(len(idx)), w.pos
	return w.info, nil
}

func encodeIndex(entries []Entry) []byte {
	out := make([]byte, 0, len(entries)*entrySize+4)
	for _, e := range entries {
		out = binary.BigEndian.AppendUint64(out, uint64(e.BaseOffset))
		out = binary.BigEndian.AppendUint64(out, uint64(e.Position))
		out = binary.BigEndian.AppendUint64(out, uint64(e.MaxTimestamp))
	}
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

// Index is a decoded segment index.
type Index struct {
	Entries []Entry
	// End is where the data ends (the index position).
	End int64
	// LastOffset is the segment's last offset (from the manifest; the
	// index alone does not know it).
	LastOffset int64
	// runMax[i] is the max timestamp of entries[0..i], so a time lookup is
	// a binary search even when timestamps are not monotonic.
	runMax []int64
}

// ParseIndex decodes the index bytes (entries and CRC) of a segment whose
// index starts at indexPos and whose offsets end at lastOffset, checking
// the CRC and that entries are ordered and lie in the data.
func ParseIndex(b []byte, indexPos, lastOffset int64) (*Index, error) {
	if len(b) < 4+entrySize || (len(b)-4)%entrySize != 0 {
		return nil, fmt.Errorf("%w: index of %d bytes", ErrCorrupt, len(b))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: index CRC mismatch", ErrCorrupt)
	}
	n := len(body) / entrySize
	if n > maxEntries {
		return nil, fmt.Errorf("%w: %d index entries", ErrCorrupt, n)
	}
	ix := &Index{Entries: make([]Entry, n), End: indexPos, LastOffset: lastOffset, runMax: make([]int64, n)}
	for i := range ix.Entries {
		r := body[i*entrySize:]
		e := Entry{BaseOffset: int64(binary.BigEndian.Uint64(r)), Position: int64(binary.BigEndian.Uint64(r[8:])),
			MaxTimestamp: int64(binary.BigEndian.Uint64(r[16:]))}
		switch {
		case i == 0 && e.Position != HeaderSize,
			i > 0 && (e.Position <= ix.Entries[i-1].Position || e.BaseOffset <= ix.Entries[i-1].BaseOffset),
			e.Position >= indexPos, e.BaseOffset > lastOffset:
			return nil, fmt.Errorf("%w: index entry %d (offset %d at %d) out of order or out of bounds", ErrCorrupt, i, e.BaseOffset, e.Position)
		}
		ix.Entries[i] = e
		ix.runMax[i] = e.MaxTimestamp
		if i > 0 {
			ix.runMax[i] = max(ix.runMax[i], ix.runMax[i-1])
		}
	}
	return ix, nil
}

// BaseOffset is the segment's first offset.
func (ix *Index) BaseOffset() int64 { return ix.Entries[0].BaseOffset }

// Block is a run of whole batches: bytes [Pos, End) of the object, the
// first batch at BaseOffset.
type Block struct{ Pos, End, BaseOffset int64 }

// Find returns the block holding offset; ok is false when offset is
// outside the segment.
func (ix *Index) Find(offset int64) (b Block, ok bool) {
	if offset < ix.BaseOffset() || offset > ix.LastOffset {
		return Block{}, false
	}
	return ix.block(sort.Search(len(ix.Entries), func(i int) bool { return ix.Entries[i].BaseOffset > offset }) - 1), true
}

// FindTime returns the first block whose records may have a timestamp at
// or after ts; ok is false when no record of the segment can.
func (ix *Index) FindTime(ts int64) (b Block, ok bool) {
	i := sort.Search(len(ix.runMax), func(i int) bool { return ix.runMax[i] >= ts })
	if i == len(ix.runMax) {
		return Block{}, false
	}
	return ix.block(i), true
}

// ReadEnd rounds a read that starts at pos and wants about want bytes up to
// the end of a block, so a read never ends inside a batch; it never passes
// the end of the data.
func (ix *Index) ReadEnd(pos, want int64) int64 {
	target := pos + max(want, 1)
	i := sort.Search(len(ix.Entries), func(i int) bool { return ix.Entries[i].Position >= target })
	if i == len(ix.Entries) {
		return ix.End
	}
	return ix.Entries[i].Position
}

// EntriesIn returns the entries of the blocks in [pos, end), positions
// made relative to pos (for Writer.AppendBlocks); pos and end must be
// block boundaries (ReadEnd gives them).
func (ix *Index) EntriesIn(pos, end int64) []Entry {
	i := sort.Search(len(ix.Entries), func(i int) bool { return ix.Entries[i].Position >= pos })
	var out []Entry
	for ; i < len(ix.Entries) && ix.Entries[i].Position < end; i++ {
		e := ix.Entries[i]
		e.Position -= pos
		out = append(out, e)
	}
	return out
}

func (ix *Index) block(i int) Block {
	b := Block{Pos: ix.Entries[i].Position, End: ix.End, BaseOffset: ix.Entries[i].BaseOffset}
	if i+1 < len(ix.Entries) {
		b.End = ix.Entries[i+1].Position
	}
	return b
}

// Verify checks bytes read from a segment from a block start: whole
// batches, each with a valid CRC, offsets contiguous from first (the
// block's base offset), none past last (the segment's last offset). A
// reader calls it on every range it GETs, so a corrupt or truncated object
// is an error, never wrong bytes.
func Verify(data []byte, first, last int64) error {
	next := first
	valid, err := recbatch.Iterate(data, true, func(h recbatch.Header, _ []byte) error {
		if h.BaseOffset != next {
			return fmt.Errorf("batch at offset %d where %d was expected", h.BaseOffset, next)
		}
		if h.LastOffset() > last {
			return fmt.Errorf("batch ends at offset %d, past the segment's last %d", h.LastOffset(), last)
		}
		next = h.NextOffset()
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if valid != len(data) {
		return fmt.Errorf("%w: %d of %d bytes are whole batches", ErrCorrupt, valid, len(data))
	}
	return nil
}

// ReadFooter decodes an object's footer (its last FooterSize bytes) given
// the object's size, returning where the index is and its length.
func ReadFooter(footer []byte, size int64) (indexPos, indexLen int64, err error) {
	if len(footer) != FooterSize || string(footer[16:]) != footerMagic {
		return 0, 0, fmt.Errorf("%w: bad footer", ErrCorrupt)
	}
	indexPos, indexLen = int64(binary.BigEndian.Uint64(footer)), int64(binary.BigEndian.Uint32(footer[8:]))
	if n := int64(binary.BigEndian.Uint32(footer[12:])); indexLen != n*entrySize+4 || indexPos < HeaderSize || indexPos+indexLen != size-FooterSize {
		return 0, 0, fmt.Errorf("%w: footer's index at %d+%d does not fit an object of %d bytes", ErrCorrupt, indexPos, indexLen, size)
	}
	return indexPos, indexLen, nil
}
