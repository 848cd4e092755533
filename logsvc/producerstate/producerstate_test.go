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
