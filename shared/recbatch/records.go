package recbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// MaxDecompressedSize bounds the decompressed records section of one batch.
// Batches are limited by their compressed size on produce, so without this a
// few kilobytes of gzip could make the broker allocate gigabytes.
const MaxDecompressedSize = 64 << 20

// maxDecompressed is MaxDecompressedSize; tests lower it to exercise the
// limit without compressing 64 MiB.
var maxDecompressed = MaxDecompressedSize

// ErrTooLarge means a batch decompresses to more than MaxDecompressedSize.
var ErrTooLarge = errors.New("recbatch: decompressed records exceed the size limit")

// RecordMeta is the per-record information needed for timestamp lookups.
type RecordMeta struct {
	OffsetDelta int32
	Timestamp   int64 // absolute: baseTimestamp + timestampDelta, or maxTimestamp for LogAppendTime batches
}

// RecordTimestamps decodes the records of the single batch at the start of
// batch (decompressing them if needed) and returns each record's offset delta
// and absolute timestamp, in order. Keys, values and headers are skipped
// using each record's length prefix, so they are not validated. The CRC is
// not checked here; callers that read from disk or the network use Validate.
func RecordTimestamps(batch []byte) ([]RecordMeta, error) {
	h, err := ParseHeader(batch)
	if err != nil {
		return nil, err
	}
	if h.Size() > len(batch) {
		return nil, fmt.Errorf("%w: batch needs %d bytes, have %d", ErrTruncated, h.Size(), len(batch))
	}
	if h.RecordCount < 0 {
		return nil, fmt.Errorf("%w: negative record count %d", ErrInvalid, h.RecordCount)
	}
	recs, err := decompress(h.Compression(), batch[HeaderSize:h.Size()])
	if err != nil {
		return nil, err
	}
	// Every record takes at least 7 bytes (length, attributes, timestamp
	// delta, offset delta, key length, value length, header count), so a
	// lying recordCount cannot make us preallocate more than the data allows.
	metas := make([]RecordMeta, 0, min(int(h.RecordCount), len(recs)/7))
	for i := 0; i < int(h.RecordCount); i++ {
		length, n := binary.Varint(recs)
		if n <= 0 || length < 0 || length > int64(len(recs)-n) {
			return nil, fmt.Errorf("%w: record %d: bad length", ErrInvalid, i)
		}
		rec := recs[n : n+int(length)]
		recs = recs[n+int(length):]
		if len(rec) < 1 {
			return nil, fmt.Errorf("%w: record %d: empty", ErrInvalid, i)
		}
		rec = rec[1:] // attributes: unused in v2
		tsDelta, n := binary.Varint(rec)
		if n <= 0 {
			return nil, fmt.Errorf("%w: record %d: bad timestamp delta", ErrInvalid, i)
		}
		rec = rec[n:]
		offDelta, n := binary.Varint(rec)
		if n <= 0 || offDelta < 0 || offDelta > math.MaxInt32 {
			return nil, fmt.Errorf("%w: record %d: bad offset delta", ErrInvalid, i)
		}
		ts := h.BaseTimestamp + tsDelta
		if h.LogAppendTime() {
			// The broker stamps only the batch; records keep the producer's
			// deltas, which Kafka ignores for LogAppendTime batches.
			ts = h.MaxTimestamp
		}
		metas = append(metas, RecordMeta{OffsetDelta: int32(offDelta), Timestamp: ts})
	}
	if len(recs) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last of %d records", ErrInvalid, len(recs), h.RecordCount)
	}
	return metas, nil
}

// xerialMagic starts Snappy data framed by the Java client (snappy-java's
// SnappyOutputStream): the magic, then two int32 version fields, then
// blocks each prefixed by an int32 compressed length.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderSize = 16

// zstdDecoder is shared: DecodeAll is safe for concurrent use, and creating
// a decoder per call allocates its window buffers every time.
var zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderMaxMemory(MaxDecompressedSize), zstd.WithDecoderConcurrency(0))
})

func decompress(codec int, b []byte) ([]byte, error) {
	var out []byte
	var err error
	switch codec {
	case CompressionNone:
		return b, nil
	case CompressionGzip:
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(b)); err == nil {
			out, err = readLimited(zr)
		}
	case CompressionSnappy:
		out, err = decodeSnappy(b)
	case CompressionLZ4:
		out, err = readLimited(lz4.NewReader(bytes.NewReader(b)))
	case CompressionZstd:
		var d *zstd.Decoder
		if d, err = zstdDecoder(); err == nil {
			out, err = d.DecodeAll(b, nil)
			if errors.Is(err, zstd.ErrDecoderSizeExceeded) || len(out) > maxDecompressed {
				err = ErrTooLarge
			}
		}
	default:
		return nil, fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, codec)
	}
	if errors.Is(err, ErrTooLarge) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: decompressing codec %d: %v", ErrInvalid, codec, err)
	}
	return out, nil
}

// readLimited reads r to the end, failing once it passes MaxDecompressedSize.
func readLimited(r io.Reader) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, int64(maxDecompressed)+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxDecompressed {
		return nil, ErrTooLarge
	}
	return out, nil
}

// decodeSnappy accepts both a raw Snappy block and xerial framing. Each
// block's decoded length is read from its preamble and checked before
// anything is allocated.
func decodeSnappy(b []byte) ([]byte, error) {
	if !bytes.HasPrefix(b, xerialMagic) {
		return decodeSnappyBlock(nil, b)
	}
	if len(b) < xerialHeaderSize {
		return nil, errors.New("short xerial header")
	}
	var out []byte
	for pos := xerialHeaderSize; pos < len(b); {
		if len(b)-pos < 4 {
			return nil, errors.New("truncated xerial block length")
		}
		n := int(binary.BigEndian.Uint32(b[pos:]))
		pos += 4
		if n > len(b)-pos {
			return nil, errors.New("truncated xerial block")
		}
		var err error
		if out, err = decodeSnappyBlock(out, b[pos:pos+n]); err != nil {
			return nil, err
		}
		pos += n
	}
	return out, nil
}

// decodeSnappyBlock appends the decoded block to dst. s2 decodes standard
// Snappy blocks (it is a superset of the format).
func decodeSnappyBlock(dst, block []byte) ([]byte, error) {
	n, err := s2.DecodedLen(block)
	if err != nil {
		return nil, err
	}
	if n > maxDecompressed-len(dst) {
		return nil, ErrTooLarge
	}
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	if _, err := s2.Decode(dst[start:], block); err != nil {
		return nil, err
	}
	return dst, nil
}
