package buffer

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// batch is size bytes all equal to byte(base), so reads are checkable.
func batch(base int64, size int) []byte { return bytes.Repeat([]byte{byte(base)}, size) }

func wantRead(t *testing.T, r *MemoryRing, stream string, offset int64, maxBytes int, want ...[]byte) {
	t.Helper()
	got, ok := r.Read(stream, offset, maxBytes)
	if len(want) == 0 {
		if ok {
			t.Errorf("Read(%s, %d) = %d bytes, want a miss", stream, offset, len(got))
		}
		return
	}
	if !ok || !bytes.Equal(got, bytes.Join(want, nil)) {
		t.Errorf("Read(%s, %d, %d) = %d bytes ok=%v, want %d bytes", stream, offset, maxBytes, len(got), ok, len(bytes.Join(want, nil)))
	}
}

func TestRingReads(t *testing.T) {
	r := NewMemoryRing(1000)
	b0, b10, b20 := batch(0, 100), batch(10, 100), batch(20, 100)
	r.Put("a", 0, 9, b0)
	r.Put("a", 10, 19, b10)
	r.Put("a", 20, 29, b20)

	wantRead(t, r, "a", 0, 1000, b0, b10, b20)
	wantRead(t, r, "a", 15, 1000, b10, b20) // offset inside a batch
	wantRead(t, r, "a", 19, 200, b10, b20)  // exactly maxBytes
	wantRead(t, r, "a", 10, 199, b10)       // next batch would exceed
	wantRead(t, r, "a", 0, 1, b0)           // at least one batch
	wantRead(t, r, "a", 0, 0, b0)
	wantRead(t, r, "a", 30, 1000) // beyond the end
	wantRead(t, r, "a", -1, 1000) // before the start
	wantRead(t, r, "b", 0, 1000)  // unknown stream

	// Multi-batch reads are copies: modifying one does not touch the ring.
	got, _ := r.Read("a", 0, 1000)
	got[0] = 0xff
	wantRead(t, r, "a", 0, 100, b0)

	if st := r.Stats(); st.Bytes != 300 || st.Batches != 3 || st.Streams != 1 || st.Hits != 8 || st.Misses != 3 {
		t.Errorf("stats = %+v", st)
	}
}

func TestRingGapStopsRead(t *testing.T) {
	r := NewMemoryRing(1000)
	b0, b20 := batch(0, 10), batch(20, 10)
	r.Put("a", 0, 9, b0)
	r.Put("a", 20, 29, b20) // 10..19 never put (e.g. too large for the ring)
	wantRead(t, r, "a", 0, 1000, b0)
	wantRead(t, r, "a", 15, 1000)
	wantRead(t, r, "a", 25, 1000, b20)
}

func TestRingEvictsGloballyOldest(t *testing.T) {
	r := NewMemoryRing(300)
	a0, b0, a10, b10 := batch(0, 100), batch(1, 100), batch(10, 100), batch(11, 100)
	r.Put("a", 0, 9, a0)
	r.Put("b", 0, 9, b0)
	r.Put("a", 10, 19, a10)
	r.Put("b", 10, 19, b10) // over the bound: a@0 is the oldest
	wantRead(t, r, "a", 5, 1000)
	wantRead(t, r, "a", 10, 1000, a10)
	wantRead(t, r, "b", 0, 1000, b0, b10)
	r.Put("c", 0, 0, batch(2, 150)) // evicts b@0 and a@10
	wantRead(t, r, "b", 0, 1000)
	wantRead(t, r, "a", 10, 1000)
	wantRead(t, r, "b", 10, 1000, b10)
	if st := r.Stats(); st.Bytes != 250 || st.Batches != 2 || st.Streams != 2 {
		t.Errorf("stats = %+v", st)
	}
}

func TestRingRewindAndDrop(t *testing.T) {
	r := NewMemoryRing(1000)
	r.Put("a", 0, 9, batch(0, 100))
	r.Put("a", 10, 19, batch(10, 100))
	r.Put("b", 0, 9, batch(5, 100))
	nb := batch(42, 50)
	r.Put("a", 10, 14, nb) // log rewound: older batches of a are dropped
	wantRead(t, r, "a", 0, 1000)
	wantRead(t, r, "a", 12, 1000, nb)
	wantRead(t, r, "a", 15, 1000)
	if st := r.Stats(); st.Bytes != 150 || st.Batches != 2 {
		t.Errorf("after rewind: %+v", st)
	}
	r.Drop("b")
	wantRead(t, r, "b", 0, 1000)
	if st := r.Stats(); st.Bytes != 50 || st.Streams != 1 {
		t.Errorf("after drop: %+v", st)
	}
	// Dropped batches do not count against the bound.
	r.Put("c", 0, 0, batch(1, 950))
	wantRead(t, r, "a", 12, 1000, nb)
}

func TestRingRejects(t *testing.T) {
	r := NewMemoryRing(100)
	r.Put("a", 0, 0, batch(0, 101)) // larger than the ring
	r.Put("a", 5, 4, batch(0, 10))  // last < base
	r.Put("a", 0, 0, nil)
	if st := r.Stats(); st.Bytes != 0 || st.Batches != 0 {
		t.Errorf("stats = %+v", st)
	}
	wantRead(t, r, "a", 0, 100)
}

// Repeated rewinds leave dead entries in the fifo; it must not grow
// without bound.
func TestRingFifoStaysBounded(t *testing.T) {
	r := NewMemoryRing(1 << 20)
	for i := range 10000 {
		r.Put(fmt.Sprintf("s%d", i%3), 0, 0, batch(0, 10)) // always a rewind
	}
	if n := len(r.fifo) - r.head; n > 100 {
		t.Errorf("fifo holds %d entries for 3 live batches", n)
	}
	if st := r.Stats(); st.Batches != 3 || st.Bytes != 30 {
		t.Errorf("stats = %+v", st)
	}
}

func TestRingConcurrent(t *testing.T) {
	const maxBytes = 4096
	r := NewMemoryRing(maxBytes)
	var wg sync.WaitGroup
	for w := range 4 {
		stream := fmt.Sprintf("s%d", w)
		wg.Go(func() {
			for off := int64(0); off < 2000; off++ {
				r.Put(stream, off, off, batch(off, 16+int(off%32)))
			}
		})
		wg.Go(func() {
			for off := int64(0); off < 2000; off++ {
				data, ok := r.Read(stream, off, 256)
				if !ok {
					continue
				}
				// Batches come back whole, contiguous from off.
				for o := off; len(data) > 0; o++ {
					n := 16 + int(o%32)
					if len(data) < n || !bytes.Equal(data[:n], batch(o, n)) {
						t.Errorf("%s@%d: bad batch %d in read", stream, off, o)
						return
					}
					data = data[n:]
				}
				if st := r.Stats(); st.Bytes > maxBytes {
					t.Errorf("ring holds %d bytes > %d", st.Bytes, maxBytes)
				}
			}
		})
	}
	wg.Wait()
	if st := r.Stats(); st.Bytes > maxBytes || st.Bytes < maxBytes-48 {
		t.Errorf("final bytes %d, want just under %d", st.Bytes, maxBytes)
	}
}
