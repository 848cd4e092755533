package objectfmt

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"time"
)

const (
	headerMagic = "SLOBJv1\n"
	footerMagic = "SLOBJEND"
	// HeaderSize and FooterSize are the fixed parts of every object.
	HeaderSize = 8
	FooterSize = 24
	entrySize  = 16 + 4 + 8 + 8 + 8 + 8 + 8
	// maxEntries bounds what a decoder accepts, so a corrupt count cannot
	// make it allocate without limit.
	maxEntries = 1 << 20
)

// ErrCorrupt wraps every decoding failure.
var ErrCorrupt = errors.New("objectfmt: corrupt object")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Section is one partition's contiguous bytes in an object.
type Section struct {
	TopicID      [16]byte
	Partition    int32
	Position     int64 // byte offset in the object
	Length       int64
	BaseOffset   int64
	LastOffset   int64
	MaxTimestamp int64
}

// Builder assembles an object. Sections are written in the order their
// partitions first appear; batches of one partition must be added in
// offset order and end up contiguous.
type Builder struct {
	order []sectionKey
	parts map[sectionKey]*pending
	size  int
}

type sectionKey struct {
	topic     [16]byte
	partition int32
}

type pending struct {
	data             [][]byte
	base, last, maxT int64
	length           int64
}

// NewBuilder returns an empty builder.
func NewBuilder() *Builder { return &Builder{parts: map[sectionKey]*pending{}} }

// Add appends one record batch of a partition. base and last are the
// batch's first and last offsets, maxTimestamp its max timestamp.
func (b *Builder) Add(topic [16]byte, partition int32, batch []byte, base, last, maxTimestamp int64) error {
	k := sectionKey{topic, partition}
	p, ok := b.parts[k]
	if !ok {
		p = &pending{base: base, last: -1, maxT: -1}
		b.parts[k] = p
		b.order = append(b.order, k)
	}
	if p.last >= 0 && base != p.last+1 {
		return fmt.Errorf("objectfmt: partition %d: batch at %d does not follow %d", partition, base, p.last)
	}
	p.data = append(p.data, batch)
	p.last = last
	p.length += int64(len(batch))
	p.maxT = max(p.maxT, maxTimestamp)
	b.size += len(batch)
	return nil
}

// Len is the number of data bytes added.
func (b *Builder) Len() int { return b.size }

// Build encodes the object and returns it with its sections (positions
// filled in), in section order.
func (b *Builder) Build() ([]byte, []Section) {
	out := make([]byte, 0, HeaderSize+b.size+4+len(b.order)*entrySize+FooterSize)
	out = append(out, headerMagic...)
	sections := make([]Section, 0, len(b.order))
	for _, k := range b.order {
		p := b.parts[k]
		s := Section{TopicID: k.topic, Partition: k.partition, Position: int64(len(out)), Length: p.length,
			BaseOffset: p.base, LastOffset: p.last, MaxTimestamp: p.maxT}
		for _, d := range p.data {
			out = append(out, d...)
		}
		sections = append(sections, s)
	}
	indexPos := len(out)
	out = binary.BigEndian.AppendUint32(out, uint32(len(sections)))
	for _, s := range sections {
		out = append(out, s.TopicID[:]...)
		out = binary.BigEndian.AppendUint32(out, uint32(s.Partition))
		out = binary.BigEndian.AppendUint64(out, uint64(s.Position))
		out = binary.BigEndian.AppendUint64(out, uint64(s.Length))
		out = binary.BigEndian.AppendUint64(out, uint64(s.BaseOffset))
		out = binary.BigEndian.AppendUint64(out, uint64(s.LastOffset))
		out = binary.BigEndian.AppendUint64(out, uint64(s.MaxTimestamp))
	}
	index := out[indexPos:]
	out = binary.BigEndian.AppendUint64(out, uint64(indexPos))
	out = binary.BigEndian.AppendUint32(out, uint32(len(index)))
	out = binary.BigEndian.AppendUint32(out, crc32.Checksum(index, castagnoli))
	out = append(out, footerMagic...)
	return out, sections
}

// ParseFooter decodes the footer (the last FooterSize bytes of an object of
// objectSize bytes) and returns where the index is.
func ParseFooter(footer []byte, objectSize int64) (indexPos int64, indexLen int, crc uint32, err error) {
	if len(footer) != FooterSize || string(footer[16:]) != footerMagic {
		return 0, 0, 0, fmt.Errorf("%w: bad footer", ErrCorrupt)
	}
	indexPos = int64(binary.BigEndian.Uint64(footer[0:8]))
	indexLen = int(binary.BigEndian.Uint32(footer[8:12]))
	crc = binary.BigEndian.Uint32(footer[12:16])
	if indexPos < HeaderSize || indexLen < 4 || indexPos+int64(indexLen) != objectSize-FooterSize {
		return 0, 0, 0, fmt.Errorf("%w: index at %d+%d does not fit an object of %d bytes", ErrCorrupt, indexPos, indexLen, objectSize)
	}
	return indexPos, indexLen, crc, nil
}

