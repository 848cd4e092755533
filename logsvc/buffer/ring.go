package buffer

import (
	"sort"
	"sync"
	"sync/atomic"
)

// MemoryRing keeps recently committed batches of many streams within a byte
// bound and evicts the globally oldest batch first. Safe for concurrent use.
//
// A stream's batches are kept in offset order. Put with a base offset at or
// below the stream's last kept offset (the log was rewound, e.g. reloaded
// after a failure) drops the stream's batches first; a gap (base beyond the
// last offset + 1) is kept, and reads stop at it.
type MemoryRing struct {
	maxBytes int

	mu      sync.RWMutex
	bytes   int
	streams map[string]*ringStream
	// fifo is every kept batch in Put order (globally oldest at head).
	// Batches dropped by a rewind stay in it, marked dead, until popped or
	// compacted, so dropping never searches the queue.
	fifo []*ringEntry
	head int
	dead int

	// Counted outside mu so that reads share the read lock.
	hits, misses atomic.Uint64
}

type ringEntry struct {
	stream     string
	base, last int64
	data       []byte
	dead       bool
}

// ringStream is one stream's live batches, entries[head:], in offset order.
// Eviction pops from the front because a stream's oldest batch is its
// lowest, and the global fifo reaches it before any later one.
type ringStream struct {
	entries []*ringEntry
	head    int
}

func (s *ringStream) live() []*ringEntry { return s.entries[s.head:] }

// NewMemoryRing returns a ring that holds at most maxBytes of batch data.
func NewMemoryRing(maxBytes int) *MemoryRing {
	return &MemoryRing{maxBytes: maxBytes, streams: make(map[string]*ringStream)}
}

// Put keeps a committed batch. The ring takes ownership of data; nobody may
// modify it afterwards. A batch larger than the whole ring is not kept (a
// read of it misses), nor is an empty or malformed one.
func (r *MemoryRing) Put(stream string, baseOffset, lastOffset int64, data []byte) {
	if len(data) == 0 || lastOffset < baseOffset || len(data) > r.maxBytes {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.streams[stream]
	if s == nil {
		s = &ringStream{}
		r.streams[stream] = s
	} else if l := s.live(); len(l) > 0 && baseOffset <= l[len(l)-1].last {
		r.dropLocked(stream)
		s = &ringStream{}
		r.streams[stream] = s
	}
	e := &ringEntry{stream: stream, base: baseOffset, last: lastOffset, data: data}
	s.entries = append(s.entries, e)
	r.fifo = append(r.fifo, e)
	r.bytes += len(data)
	for r.bytes > r.maxBytes {
		r.evictLocked()
	}
}

// evictLocked removes the globally oldest live batch.
func (r *MemoryRing) evictLocked() {
	for {
		e := r.fifo[r.head]
		r.fifo[r.head] = nil
		r.head++
		if e.dead {
			r.dead--
			continue
		}
		s := r.streams[e.stream]
		s.entries[s.head] = nil
		s.head++
		r.bytes -= len(e.data)
		if len(s.live()) == 0 {
			delete(r.streams, e.stream)
		} else if s.head > len(s.entries)/2 {
			s.entries = append([]*ringEntry(nil), s.live()...)
			s.head = 0
		}
		break
	}
	r.compactLocked()
}

// compactLocked bounds the fifo's garbage (popped slots and dead batches)
// to the number of live batches.
func (r *MemoryRing) compactLocked() {
	if garbage := r.head + r.dead; garbage > 32 && garbage > len(r.fifo)/2 {
		live := make([]*ringEntry, 0, len(r.fifo)-garbage)
		for _, e := range r.fifo[r.head:] {
			if !e.dead {
				live = append(live, e)
			}
		}
		r.fifo, r.head, r.dead = live, 0, 0
	}
}

// Drop forgets every batch of stream (partition deleted or truncated).
func (r *MemoryRing) Drop(stream string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropLocked(stream)
}

func (r *MemoryRing) dropLocked(stream string) {
	s := r.streams[stream]
	if s == nil {
		return
	}
	for _, e := range s.live() {
		e.dead = true
		r.dead++
		r.bytes -= len(e.data)
		e.data = nil
	}
	delete(r.streams, stream)
	r.compactLocked()
}

// Read returns whole batches of stream starting with the one containing
// offset, followed by the batches contiguous with it while the total stays
// within maxBytes; the first batch is returned even if larger (KIP-74).
// ok is false if the ring does not hold the batch containing offset; the
// caller then reads from the cache or object storage. The result must not
// be modified.
func (r *MemoryRing) Read(stream string, offset int64, maxBytes int) (data []byte, ok bool) {
	r.mu.RLock()
	data, ok = r.readLocked(stream, offset, maxBytes)
	r.mu.RUnlock()
	if ok {
		r.hits.Add(1)
	} else {
		r.misses.Add(1)
	}
	return data, ok
}

func (r *MemoryRing) readLocked(stream string, offset int64, maxBytes int) ([]byte, bool) {
	s := r.streams[stream]
	if s == nil {
		return nil, false
	}
	l := s.live()
	i := sort.Search(len(l), func(i int) bool { return l[i].last >= offset })
	if i == len(l) || l[i].base > offset {
		return nil, false
	}
	j, size := i+1, len(l[i].data)
	for j < len(l) && l[j].base == l[j-1].last+1 && size+len(l[j].data) <= maxBytes {
		size += len(l[j].data)
		j++
	}
	if j == i+1 {
		return l[i].data, true // no copy: batches are immutable
	}
	out := make([]byte, 0, size)
	for _, e := range l[i:j] {
		out = append(out, e.data...)
	}
	return out, true
}

// RingStats is a snapshot of a MemoryRing.
type RingStats struct {
	Bytes, Batches, Streams int
	Hits, Misses            uint64
}

// Stats returns the ring's size and read counters.
func (r *MemoryRing) Stats() RingStats {
	r.mu.RLock()
	st := RingStats{Bytes: r.bytes, Batches: len(r.fifo) - r.head - r.dead, Streams: len(r.streams)}
	r.mu.RUnlock()
	st.Hits, st.Misses = r.hits.Load(), r.misses.Load()
	return st
}
