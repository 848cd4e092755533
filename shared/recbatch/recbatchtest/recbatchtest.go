// Package recbatchtest builds valid Kafka v2 RecordBatch bytes for tests,
// encoded with franz-go's kmsg exactly as a producer would send them.
package recbatchtest

import (
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Spec describes a batch to build. Zero values give a non-idempotent batch
// of Records at base offset 0 with timestamps starting at BaseTimestamp.
type Spec struct {
	BaseOffset    int64
	BaseTimestamp int64
	ProducerID    int64 // -1 for none; 0 is a valid producer id, so set it explicitly
	ProducerEpoch int16
	BaseSequence  int32
	Records       []kmsg.Record
}

// Values returns a Spec with one record per value, no producer id.
func Values(baseTimestamp int64, values ...string) Spec {
	s := Spec{BaseTimestamp: baseTimestamp, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	for _, v := range values {
		s.Records = append(s.Records, kmsg.Record{Value: []byte(v)})
	}
	return s
}

// Build encodes the batch. Record offset and timestamp deltas are assigned
// in order (timestamp delta = index).
func Build(s Spec) []byte {
	var recs []byte
	for i := range s.Records {
		r := s.Records[i]
		r.OffsetDelta = int32(i)
		r.TimestampDelta64 = int64(i)
		// Length counts what follows the length varint.
		body := r.AppendTo(nil)
		r.Length = int32(len(body) - varintLen(r.Length))
		recs = r.AppendTo(recs)
	}
	n := int32(len(s.Records))
	b := kmsg.RecordBatch{
		FirstOffset:          s.BaseOffset,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           0,
		LastOffsetDelta:      n - 1,
		FirstTimestamp:       s.BaseTimestamp,
		MaxTimestamp:         s.BaseTimestamp + int64(n) - 1,
		ProducerID:           s.ProducerID,
		ProducerEpoch:        s.ProducerEpoch,
		FirstSequence:        s.BaseSequence,
		NumRecords:           n,
		Records:              recs,
	}
	out := b.AppendTo(nil)
	// batchLength: bytes after the length field.
	putUint32(out[8:12], uint32(len(out)-12))
	putUint32(out[17:21], crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

func varintLen(v int32) int {
	u := uint32(v<<1) ^ uint32(v>>31)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}
