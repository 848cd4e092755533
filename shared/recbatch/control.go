package recbatch

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Marker is what a control batch's record says, for the transaction
// markers (Kafka's EndTransactionMarker). ParseHeader never reads records,
// so it leaves MarkerNone; a storage scan that reads control batches
// (segment.Log.ScanHeaders, hence the local engine) fills Header.Marker.
type Marker int8

const (
	// MarkerNone: not a control batch, or its record was not read.
	MarkerNone Marker = iota
	// MarkerAbort: an ABORT transaction marker (control type 0).
	MarkerAbort
	// MarkerCommit: a COMMIT transaction marker (control type 1).
	MarkerCommit
	// MarkerOther: a control batch of another type, or whose record does
	// not parse.
	MarkerOther
)

// Kafka's control record types (ControlRecordType) of the two end markers.
const (
	ControlAbort  int16 = 0
	ControlCommit int16 = 1
)

// EndTxnMarkerBatch builds the control batch a partition leader appends to
// end a producer's transaction, byte for byte as Kafka's
// MemoryRecords.withEndTransactionMarker: magic 2, attributes
// transactional|control (uncompressed, CreateTime), base offset 0 (the
// caller patches it), partition leader epoch -1, base sequence -1, one
// record at offset delta 0 whose key is int16 version 0 + int16 type (0
// ABORT, 1 COMMIT) and whose value is int16 version 0 + int32 coordinator
// epoch, no headers; the CRC-32C covers bytes 21 to the end.
func EndTxnMarkerBatch(producerID int64, producerEpoch int16, commit bool, coordinatorEpoch int32, timestamp int64) []byte {
	typ := ControlAbort
	if commit {
		typ = ControlCommit
	}
	var key [4]byte
	binary.BigEndian.PutUint16(key[0:2], 0) // version
	binary.BigEndian.PutUint16(key[2:4], uint16(typ))
	var value [6]byte
	binary.BigEndian.PutUint16(value[0:2], 0) // version
	binary.BigEndian.PutUint32(value[2:6], uint32(coordinatorEpoch))

	var body []byte
	body = append(body, 0)              // record attributes
	body = binary.AppendVarint(body, 0) // timestamp delta
	body = binary.AppendVarint(body, 0) // offset delta
	body = binary.AppendVarint(body, 4) // key length
	body = append(body, key[:]...)      //
	body = binary.AppendVarint(body, 6) // value length
	body = append(body, value[:]...)    //
	body = binary.AppendVarint(body, 0) // header count
	record := binary.AppendVarint(nil, int64(len(body)))
	record = append(record, body...)

	b := make([]byte, HeaderSize, HeaderSize+len(record))
	binary.BigEndian.PutUint64(b[0:8], 0)
	binary.BigEndian.PutUint32(b[8:12], uint32(HeaderSize-lengthFieldEnd+len(record)))
	binary.BigEndian.PutUint32(b[12:16], uint32(0xffffffff)) // -1
	b[16] = 2
	binary.BigEndian.PutUint16(b[21:23], uint16(transactionalBit|controlBit))
	binary.BigEndian.PutUint32(b[23:27], 0) // lastOffsetDelta
	binary.BigEndian.PutUint64(b[27:35], uint64(timestamp))
	binary.BigEndian.PutUint64(b[35:43], uint64(timestamp))
	binary.BigEndian.PutUint64(b[43:51], uint64(producerID))
	binary.BigEndian.PutUint16(b[51:53], uint16(producerEpoch))
	binary.BigEndian.PutUint32(b[53:57], uint32(0xffffffff)) // base sequence -1
	binary.BigEndian.PutUint32(b[57:61], 1)                  // one record
	b = append(b, record...)
	binary.BigEndian.PutUint32(b[17:21], crc32.Checksum(b[crcStart:], castagnoli))
	return b
}

// ParseEndTxnMarker reads the first record of the control batch at the
// start of batch (b must hold the whole batch; the CRC is not checked) and
// returns its control type and, for an ABORT or COMMIT marker, the
// coordinator epoch of its value (-1 for other types). Kafka writes control
// batches uncompressed; a compressed one is decompressed.
func ParseEndTxnMarker(batch []byte) (controlType int16, coordinatorEpoch int32, err error) {
	h, err := ParseHeader(batch)
	if err != nil {
		return 0, -1, err
	}
	if !h.Control() {
		return 0, -1, fmt.Errorf("%w: not a control batch", ErrInvalid)
	}
	if h.Size() > len(batch) {
		return 0, -1, fmt.Errorf("%w: batch needs %d bytes, have %d", ErrTruncated, h.Size(), len(batch))
	}
	if h.RecordCount < 1 {
		return 0, -1, fmt.Errorf("%w: control batch without a record", ErrInvalid)
	}
	recs, err := decompress(h.Compression(), batch[HeaderSize:h.Size()])
	if err != nil {
		return 0, -1, err
	}
	bad := func(what string) (int16, int32, error) {
		return 0, -1, fmt.Errorf("%w: control record: %s", ErrInvalid, what)
	}
	length, n := binary.Varint(recs)
	if n <= 0 || length < 1 || length > int64(len(recs)-n) {
		return bad("bad length")
	}
	rec := recs[n+1 : n+int(length)] // after the attributes
	for _, field := range []string{"timestamp delta", "offset delta"} {
		if _, n = binary.Varint(rec); n <= 0 {
			return bad("bad " + field)
		}
		rec = rec[n:]
	}
	keyLen, n := binary.Varint(rec)
	if n <= 0 || keyLen < 4 || keyLen > int64(len(rec)-n) {
		return bad("bad key")
	}
	key := rec[n : n+int(keyLen)]
	rec = rec[n+int(keyLen):]
	controlType = int16(binary.BigEndian.Uint16(key[2:4]))
	if controlType != ControlAbort && controlType != ControlCommit {
		return controlType, -1, nil
	}
	valueLen, n := binary.Varint(rec)
	if n <= 0 || valueLen < 6 || valueLen > int64(len(rec)-n) {
		return bad("bad end transaction marker value")
	}
	value := rec[n : n+int(valueLen)]
	return controlType, int32(binary.BigEndian.Uint32(value[2:6])), nil
}

// MarkerOf is the Marker the control batch at the start of batch carries
// (MarkerNone for a batch that is not a control batch).
func MarkerOf(batch []byte) Marker {
	m, _ := EndTxnMarkerOf(batch)
	return m
}

// EndTxnMarkerOf is MarkerOf with, for a commit or abort marker, the
// coordinator epoch its record carries (0 otherwise).
func EndTxnMarkerOf(batch []byte) (Marker, int32) {
	h, err := ParseHeader(batch)
	if err != nil || !h.Control() {
		return MarkerNone, 0
	}
	switch typ, epoch, err := ParseEndTxnMarker(batch); {
	case err != nil:
		return MarkerOther, 0
	case typ == ControlAbort:
		return MarkerAbort, epoch
	case typ == ControlCommit:
		return MarkerCommit, epoch
	}
	return MarkerOther, 0
}
