package producerstate

import (
	"errors"
	"math"
	"testing"
)

func TestSequenceRules(t *testing.T) {
	s := New()
	// An unknown producer may start anywhere (its state may have expired).
	if dup, err := s.Check(1, 0, 7, 9); dup != nil || err != nil {
		t.Fatalf("first batch: %v %v", dup, err)
	}
	s.Update(1, 0, Batch{7, 9, 100, 102})
	if _, err := s.Check(1, 0, 11, 12); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("gap: %v", err)
	}
	if _, err := s.Check(1, 0, 10, 12); err != nil {
		t.Fatalf("in order: %v", err)
	}
	s.Update(1, 0, Batch{10, 12, 103, 105})
	// A retry of a remembered batch is a duplicate with its original offset.
	dup, err := s.Check(1, 0, 7, 9)
	if err != nil || dup == nil || dup.BaseOffset != 100 {
		t.Fatalf("retry: %+v %v", dup, err)
	}
	// Older epochs are fenced; a newer one must restart at 0.
	s.Update(1, 2, Batch{0, 0, 106, 106})
	if _, err := s.Check(1, 1, 1, 1); !errors.Is(err, ErrFencedEpoch) {
		t.Fatalf("old epoch: %v", err)
	}
	if _, err := s.Check(1, 3, 5, 5); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("new epoch not at 0: %v", err)
	}
	if _, err := s.Check(1, 3, 0, 4); err != nil {
		t.Fatalf("new epoch at 0: %v", err)
	}
}

func TestWindowKeepsLastFive(t *testing.T) {
	s := New()
	for i := int32(0); i < 8; i++ {
		s.Update(9, 0, Batch{i, i, int64(i), int64(i)})
	}
	for i := int32(0); i < 8; i++ {
		dup, err := s.Check(9, 0, i, i)
		if i >= 3 && (dup == nil || dup.BaseOffset != int64(i)) {
			t.Fatalf("seq %d should be a remembered duplicate: %+v %v", i, dup, err)
		}
		if i < 3 && !errors.Is(err, ErrOutOfOrder) {
			t.Fatalf("seq %d fell out of the window and must be out of order, got %+v %v", i, dup, err)
		}
	}
}

func TestSequenceWraps(t *testing.T) {
	s := New()
	s.Update(4, 0, Batch{math.MaxInt32 - 1, math.MaxInt32, 0, 1})
	if _, err := s.Check(4, 0, 0, 3); err != nil {
		t.Fatalf("wrap: %v", err)
	}
}

// TestMarkerEpochs: a transaction marker's epoch is learned without a
// sequence. An older one is refused; a newer one fences the older epoch
// for data and makes the next batch start at sequence 0; an equal one
// keeps the window (the producer goes on with its sequence).
func TestMarkerEpochs(t *testing.T) {
	s := New()
	s.Update(2, 1, Batch{0, 4, 0, 4})
	if err := s.CheckMarkerEpoch(2, 0, false); !errors.Is(err, ErrFencedEpoch) {
		t.Fatalf("older marker epoch: %v", err)
	}
	for _, e := range []int16{1, 2} {
		if err := s.CheckMarkerEpoch(2, e, false); err != nil {
			t.Fatalf("marker epoch %d: %v", e, err)
		}
	}
	// Transaction version 2: the coordinator bumped the epoch to end the
	// transaction, so only a newer epoch ends it.
	if err := s.CheckMarkerEpoch(2, 1, true); !errors.Is(err, ErrFencedEpoch) {
		t.Fatalf("version 2 marker at the current epoch: %v", err)
	}
	if err := s.CheckMarkerEpoch(2, 2, true); err != nil {
		t.Fatalf("version 2 marker at the next epoch: %v", err)
	}
	if err := s.CheckMarkerEpoch(99, 0, false); err != nil {
		t.Fatalf("unknown producer: %v", err)
	}
	s.UpdateEpoch(2, 1) // a commit at the current epoch
	if _, err := s.Check(2, 1, 5, 5); err != nil {
		t.Fatalf("next sequence after a marker at the same epoch: %v", err)
	}
	if dup, _ := s.Check(2, 1, 0, 4); dup == nil {
		t.Fatal("the window was forgotten by a marker at the same epoch")
	}
	s.UpdateEpoch(2, 2) // an abort that bumped the epoch
	if _, err := s.Check(2, 1, 5, 5); !errors.Is(err, ErrFencedEpoch) {
		t.Fatalf("data at the epoch the marker fenced: %v", err)
	}
	if _, err := s.Check(2, 2, 3, 3); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("first batch of the marker's epoch not at 0: %v", err)
	}
	if _, err := s.Check(2, 2, 0, 0); err != nil {
		t.Fatalf("first batch of the marker's epoch at 0: %v", err)
	}
	s.Update(2, 2, Batch{0, 0, 10, 10})
	if _, err := s.Check(2, 2, 1, 1); err != nil {
		t.Fatalf("after the first batch of the new epoch: %v", err)
	}
	// An unknown producer learned from a marker may go on anywhere.
	s.UpdateEpoch(3, 4)
	if _, err := s.Check(3, 3, 0, 0); !errors.Is(err, ErrFencedEpoch) {
		t.Fatalf("older epoch than the marker's: %v", err)
	}
	if _, err := s.Check(3, 4, 17, 17); err != nil {
		t.Fatalf("producer known only from a marker: %v", err)
	}
	s.UpdateEpoch(2, 1) // an older marker (a log replayed) changes nothing
	if _, err := s.Check(2, 2, 1, 1); err != nil {
		t.Fatalf("after an older marker: %v", err)
	}
}
