package segment

import (
	"encoding/binary"
	"errors"
	"sort"
)

const (
	offsetEntrySize = 8
	timeEntrySize   = 12
)

// offsetEntry says the batch with base offset segment.base+rel starts at pos.
type offsetEntry struct {
	rel uint32
	pos uint32
}

// timeEntry says the segment's largest timestamp reached ts at the batch
// with base offset segment.base+rel.
type timeEntry struct {
	ts  int64
	rel uint32
}

func appendOffsetEntries(dst []byte, es []offsetEntry) []byte {
	for _, e := range es {
		dst = binary.BigEndian.AppendUint32(dst, e.rel)
		dst = binary.BigEndian.AppendUint32(dst, e.pos)
	}
	return dst
}

func appendTimeEntries(dst []byte, es []timeEntry) []byte {
	for _, e := range es {
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.ts))
		dst = binary.BigEndian.AppendUint32(dst, e.rel)
	}
	return dst
}

var errBadIndex = errors.New("segment: inconsistent index file")

// decodeOffsetIndex parses and sanity-checks an .index file against the size
// of its .log. A torn or stale file fails here and is rebuilt by the caller.
func decodeOffsetIndex(b []byte, logSize int64) ([]offsetEntry, error) {
	if len(b)%offsetEntrySize != 0 {
		return nil, errBadIndex
	}
	es := make([]offsetEntry, len(b)/offsetEntrySize)
	for i := range es {
		e := offsetEntry{
			rel: binary.BigEndian.Uint32(b[i*offsetEntrySize:]),
			pos: binary.BigEndian.Uint32(b[i*offsetEntrySize+4:]),
		}
		if int64(e.pos) >= logSize || (i > 0 && (e.rel <= es[i-1].rel || e.pos <= es[i-1].pos)) {
			return nil, errBadIndex
		}
		es[i] = e
	}
	return es, nil
}

// decodeTimeIndex parses and sanity-checks a .timeindex file. Entries are
// only written when the timestamp grows past the initial -1, so they must be
// non-negative and strictly increasing in both fields.
func decodeTimeIndex(b []byte) ([]timeEntry, error) {
	if len(b)%timeEntrySize != 0 {
		return nil, errBadIndex
	}
	es := make([]timeEntry, len(b)/timeEntrySize)
	for i := range es {
		e := timeEntry{
			ts:  int64(binary.BigEndian.Uint64(b[i*timeEntrySize:])),
			rel: binary.BigEndian.Uint32(b[i*timeEntrySize+8:]),
		}
		if e.ts < 0 || (i > 0 && (e.ts <= es[i-1].ts || e.rel <= es[i-1].rel)) {
			return nil, errBadIndex
		}
		es[i] = e
	}
	return es, nil
}

// lookupPosition returns the position of the last indexed batch whose base
// offset is <= offset, and that batch's base offset (or 0 and the segment
// base). Scanning from there reaches the batch that contains offset.
func lookupPosition(es []offsetEntry, base, offset int64) (pos, at int64) {
	rel := offset - base
	i := sort.Search(len(es), func(i int) bool { return int64(es[i].rel) > rel })
	if i == 0 {
		return 0, base
	}
	return int64(es[i-1].pos), base + int64(es[i-1].rel)
}

// lookupTime returns the offset from which to scan for the first batch whose
// MaxTimestamp is >= ts: the batch of the last entry below ts (every batch
// up to it is below ts too), or the segment base.
func lookupTime(es []timeEntry, base, ts int64) int64 {
	i := sort.Search(len(es), func(i int) bool { return es[i].ts >= ts })
	if i == 0 {
		return base
	}
	return base + int64(es[i-1].rel)
}
