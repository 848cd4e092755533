package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
)

const (
	frameHeaderSize  = 8                    // length uint32 | crc uint32
	frameVersion     = 1                    // first payload byte
	payloadFixedSize = 1 + 8 + 8 + 2        // version | seq | offset | streamLen
	minPayloadSize   = payloadFixedSize + 1 // a stream is at least one byte
	maxPayloadSize   = 256 << 20            // larger lengths are corrupt, not allocated
	maxStreamLen     = 1<<16 - 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// payloadSize is the payload length of r's frame.
func payloadSize(r Record) int {
	return payloadFixedSize + len(r.Stream) + len(r.Data)
}

// frameSize is the on-disk size of r's frame.
func frameSize(r Record) int {
	return frameHeaderSize + payloadSize(r)
}

// validateRecord rejects records that could not be decoded again, so a bad
// call fails at Append instead of producing an unreadable WAL.
func validateRecord(r Record) error {
	if len(r.Stream) == 0 || len(r.Stream) > maxStreamLen {
		return fmt.Errorf("%w: stream length %d not in 1..%d", ErrInvalidRecord, len(r.Stream), maxStreamLen)
	}
	if n := payloadSize(r); n > maxPayloadSize {
		return fmt.Errorf("%w: frame payload of %d bytes exceeds %d", ErrInvalidRecord, n, maxPayloadSize)
	}
	return nil
}

// appendFrame appends the frame of (seq, r) to buf. r must be valid.
func appendFrame(buf []byte, seq uint64, r Record) []byte {
	n := payloadSize(r)
	buf = slices.Grow(buf, frameHeaderSize+n)
	start := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, uint32(n))
	buf = binary.BigEndian.AppendUint32(buf, 0) // CRC, filled in below
	buf = append(buf, frameVersion)
	buf = binary.BigEndian.AppendUint64(buf, seq)
	buf = binary.BigEndian.AppendUint64(buf, uint64(r.Offset))
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(r.Stream)))
	buf = append(buf, r.Stream...)
	buf = append(buf, r.Data...)
	crc := crc32.Checksum(buf[start+frameHeaderSize:], castagnoli)
	binary.BigEndian.PutUint32(buf[start+4:], crc)
	return buf
}

// decodePayload parses a payload whose CRC has already been checked. The
// returned Data aliases p.
func decodePayload(p []byte) (uint64, Record, error) {
	if len(p) < minPayloadSize {
		return 0, Record{}, fmt.Errorf("payload of %d bytes is too short", len(p))
	}
	if p[0] != frameVersion {
		return 0, Record{}, fmt.Errorf("unknown frame version %d", p[0])
	}
	seq := binary.BigEndian.Uint64(p[1:])
	off := int64(binary.BigEndian.Uint64(p[9:]))
	sl := int(binary.BigEndian.Uint16(p[17:]))
	if sl == 0 || payloadFixedSize+sl > len(p) {
		return 0, Record{}, fmt.Errorf("stream length %d does not fit payload of %d bytes", sl, len(p))
	}
	r := Record{
		Stream: string(p[payloadFixedSize : payloadFixedSize+sl]),
		Offset: off,
		Data:   p[payloadFixedSize+sl:],
	}
	return seq, r, nil
}

// frameError says that the bytes at pos are not an intact frame: torn by a
// crash, or corrupt. Whether that is tolerable depends on the file.
type frameError struct {
	pos    int64
	reason string
}

func (e *frameError) Error() string {
	return fmt.Sprintf("bad frame at offset %d: %s", e.pos, e.reason)
}

// frameReader reads frames from the first size bytes of a file. Knowing the
// size up front lets it call a frame torn from its header alone, without
// allocating or reading a payload that cannot be there.
type frameReader struct {
	r    *bufio.Reader
	pos  int64 // offset of the next frame
	size int64
	hdr  [frameHeaderSize]byte
	buf  []byte // reused payload buffer
}

func newFrameReader(r io.Reader, size int64) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 256<<10), size: size}
}

// next returns the next frame. It returns io.EOF exactly at the end, a
// *frameError if the bytes at the current position are not an intact frame,
// and any other error for I/O failures. With fresh, Data is newly allocated
// (the caller may keep it); otherwise it is only valid until the next call.
func (fr *frameReader) next(fresh bool) (uint64, Record, error) {
	if fr.pos == fr.size {
		return 0, Record{}, io.EOF
	}
	bad := func(format string, args ...any) error {
		return &frameError{pos: fr.pos, reason: fmt.Sprintf(format, args...)}
	}
	if fr.size-fr.pos < frameHeaderSize {
		return 0, Record{}, bad("torn header: %d bytes left", fr.size-fr.pos)
	}
	if err := readFull(fr.r, fr.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, Record{}, bad("file shrank while reading header")
		}
		return 0, Record{}, err
	}
	n := int64(binary.BigEndian.Uint32(fr.hdr[0:4]))
	want := binary.BigEndian.Uint32(fr.hdr[4:8])
	if n < minPayloadSize || n > maxPayloadSize {
		return 0, Record{}, bad("payload length %d out of range", n)
	}
	if fr.pos+frameHeaderSize+n > fr.size {
		return 0, Record{}, bad("torn payload: need %d bytes, %d left", n, fr.size-fr.pos-frameHeaderSize)
	}
	var p []byte
	if fresh {
		p = make([]byte, n)
	} else {
		fr.buf = slices.Grow(fr.buf[:0], int(n))[:n]
		p = fr.buf
	}
	if err := readFull(fr.r, p); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, Record{}, bad("file shrank while reading payload")
		}
		return 0, Record{}, err
	}
	if got := crc32.Checksum(p, castagnoli); got != want {
		return 0, Record{}, bad("crc mismatch: stored %08x, computed %08x", want, got)
	}
	seq, r, err := decodePayload(p)
	if err != nil {
		return 0, Record{}, bad("%v", err)
	}
	fr.pos += frameHeaderSize + n
	return seq, r, nil
}

// readFull is io.ReadFull, but reports a clean EOF as io.ErrUnexpectedEOF
// too: next only reads when it has established that bytes must be there.
func readFull(r io.Reader, p []byte) error {
	_, err := io.ReadFull(r, p)
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
