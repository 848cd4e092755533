package recbatch_test

import (
	"errors"
	"testing"

	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestValidateRoundTrip(t *testing.T) {
	s := recbatchtest.Values(1000, "a", "bb", "ccc")
	s.ProducerID, s.ProducerEpoch, s.BaseSequence = 7, 1, 10
	b := recbatchtest.Build(s)
	h, err := recbatch.ValidateProduce(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.RecordCount != 3 || h.LastOffsetDelta != 2 || h.Size() != len(b) {
		t.Fatalf("header %+v", h)
	}
	if h.ProducerID != 7 || h.ProducerEpoch != 1 || h.BaseSequence != 10 || h.LastSequence() != 12 {
		t.Fatalf("producer fields %+v", h)
	}
	if h.MaxTimestamp != 1002 {
		t.Fatalf("max timestamp %d", h.MaxTimestamp)
	}
	// Patching the offset and epoch keeps the CRC valid and is visible to kmsg.
	recbatch.SetBaseOffset(b, 42)
	recbatch.SetPartitionLeaderEpoch(b, 5)
	h, err = recbatch.Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	var kb kmsg.RecordBatch
	if err := kb.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	if kb.FirstOffset != 42 || kb.PartitionLeaderEpoch != 5 || h.LastOffset() != 44 {
		t.Fatalf("patched: kmsg %d/%d, last %d", kb.FirstOffset, kb.PartitionLeaderEpoch, h.LastOffset())
	}
}

func TestValidateErrors(t *testing.T) {
	good := recbatchtest.Build(recbatchtest.Values(1, "x", "y"))
	cases := map[string]struct {
		mutate func([]byte) []byte
		want   error
	}{
		"crc":        {func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b }, recbatch.ErrCorrupt},
		"truncated":  {func(b []byte) []byte { return b[:len(b)-3] }, recbatch.ErrTruncated},
		"short":      {func(b []byte) []byte { return b[:20] }, recbatch.ErrTruncated},
		"magic":      {func(b []byte) []byte { b[16] = 1; return b }, recbatch.ErrMagic},
		"two":        {func(b []byte) []byte { return append(b, b...) }, recbatch.ErrInvalid},
		"bad length": {func(b []byte) []byte { b[8], b[9], b[10], b[11] = 0, 0, 0, 3; return b }, recbatch.ErrInvalid},
	}
	for name, c := range cases {
		b := c.mutate(append([]byte(nil), good...))
		if _, err := recbatch.ValidateProduce(b); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
}

func TestIterateFindsTornTail(t *testing.T) {
	a := recbatchtest.Build(recbatchtest.Values(1, "a"))
	b := recbatchtest.Build(recbatchtest.Values(2, "b", "c"))
	log := append(append(append([]byte(nil), a...), b...), b[:30]...)
	n := 0
	valid, err := recbatch.Iterate(log, true, func(recbatch.Header, []byte) error { n++; return nil })
	if !errors.Is(err, recbatch.ErrTruncated) || valid != len(a)+len(b) || n != 2 {
		t.Fatalf("valid=%d n=%d err=%v", valid, n, err)
	}
}

func FuzzValidate(f *testing.F) {
	f.Add(recbatchtest.Build(recbatchtest.Values(1, "seed")))
	f.Add([]byte{})
	f.Add(make([]byte, 61))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := recbatch.Validate(b)
		if err != nil {
			return
		}
		if h.Size() > len(b) || h.Size() < recbatch.HeaderSize {
			t.Fatalf("valid batch with impossible size %d of %d", h.Size(), len(b))
		}
		// Whatever validates must iterate to the same boundary.
		valid, _ := recbatch.Iterate(b[:h.Size()], true, func(recbatch.Header, []byte) error { return nil })
		if valid != h.Size() {
			t.Fatalf("iterate stopped at %d, want %d", valid, h.Size())
		}
	})
}
