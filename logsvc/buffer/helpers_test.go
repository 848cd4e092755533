package buffer

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeStore is a FlushFunc whose uploads can be held until released, which
// is how the tests make uploads finish in any order they like.
type fakeStore struct {
	gated bool // uploads wait for release(seq)

	mu          sync.Mutex
	gates       map[uint64]chan error
	uploads     []*Flush // in call order
	uploadedAt  []time.Time
	running     int
	maxRunning  int
	commits     []commitCall
	commitFails map[uint64]map[string]error // Seq -> stream -> error
}

type commitCall struct {
	seq     uint64
	streams []string
}

func newFakeStore(gated bool) *fakeStore {
	return &fakeStore{gated: gated, gates: map[uint64]chan error{}, commitFails: map[uint64]map[string]error{}}
}

func (s *fakeStore) gateLocked(seq uint64) chan error {
	g := s.gates[seq]
	if g == nil {
		g = make(chan error, 1) // release may come before the upload starts
		s.gates[seq] = g
	}
	return g
}

// release lets upload seq finish with err.
func (s *fakeStore) release(seq uint64, err error) {
	s.mu.Lock()
	g := s.gateLocked(seq)
	s.mu.Unlock()
	g <- err
}

func (s *fakeStore) failCommit(seq uint64, stream string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.commitFails[seq] == nil {
		s.commitFails[seq] = map[string]error{}
	}
	s.commitFails[seq][stream] = err
}

func (s *fakeStore) flush(ctx context.Context, f *Flush) (CommitFunc, error) {
	s.mu.Lock()
	s.uploads = append(s.uploads, f)
	s.uploadedAt = append(s.uploadedAt, time.Now())
	s.running++
	s.maxRunning = max(s.maxRunning, s.running)
	var gate chan error
	if s.gated {
		gate = s.gateLocked(f.Seq)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running--
		s.mu.Unlock()
	}()
	if gate != nil {
		select {
		case err := <-gate:
			if err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	return func(ctx context.Context, streams []string) (map[string]error, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.commits = append(s.commits, commitCall{f.Seq, slices.Clone(streams)})
		return s.commitFails[f.Seq], nil
	}, nil
}

func (s *fakeStore) snapshot() (uploads []*Flush, commits []commitCall) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.uploads), slices.Clone(s.commits)
}

func item(stream string, offset int64, size int) Item {
	data := make([]byte, size)
	data[0] = byte(offset)
	return Item{Stream: stream, BaseOffset: offset, LastOffset: offset, Data: data}
}

func mustAdd(t *testing.T, b *Batching, it Item) <-chan error {
	t.Helper()
	ch, err := b.Add(context.Background(), it)
	if err != nil {
		t.Fatalf("Add(%s@%d): %v", it.Stream, it.BaseOffset, err)
	}
	return ch
}

// result reads a delivered result without waiting; ok is false if none is
// there yet.
func result(ch <-chan error) (err error, ok bool) {
	select {
	case err = <-ch:
		return err, true
	default:
		return nil, false
	}
}

// mustResult asserts that ch holds a result and returns it.
func mustResult(t *testing.T, name string, ch <-chan error) error {
	t.Helper()
	err, ok := result(ch)
	if !ok {
		t.Fatalf("%s: no result delivered", name)
	}
	return err
}

func mustClose(t *testing.T, b *Batching) {
	t.Helper()
	if err := b.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// keys lists a flush's items as "stream@offset" in order.
func keys(f *Flush) []string {
	var out []string
	for _, it := range f.Items {
		out = append(out, fmt.Sprintf("%s@%d", it.Stream, it.BaseOffset))
	}
	return out
}
