package meta

import "github.com/streamline-dev/streamline/shared/recbatch"

// TxnKind is what a TxnEvent records.
type TxnKind string

const (
	// TxnBegin: the first transactional data batch of a producer's
	// transaction within the entry (its first one in the entry, or its
	// first one after one of its markers in the entry).
	TxnBegin TxnKind = "b"
	// TxnCommit: a COMMIT marker (control batch).
	TxnCommit TxnKind = "c"
	// TxnAbort: an ABORT marker (control batch).
	TxnAbort TxnKind = "a"
	// TxnOtherControl: a control batch that is not a commit or abort
	// marker (or whose record does not parse).
	TxnOtherControl TxnKind = "o"
)

// TxnEvent is one transaction fact of a manifest entry: the batch of
// producer ProducerID (at Epoch) at Offset begins a transaction or is one
// of its markers.
type TxnEvent struct {
	ProducerID int64   `json:"pid"`
	Epoch      int16   `json:"pepoch"`
	Offset     int64   `json:"o"`
	Kind       TxnKind `json:"k"`
	// CoordinatorEpoch is a commit or abort marker's coordinator epoch
	// (0 for a begin, and in entries written before it was recorded).
	CoordinatorEpoch int32 `json:"ce,omitempty"`
}

// Marker is the recbatch.Marker of a marker event (MarkerNone for a
// begin).
func (e TxnEvent) Marker() recbatch.Marker {
	switch e.Kind {
	case TxnCommit:
		return recbatch.MarkerCommit
	case TxnAbort:
		return recbatch.MarkerAbort
	case TxnOtherControl:
		return recbatch.MarkerOther
	}
	return recbatch.MarkerNone
}

// TxnRecorder collects the TxnEvents of batches seen in offset order (the
// zero value is ready). Its memory is bounded by the producers with a
// transaction open in what it saw, plus the events.
type TxnRecorder struct {
	events []TxnEvent
	open   map[int64]bool // producers whose begin is recorded and not yet followed by a marker
}

// Add records the batch with header h (batch: its bytes, read only for a
// control batch's marker type).
func (t *TxnRecorder) Add(h recbatch.Header, batch []byte) {
	switch {
	case !h.Idempotent():
	case h.Control():
		kind := TxnOtherControl
		marker, coordEpoch := recbatch.EndTxnMarkerOf(batch)
		switch marker {
		case recbatch.MarkerCommit:
			kind = TxnCommit
		case recbatch.MarkerAbort:
			kind = TxnAbort
		}
		t.events = append(t.events, TxnEvent{ProducerID: h.ProducerID, Epoch: h.ProducerEpoch, Offset: h.BaseOffset, Kind: kind,
			CoordinatorEpoch: coordEpoch})
		delete(t.open, h.ProducerID)
	case h.Transactional():
		if t.open[h.ProducerID] {
			return
		}
		if t.open == nil {
			t.open = map[int64]bool{}
		}
		t.open[h.ProducerID] = true
		t.events = append(t.events, TxnEvent{ProducerID: h.ProducerID, Epoch: h.ProducerEpoch, Offset: h.BaseOffset, Kind: TxnBegin})
	}
}

// Events are the events recorded so far, in offset order (nil: none).
func (t *TxnRecorder) Events() []TxnEvent { return t.events }

// MergeTxns concatenates the events of consecutive entries (in offset
// order) into those of one entry holding them all: a begin of a producer
// whose previous event is a begin (its transaction continues from the
// previous entry) is dropped, so the result stays bounded by the markers.
func MergeTxns(entries ...[]TxnEvent) []TxnEvent {
	var out []TxnEvent
	open := map[int64]bool{}
	for _, es := range entries {
		for _, e := range es {
			if e.Kind == TxnBegin {
				if open[e.ProducerID] {
					continue
				}
				open[e.ProducerID] = true
			} else {
				delete(open, e.ProducerID)
			}
			out = append(out, e)
		}
	}
	return out
}
