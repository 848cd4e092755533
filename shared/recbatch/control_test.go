package recbatch

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestEndTxnMarkerBatchIsKafkas decodes the marker batch with franz-go's
// kmsg, independently of this package's parser: the batch, its one record,
// the control key and the EndTxnMarker value are Kafka's encoding.
func TestEndTxnMarkerBatchIsKafkas(t *testing.T) {
	for _, commit := range []bool{false, true} {
		b := EndTxnMarkerBatch(42, 7, commit, 13, 1700000000000)
		h, err := Validate(b)
		if err != nil {
			t.Fatalf("commit=%v: %v", commit, err)
		}
		if h.Size() != len(b) || !h.Control() || !h.Transactional() || h.ProducerID != 42 || h.ProducerEpoch != 7 ||
			h.BaseSequence != NoSequence || h.RecordCount != 1 || h.LastOffsetDelta != 0 || h.Compression() != CompressionNone ||
			h.BaseTimestamp != 1700000000000 || h.MaxTimestamp != 1700000000000 || h.PartitionLeaderEpoch != -1 {
			t.Fatalf("commit=%v: header %+v", commit, h)
		}
		var kb kmsg.RecordBatch
		if err := kb.ReadFrom(b); err != nil {
			t.Fatal(err)
		}
		if kb.Attributes != 0x30 || kb.NumRecords != 1 || int(kb.Length) != len(b)-12 {
			t.Fatalf("kmsg batch %+v", kb)
		}
		var rec kmsg.Record
		if err := rec.ReadFrom(kb.Records); err != nil {
			t.Fatal(err)
		}
		var key kmsg.ControlRecordKey
		if err := key.ReadFrom(rec.Key); err != nil {
			t.Fatal(err)
		}
		var val kmsg.EndTxnMarker
		if err := val.ReadFrom(rec.Value); err != nil {
			t.Fatal(err)
		}
		wantType := kmsg.ControlRecordKeyType(0)
		if commit {
			wantType = 1
		}
		if key.Version != 0 || key.Type != wantType || val.Version != 0 || val.CoordinatorEpoch != 13 ||
			rec.OffsetDelta != 0 || rec.TimestampDelta64 != 0 || len(rec.Headers) != 0 {
			t.Fatalf("commit=%v: record %+v key %+v value %+v", commit, rec, key, val)
		}

		typ, ce, err := ParseEndTxnMarker(b)
		if err != nil || typ != int16(wantType) || ce != 13 {
			t.Fatalf("parse: type %d epoch %d err %v", typ, ce, err)
		}
		want := MarkerAbort
		if commit {
			want = MarkerCommit
		}
		if m := MarkerOf(b); m != want {
			t.Fatalf("MarkerOf %v, want %v", m, want)
		}
		if m, ce := EndTxnMarkerOf(b); m != want || ce != 13 {
			t.Fatalf("EndTxnMarkerOf %v %d, want %v 13", m, ce, want)
		}
		// Clients may not produce it.
		if _, err := ValidateProduce(b); !errors.Is(err, ErrInvalid) {
			t.Fatalf("ValidateProduce of a marker: %v", err)
		}
	}
}

func TestParseEndTxnMarkerRefuses(t *testing.T) {
	b := EndTxnMarkerBatch(1, 0, true, 0, 1)
	if _, _, err := ParseEndTxnMarker(b[:len(b)-3]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated: %v", err)
	}
	data := append([]byte(nil), b...)
	data[22] &^= 0x20 // clear the control bit
	if _, _, err := ParseEndTxnMarker(data); !errors.Is(err, ErrInvalid) {
		t.Fatalf("not control: %v", err)
	}
	if m := MarkerOf(data); m != MarkerNone {
		t.Fatalf("MarkerOf a data batch: %v", m)
	}
	// A record claiming more bytes than the batch holds.
	bad := append([]byte(nil), b...)
	bad[HeaderSize] = 0x7e // length varint 63
	if _, _, err := ParseEndTxnMarker(bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad record length: %v", err)
	}
	if m := MarkerOf(bad); m != MarkerOther {
		t.Fatalf("MarkerOf an unparsable control batch: %v", m)
	}
}

// FuzzParseEndTxnMarker: the parser reads stored bytes at partition open;
// whatever they are, it must not panic.
func FuzzParseEndTxnMarker(f *testing.F) {
	f.Add(EndTxnMarkerBatch(3, 1, true, 5, 1))
	f.Add(EndTxnMarkerBatch(3, 1, false, 5, 1)[:HeaderSize+4])
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = ParseEndTxnMarker(b)
		_ = MarkerOf(b)
	})
}