// ParseIndex decodes an index whose CRC the footer gave, checking every
// section lies between the header and the index.
func ParseIndex(index []byte, crc uint32, indexPos int64) ([]Section, error) {
	if crc32.Checksum(index, castagnoli) != crc {
		return nil, fmt.Errorf("%w: index CRC mismatch", ErrCorrupt)
	}
	if len(index) < 4 {
		return nil, fmt.Errorf("%w: short index", ErrCorrupt)
	}
	n := binary.BigEndian.Uint32(index)
	if n > maxEntries || len(index) != 4+int(n)*entrySize {
		return nil, fmt.Errorf("%w: index of %d bytes cannot hold %d entries", ErrCorrupt, len(index), n)
	}
	out := make([]Section, n)
	r := index[4:]
	for i := range out {
		s := &out[i]
		copy(s.TopicID[:], r[0:16])
		s.Partition = int32(binary.BigEndian.Uint32(r[16:20]))
		s.Position = int64(binary.BigEndian.Uint64(r[20:28]))
		s.Length = int64(binary.BigEndian.Uint64(r[28:36]))
		s.BaseOffset = int64(binary.BigEndian.Uint64(r[36:44]))
		s.LastOffset = int64(binary.BigEndian.Uint64(r[44:52]))
		s.MaxTimestamp = int64(binary.BigEndian.Uint64(r[52:60]))
		r = r[entrySize:]
		if s.Position < HeaderSize || s.Length < 0 || s.Position+s.Length > indexPos || s.LastOffset < s.BaseOffset {
			return nil, fmt.Errorf("%w: section %d out of bounds", ErrCorrupt, i)
		}
	}
	return out, nil
}

// Decode parses a whole object held in memory.
func Decode(obj []byte) ([]Section, error) {
	if len(obj) < HeaderSize+4+FooterSize || !bytes.Equal(obj[:HeaderSize], []byte(headerMagic)) {
		return nil, fmt.Errorf("%w: bad header", ErrCorrupt)
	}
	pos, n, crc, err := ParseFooter(obj[len(obj)-FooterSize:], int64(len(obj)))
	if err != nil {
		return nil, err
	}
	return ParseIndex(obj[pos:pos+int64(n)], crc, pos)
}

// NewKey names a new object uniquely:
//
//	<4 hex>/<node>/<unix millis %013d>-<flushSeq %020d>-<12 hex>.slo
//
// With spread (objstore.SpreadsKeys of the bucket: S3 and other object
// stores) the key starts with random hex, so that objects spread over
// S3's key-prefix partitions (request rates are limited per prefix);
// without it (a local directory, where every new prefix is two
// directories to create and fsync, and later to prune) it starts with
// "0000". Then it says which node wrote it, when (the uploader's clock;
// KeyTime reads it back, so garbage collection knows an object's age
// without a request per object) and in which flush. The trailing random
// hex keeps retried flushes apart.
func NewKey(node string, flushSeq uint64, spread bool) string {
	return newKeyAt(node, flushSeq, time.Now(), spread)
}

func newKeyAt(node string, flushSeq uint64, t time.Time, spread bool) string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	h := hex.EncodeToString(r[:])
	prefix := h[:4]
	if !spread {
		prefix = "0000"
	}
	return fmt.Sprintf("%s/%s/%013d-%020d-%s.slo", prefix, node, t.UnixMilli(), flushSeq, h[4:])
}

// KeyTime returns the creation time NewKey put in key (millisecond
// precision), and false for any key NewKey did not make, including keys of
// the older format without a time.
func KeyTime(key string) (time.Time, bool) {
	first, rest, ok := strings.Cut(key, "/")
	if !ok || len(first) != 4 || !isLowerHex(first) {
		return time.Time{}, false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 { // the node segment is missing
		return time.Time{}, false
	}
	stem, ok := strings.CutSuffix(rest[i+1:], ".slo")
	if !ok {
		return time.Time{}, false
	}
	parts := strings.Split(stem, "-")
	if len(parts) != 3 || len(parts[0]) != 13 || len(parts[1]) != 20 || parts[2] == "" ||
		!isDigits(parts[0]) || !isDigits(parts[1]) || !isLowerHex(parts[2]) {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && (s[i] < 'a' || s[i] > 'f') {
			return false
		}
	}
	return true
}
