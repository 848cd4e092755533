// Package producerstate tracks idempotent producers per partition: for each
// producer id its epoch and the metadata of its last five batches, which is
// exactly what Kafka brokers keep (ProducerStateManager) so that a producer
// with max.in.flight.requests.per.connection <= 5 can retry safely. A
// transaction marker carries an epoch without a sequence (UpdateEpoch): a
// newer one fences the producer's older epochs. (Which transactions are
// open is the partition's, package partition.)
//
// The state is rebuilt after a restart or a leadership change by replaying
// the headers of the partition's batches through Update and UpdateEpoch; it
// is never written anywhere else, so it cannot disagree with the log.
package producerstate

import (
	"errors"
	"fmt"
	"math"
)

// Window is how many recent batches are remembered per producer (Kafka's
// NUM_BATCHES_TO_RETAIN); clients never have more than five in flight.
const Window = 5

var (
	// ErrOutOfOrder maps to Kafka OUT_OF_ORDER_SEQUENCE_NUMBER.
	ErrOutOfOrder = errors.New("out of order sequence number")
	// ErrFencedEpoch maps to Kafka INVALID_PRODUCER_EPOCH: an older epoch of
	// a producer id that has moved on.
	ErrFencedEpoch = errors.New("producer epoch is older than the current one")
)

// Batch is what is remembered of one appended batch.
type Batch struct {
	FirstSeq, LastSeq      int32
	BaseOffset, LastOffset int64
}

type producer struct {
	epoch   int16
	batches []Batch // oldest first, at most Window
	// seqZero: a transaction marker raised the epoch (UpdateEpoch) and no
	// batch of the new epoch came yet, so the next must start at sequence
	// 0, as after any epoch bump.
	seqZero bool
}

// State is the idempotence state of one partition. It is not safe for
// concurrent use: the partition's writer owns it.
type State struct {
	producers map[int64]*producer
}

// New returns an empty state.
func New() *State { return &State{producers: map[int64]*producer{}} }

// Check decides what to do with an incoming batch of an idempotent
// producer, following Kafka's ProducerAppendInfo rules:
//   - a batch whose sequence range matches a remembered batch of the same
//     epoch is a retry: dup is that batch, and the caller answers with its
//     original offset without appending;
//   - an older epoch is fenced (ErrFencedEpoch);
//   - a newer epoch must start at sequence 0;
//   - otherwise the first sequence must follow the last one (wrapping at
//     MaxInt32), except for a producer the partition has no state for
//     (never seen, or expired by retention), which may start anywhere.
func (s *State) Check(pid int64, epoch int16, firstSeq, lastSeq int32) (dup *Batch, err error) {
	p, ok := s.producers[pid]
	if !ok {
		return nil, nil
	}
	if epoch < p.epoch {
		return nil, fmt.Errorf("%w: producer %d epoch %d, current %d", ErrFencedEpoch, pid, epoch, p.epoch)
	}
	if epoch > p.epoch {
		if firstSeq != 0 {
			return nil, fmt.Errorf("%w: producer %d new epoch %d must start at sequence 0, got %d", ErrOutOfOrder, pid, epoch, firstSeq)
		}
		return nil, nil
	}
	for i := range p.batches {
		if b := p.batches[i]; b.FirstSeq == firstSeq && b.LastSeq == lastSeq {
			return &b, nil
		}
	}
	if len(p.batches) == 0 {
		if p.seqZero && firstSeq != 0 {
			return nil, fmt.Errorf("%w: producer %d epoch %d must start at sequence 0, got %d", ErrOutOfOrder, pid, epoch, firstSeq)
		}
		return nil, nil
	}
	last := p.batches[len(p.batches)-1].LastSeq
	if !follows(last, firstSeq) {
		return nil, fmt.Errorf("%w: producer %d epoch %d expected sequence %d, got %d", ErrOutOfOrder, pid, epoch, next(last), firstSeq)
	}
	return nil, nil
}

// Update records an appended batch. A newer epoch forgets the old window.
func (s *State) Update(pid int64, epoch int16, b Batch) {
	p, ok := s.producers[pid]
	if !ok {
		p = &producer{epoch: epoch}
		s.producers[pid] = p
	}
	if epoch != p.epoch {
		p.epoch, p.batches = epoch, p.batches[:0]
	}
	p.seqZero = false
	if len(p.batches) == Window {
		copy(p.batches, p.batches[1:])
		p.batches = p.batches[:Window-1]
	}
	p.batches = append(p.batches, b)
}

// CheckMarkerEpoch decides whether a transaction marker of the producer
// at epoch may be written (Kafka's checkProducerEpoch for markers): an
// epoch older than the current one is fenced (ErrFencedEpoch), and with
// bumped (transaction version 2, whose coordinator bumps the epoch to end
// a transaction) the current one too; an unknown producer and a newer
// epoch pass.
func (s *State) CheckMarkerEpoch(pid int64, epoch int16, bumped bool) error {
	if p, ok := s.producers[pid]; ok && (epoch < p.epoch || bumped && epoch == p.epoch) {
		return fmt.Errorf("%w: producer %d marker epoch %d, current %d", ErrFencedEpoch, pid, epoch, p.epoch)
	}
	return nil
}

// UpdateEpoch records a transaction marker of the producer at epoch, which
// carries an epoch but no sequence. A newer epoch than the current one
// fences the older epochs (their batches are then ErrFencedEpoch), forgets
// the window, and the producer's next batch must start at sequence 0. An
// unknown producer becomes known at epoch with an empty window (any
// sequence may follow, as for a producer whose batches retention removed).
// An older or equal epoch changes nothing.
func (s *State) UpdateEpoch(pid int64, epoch int16) {
	p, ok := s.producers[pid]
	switch {
	case !ok:
		s.producers[pid] = &producer{epoch: epoch}
	case epoch > p.epoch:
		p.epoch, p.batches, p.seqZero = epoch, p.batches[:0], true
	}
}

// Producers is the number of producer ids tracked.
func (s *State) Producers() int { return len(s.producers) }

func next(seq int32) int32 {
	if seq == math.MaxInt32 {
		return 0
	}
	return seq + 1
}

func follows(last, first int32) bool { return first == next(last) }
