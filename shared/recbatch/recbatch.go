// Package recbatch parses, validates and patches Kafka RecordBatch (magic v2)
// bytes without re-encoding them, and builds the one batch a broker writes
// itself: the transaction marker (control.go).
//
// Streamline stores and forwards record batches exactly as the producer sent
// them. The only bytes a broker may change are the ones the CRC does not
// cover: the baseOffset (bytes 0–7) and the partitionLeaderEpoch (bytes
// 12–15). Everything from the attributes field to the end is covered by a
// CRC-32C that producers compute and consumers verify, so it is never touched.
//
// Layout of the 61-byte header (big-endian):
//
//	offset  size  field
//	0       8     baseOffset
//	8       4     batchLength (bytes after this field)
//	12      4     partitionLeaderEpoch
//	16      1     magic (must be 2)
//	17      4     crc (CRC-32C of bytes 21..end)
//	21      2     attributes
//	23      4     lastOffsetDelta
//	27      8     baseTimestamp
//	35      8     maxTimestamp
//	43      8     producerId
//	51      2     producerEpoch
//	53      4     baseSequence
//	57      4     recordCount
package recbatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// HeaderSize is the size of a v2 RecordBatch header.
const HeaderSize = 61

// lengthFieldEnd is where the batchLength field ends: batchLength counts the
// bytes after it.
const lengthFieldEnd = 12

// crcStart is the first byte covered by the CRC.
const crcStart = 21

var (
	// ErrTruncated means the bytes end before the batch does.
	ErrTruncated = errors.New("recbatch: truncated record batch")
	// ErrCorrupt means the CRC does not match the contents (Kafka CORRUPT_MESSAGE).
	ErrCorrupt = errors.New("recbatch: crc mismatch")
	// ErrMagic means the batch is not magic v2; older message formats are not accepted.
	ErrMagic = errors.New("recbatch: unsupported magic (only v2 record batches are accepted)")
	// ErrInvalid means the header fields are inconsistent (Kafka INVALID_RECORD).
	ErrInvalid = errors.New("recbatch: invalid record batch")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Attribute bits.
const (
	compressionMask   = 0x07
	timestampTypeBit  = 0x08
	transactionalBit  = 0x10
	controlBit        = 0x20
	deleteHorizonBit  = 0x40
	NoProducerID      = -1
	NoSequence        = -1
	NoPartitionLeader = -1
)

// Compression codecs as encoded in the attributes.
const (
	CompressionNone   = 0
	CompressionGzip   = 1
	CompressionSnappy = 2
	CompressionLZ4    = 3
	CompressionZstd   = 4
)

// Header is the decoded fixed header of one RecordBatch.
type Header struct {
	BaseOffset           int64
	BatchLength          int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	RecordCount          int32
	// Marker is not a header field: for a control batch it is what the
	// batch's record says (commit or abort), filled by scans that read
	// control records (the local engine's ScanHeaders); MarkerNone when
	// nobody read it (ParseHeader, Validate).
	Marker Marker
	// CoordinatorEpoch is not a header field either: for a commit or
	// abort marker read like Marker, the transaction coordinator's epoch
	// its record carries (0 when not read).
	CoordinatorEpoch int32
}

// Size is the whole batch's size in bytes, header included.
func (h Header) Size() int { return lengthFieldEnd + int(h.BatchLength) }

// LastOffset is the offset of the last record in the batch.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset the batch after this one starts at.
func (h Header) NextOffset() int64 { return h.LastOffset() + 1 }

// Compression returns the codec id (CompressionNone..CompressionZstd).
func (h Header) Compression() int { return int(h.Attributes & compressionMask) }

// LogAppendTime reports whether the batch's timestamps are broker log-append times.
func (h Header) LogAppendTime() bool { return h.Attributes&timestampTypeBit != 0 }

// Transactional reports whether the batch belongs to a transaction.
func (h Header) Transactional() bool { return h.Attributes&transactionalBit != 0 }

// Control reports whether the batch is a control batch (transaction markers).
func (h Header) Control() bool { return h.Attributes&controlBit != 0 }

// Idempotent reports whether the batch carries a producer id.
func (h Header) Idempotent() bool { return h.ProducerID >= 0 }

// LastSequence is the sequence number of the last record, wrapping at int32 as Kafka does.
func (h Header) LastSequence() int32 {
	if h.BaseSequence == NoSequence {
		return NoSequence
	}
	last := int64(h.BaseSequence) + int64(h.LastOffsetDelta)
	if last > int64(^uint32(0)>>1) {
		last -= int64(^uint32(0)>>1) + 1
	}
	return int32(last)
}

// ParseHeader decodes the header at the start of b. It checks only that the
// header is present and that the length field is sane; it does not read or
// verify the body. b may hold more bytes than the batch.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrTruncated
	}
	h := Header{
		BaseOffset:           int64(binary.BigEndian.Uint64(b[0:8])),
		BatchLength:          int32(binary.BigEndian.Uint32(b[8:12])),
		PartitionLeaderEpoch: int32(binary.BigEndian.Uint32(b[12:16])),
		Magic:                int8(b[16]),
		CRC:                  binary.BigEndian.Uint32(b[17:21]),
		Attributes:           int16(binary.BigEndian.Uint16(b[21:23])),
		LastOffsetDelta:      int32(binary.BigEndian.Uint32(b[23:27])),
		BaseTimestamp:        int64(binary.BigEndian.Uint64(b[27:35])),
		MaxTimestamp:         int64(binary.BigEndian.Uint64(b[35:43])),
		ProducerID:           int64(binary.BigEndian.Uint64(b[43:51])),
		ProducerEpoch:        int16(binary.BigEndian.Uint16(b[51:53])),
		BaseSequence:         int32(binary.BigEndian.Uint32(b[53:57])),
		RecordCount:          int32(binary.BigEndian.Uint32(b[57:61])),
	}
	if h.BatchLength < HeaderSize-lengthFieldEnd {
		return h, fmt.Errorf("%w: batchLength %d is shorter than the header", ErrInvalid, h.BatchLength)
	}
	if h.Magic != 2 {
		return h, fmt.Errorf("%w: magic %d", ErrMagic, h.Magic)
	}
	return h, nil
}

