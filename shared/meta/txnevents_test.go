package meta

import (
	"slices"
	"testing"

	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

// TestTxnRecorder: one begin per producer per marker (not per batch),
// markers with their types, non-transactional batches ignored.
func TestTxnRecorder(t *testing.T) {
	var r TxnRecorder
	add := func(b []byte, off int64) {
		recbatch.SetBaseOffset(b, off)
		h, err := recbatch.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		r.Add(h, b)
	}
	txn := func(pid int64, seq int32) []byte {
		s := recbatchtest.Values(1, "v")
		s.ProducerID, s.ProducerEpoch, s.BaseSequence, s.Transactional = pid, 0, seq, true
		return recbatchtest.Build(s)
	}
	idem := recbatchtest.Values(1, "i")
	idem.ProducerID = 3
	add(txn(1, 0), 0)
	add(txn(2, 0), 1)
	add(txn(1, 1), 2)
	add(recbatchtest.Build(idem), 3)
	add(recbatch.EndTxnMarkerBatch(1, 0, false, 7, 1), 4)
	add(txn(1, 2), 5)
	add(recbatch.EndTxnMarkerBatch(1, 0, true, 9, 1), 6)
	want := []TxnEvent{{1, 0, 0, TxnBegin, 0}, {2, 0, 1, TxnBegin, 0}, {1, 0, 4, TxnAbort, 7}, {1, 0, 5, TxnBegin, 0}, {1, 0, 6, TxnCommit, 9}}
	if got := r.Events(); !slices.Equal(got, want) {
		t.Fatalf("events %+v, want %+v", got, want)
	}
}

// TestMergeTxns: a begin continuing the previous entry's open transaction
// is dropped; one after a marker is kept.
func TestMergeTxns(t *testing.T) {
	got := MergeTxns(
		[]TxnEvent{{1, 0, 0, TxnBegin, 0}},
		[]TxnEvent{{1, 0, 5, TxnBegin, 0}, {2, 0, 6, TxnBegin, 0}, {1, 0, 7, TxnCommit, 0}},
		[]TxnEvent{{1, 0, 8, TxnBegin, 0}, {2, 0, 9, TxnBegin, 0}},
	)
	want := []TxnEvent{{1, 0, 0, TxnBegin, 0}, {2, 0, 6, TxnBegin, 0}, {1, 0, 7, TxnCommit, 0}, {1, 0, 8, TxnBegin, 0}}
	if !slices.Equal(got, want) {
		t.Fatalf("merged %+v, want %+v", got, want)
	}
}
