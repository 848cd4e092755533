// Package recbatchtest builds valid Kafka v2 RecordBatch bytes for tests,
// encoded with franz-go's kmsg exactly as a producer would send them.
package recbatchtest

import (
	"bytes"
	"hash/crc32"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Compression codec ids, as in the batch attributes (and recbatch.Compression*).
const (
	None   = 0
	Gzip   = 1
	Snappy = 2
	LZ4    = 3
	Zstd   = 4
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

	// Compression is the codec (None..Zstd) used for the records section.
	Compression int
	// XerialSnappy frames Snappy output the way the Java client does
	// (xerial "SNAPPY" header and length-prefixed blocks) instead of a raw
	// Snappy block as librdkafka and franz-go send.
	XerialSnappy bool
	// TimestampDeltas, when non-nil, gives record i the timestamp delta
	// TimestampDeltas[i]; otherwise record i gets delta i.
	TimestampDeltas []int64
	// LogAppendTime sets the timestamp-type attribute bit.
	LogAppendTime bool
	// Transactional sets the transactional attribute bit (a transactional
	// producer's data batch).
	Transactional bool
}

// Values returns a Spec with one record per value, no producer id.
func Values(baseTimestamp int64, values ...string) Spec {
	s := Spec{BaseTimestamp: baseTimestamp, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	for _, v := range values {
		s.Records = append(s.Records, kmsg.Record{Value: []byte(v)})
	}
	return s
}

// Build encodes the batch. Record offset deltas are assigned in order;
// timestamp deltas are the index unless TimestampDeltas says otherwise.
// MaxTimestamp is BaseTimestamp plus the largest delta.
func Build(s Spec) []byte {
	var recs []byte
	maxDelta := int64(-1) // keeps MaxTimestamp = BaseTimestamp-1 for an empty batch, as before
	for i := range s.Records {
		r := s.Records[i]
		r.OffsetDelta = int32(i)
		r.TimestampDelta64 = int64(i)
		if s.TimestampDeltas != nil {
			r.TimestampDelta64 = s.TimestampDeltas[i]
		}
		if i == 0 || r.TimestampDelta64 > maxDelta {
			maxDelta = r.TimestampDelta64
		}
		// Length counts what follows the length varint.
		r.Length = 0
		body := r.AppendTo(nil)
		r.Length = int32(len(body) - varintLen(0))
		recs = r.AppendTo(recs)
	}
	attrs := int16(s.Compression & 0x07)
	if s.LogAppendTime {
		attrs |= 0x08
	}
	if s.Transactional {
		attrs |= 0x10
	}
	n := int32(len(s.Records))
	b := kmsg.RecordBatch{
		FirstOffset:          s.BaseOffset,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           attrs,
		LastOffsetDelta:      n - 1,
		FirstTimestamp:       s.BaseTimestamp,
		MaxTimestamp:         s.BaseTimestamp + maxDelta,
		ProducerID:           s.ProducerID,
		ProducerEpoch:        s.ProducerEpoch,
		FirstSequence:        s.BaseSequence,
		NumRecords:           n,
		Records:              Compress(s.Compression, s.XerialSnappy, recs),
	}
	out := b.AppendTo(nil)
	// batchLength: bytes after the length field.
	putUint32(out[8:12], uint32(len(out)-12))
	putUint32(out[17:21], crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

// Compress encodes raw with the codec the way Kafka clients do. It panics on
// encoder errors, which cannot happen with in-memory buffers.
func Compress(codec int, xerialSnappy bool, raw []byte) []byte {
	var buf bytes.Buffer
	switch codec {
	case None:
		return raw
	case Gzip:
		w := gzip.NewWriter(&buf)
		must(w.Write(raw))
		must(0, w.Close())
	case Snappy:
		if xerialSnappy {
			return xerial.Encode(nil, raw)
		}
		return s2.EncodeSnappy(nil, raw)
	case LZ4:
		w := lz4.NewWriter(&buf)
		must(w.Write(raw))
		must(0, w.Close())
	case Zstd:
		enc, err := zstd.NewWriter(nil)
		must(0, err)
		defer enc.Close()
		return enc.EncodeAll(raw, nil)
	default:
		panic("recbatchtest: unknown codec")
	}
	return buf.Bytes()
}

func must(_ int, err error) {
	if err != nil {
		panic(err)
	}
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