// Validate fully checks the single batch at the start of b: the header, that
// b holds the whole batch, the CRC, and that counts and deltas agree. It
// returns the header; the batch occupies b[:h.Size()].
func Validate(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if h.Size() > len(b) {
		return h, fmt.Errorf("%w: batch needs %d bytes, have %d", ErrTruncated, h.Size(), len(b))
	}
	if crc32.Checksum(b[crcStart:h.Size()], castagnoli) != h.CRC {
		return h, ErrCorrupt
	}
	if h.LastOffsetDelta < 0 {
		return h, fmt.Errorf("%w: negative lastOffsetDelta %d", ErrInvalid, h.LastOffsetDelta)
	}
	if h.RecordCount < 0 {
		return h, fmt.Errorf("%w: negative record count %d", ErrInvalid, h.RecordCount)
	}
	// An uncompressed, non-control batch has exactly lastOffsetDelta+1 records;
	// compaction may leave gaps, but a producer never sends them.
	if h.RecordCount == 0 && !h.Control() {
		return h, fmt.Errorf("%w: empty record batch", ErrInvalid)
	}
	if h.RecordCount > 0 && int64(h.RecordCount) > int64(h.LastOffsetDelta)+1 {
		return h, fmt.Errorf("%w: %d records but lastOffsetDelta %d", ErrInvalid, h.RecordCount, h.LastOffsetDelta)
	}
	return h, nil
}

// ValidateProduce checks the records of one partition in a produce request.
// Like Kafka (produce v3+), it requires exactly one v2 batch that fills b.
func ValidateProduce(b []byte) (Header, error) {
	h, err := Validate(b)
	if err != nil {
		return h, err
	}
	if h.Size() != len(b) {
		return h, fmt.Errorf("%w: produce carries %d trailing bytes after the batch (exactly one batch per partition is allowed)", ErrInvalid, len(b)-h.Size())
	}
	if h.Control() {
		return h, fmt.Errorf("%w: clients may not produce control batches", ErrInvalid)
	}
	return h, nil
}

// SetBaseOffset patches the baseOffset of the batch at the start of b. The
// CRC does not cover it, so the batch stays valid.
func SetBaseOffset(b []byte, offset int64) {
	binary.BigEndian.PutUint64(b[0:8], uint64(offset))
}

// SetPartitionLeaderEpoch patches the partitionLeaderEpoch of the batch at
// the start of b (also outside the CRC), as Kafka brokers do on append so that
// consumers can run OffsetForLeaderEpoch truncation detection.
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[12:16], uint32(epoch))
}

// Iterate walks the consecutive batches in b, calling fn with each header
// and its bytes. It stops at the first error from fn or from parsing; a
// trailing partial batch yields ErrTruncated together with the offset in b
// where the valid prefix ends, which is how callers find torn tails.
func Iterate(b []byte, verifyCRC bool, fn func(h Header, batch []byte) error) (validPrefix int, err error) {
	pos := 0
	for pos < len(b) {
		var h Header
		if verifyCRC {
			h, err = Validate(b[pos:])
		} else {
			h, err = ParseHeader(b[pos:])
			if err == nil && h.Size() > len(b)-pos {
				err = ErrTruncated
			}
		}
		if err != nil {
			return pos, err
		}
		if err := fn(h, b[pos:pos+h.Size()]); err != nil {
			return pos, err
		}
		pos += h.Size()
	}
	return pos, nil
}
