package partition

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
)

// Transactions, partition side (Kafka's ProducerStateManager transaction
// tracking, UnifiedLog's last stable offset and TxnIndex):
//
//   - the first transactional batch of a producer with no open transaction
//     here opens one at its base offset; a non-transactional batch of a
//     producer with an open transaction is INVALID_TXN_STATE;
//   - a marker (WriteMarker: a COMMIT or ABORT control batch the
//     coordinator asks for) closes the producer's transaction once it has
//     its offset; an ABORT adds {producer, first offset, marker offset} to
//     the aborted list, which read_committed fetches return;
//   - the last stable offset is min(high watermark, first offset of every
//     transaction that is open or whose marker the high watermark has not
//     passed yet), never below the log start: like Kafka's unreplicated
//     transactions, a closed one holds the LSO until its marker is on
//     every ISR member, so read_committed consumers never see its records
//     before the outcome is durable.
//
// None of this is stored. Open rebuilds it from the stored batch headers
// (data batches' transactional bit, control batches' marker type, which
// the local engine's ScanHeaders reads from the record and the diskless
// engine, and hybrid's tier, synthesize from the manifest entries'
// transaction events, meta.Coords.Txns), exactly as the
// producer state and the leader-epoch history are rebuilt: the log is the
// only record, so the transaction state cannot disagree with it after a
// crash between a batch and its marker (the transaction is open again) or
// after a truncation. Kafka keeps a .txnindex file per segment to avoid
// reading the log; here the scan at open already reads every header, and
// only control batches cost a record read.
//
// Guarding: open changes under Partition.mu (the writer) and txnMu, so the
// writer reads it holding mu alone; ending and aborted grow under both and
// shrink under txnMu alone (releaseEnding when the high watermark moves,
// trimAborted when the log start does); readers hold txnMu for reading.
// firstUnstable is the smallest first offset of open and ending
// transactions (math.MaxInt64: none), published atomically so
// read_uncommitted fetches and the LSO never take a lock.

// AbortedTxn is one aborted transaction (Kafka's TxnIndex entry, the
// FetchResponse AbortedTransactions): read_committed consumers drop the
// producer's transactional batches from FirstOffset up to its ABORT
// marker at LastOffset.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
	LastOffset  int64
}

// endingTxn is a transaction whose marker is appended at marker but not
// yet below the high watermark: it still holds the LSO at first.
type endingTxn struct {
	first, marker int64
}

type txnState struct {
	open    map[int64]int64 // producer id -> first offset of its open transaction
	ending  []endingTxn     // in marker order
	aborted []AbortedTxn    // in LastOffset (marker) order
	// coordinators is the newest transaction coordinator epoch of each
	// producer's markers in the log (Kafka's ProducerStateEntry
	// coordinatorEpoch): a marker from an older coordinator of the
	// producer's transactional id is refused. Guarded by Partition.mu
	// (only the writer and Open use it).
	coordinators map[int64]int32
}

// noteCoordinatorLocked records that a marker of pid from coordinator
// epoch epoch is in the log. Called with p.mu held (or from Open).
func (p *Partition) noteCoordinatorLocked(pid int64, epoch int32) {
	if p.txns.coordinators == nil {
		p.txns.coordinators = map[int64]int32{}
	}
	if cur, ok := p.txns.coordinators[pid]; !ok || epoch > cur {
		p.txns.coordinators[pid] = epoch
	}
}

// txnModeUnsupported says why transactional batches and markers are
// refused on a topic of this storage mode ("" when they are accepted).
// Every mode takes them: local segments carry the facts in their batches;
// diskless and hybrid manifest entries carry them in meta.Coords.Txns
// (begins and markers, recorded by whoever builds the entry from batches),
// which the engines' ScanHeaders turn back into headers.
func txnModeUnsupported(mode meta.StorageMode) string {
	switch mode {
	case meta.StorageLocal, meta.StorageHybrid, meta.StorageDiskless, "":
		return ""
	}
	return fmt.Sprintf("transactions on %s topics are not supported", mode)
}

// beginTxnLocked opens a transaction of pid at first unless one is open.
// Called with p.mu held, before the batch is handed to storage (so the
// LSO holds before the high watermark can pass it).
func (p *Partition) beginTxnLocked(pid, first int64) {
	if _, ok := p.txns.open[pid]; ok {
		return
	}
	p.txnMu.Lock()
	if p.txns.open == nil {
		p.txns.open = map[int64]int64{}
	}
	p.txns.open[pid] = first
	p.refreshUnstableLocked()
	p.txnMu.Unlock()
}

// endTxnLocked closes pid's transaction (if one is open) with a marker at
// offset marker, keeping it in ending while hwm has not passed the marker.
// Called with p.mu held (or from Open).
func (p *Partition) endTxnLocked(pid, marker int64, abort bool, hwm int64) {
	first, ok := p.txns.open[pid]
	if !ok {
		return // a retried marker, or the transaction's batches are gone: nothing to end
	}
	p.txnMu.Lock()
	delete(p.txns.open, pid)
	if marker >= hwm {
		p.txns.ending = append(p.txns.ending, endingTxn{first: first, marker: marker})
	}
	if abort {
		p.txns.aborted = append(p.txns.aborted, AbortedTxn{ProducerID: pid, FirstOffset: first, LastOffset: marker})
	}
	p.refreshUnstableLocked()
	p.txnMu.Unlock()
}

// refreshUnstableLocked recomputes firstUnstable; txnMu is held.
func (p *Partition) refreshUnstableLocked() {
	first := int64(math.MaxInt64)
	for _, f := range p.txns.open {
		first = min(first, f)
	}
	for _, e := range p.txns.ending {
		first = min(first, e.first)
	}
	p.firstUnstable.Store(first)
	p.ending.Store(int32(len(p.txns.ending)))
}

// releaseEnding drops the ending transactions whose marker the high
// watermark hwm has passed: they no longer hold the LSO. Called when the
// high watermark moves.
func (p *Partition) releaseEnding(hwm int64) {
	if p.ending.Load() == 0 {
		return
	}
	p.txnMu.Lock()
	keep := p.txns.ending[:0]
	for _, e := range p.txns.ending {
		if e.marker >= hwm {
			keep = append(keep, e)
		}
	}
	if len(keep) != len(p.txns.ending) {
		clear(p.txns.ending[len(keep):])
		p.txns.ending = keep
		p.refreshUnstableLocked()
	}
	p.txnMu.Unlock()
}

// trimAborted drops the aborted transactions wholly below the log start
// (Kafka deletes a segment's transaction index with the segment).
func (p *Partition) trimAborted(start int64) {
	p.txnMu.Lock()
	i := sort.Search(len(p.txns.aborted), func(i int) bool { return p.txns.aborted[i].LastOffset >= start })
	if i > 0 {
		p.txns.aborted = slices.Delete(p.txns.aborted, 0, i)
	}
	p.txnMu.Unlock()
}

// LastStableOffset is Kafka's LSO: the high watermark, held back to the
// first offset of the oldest transaction that is open or whose marker is
// not yet below the high watermark, and never below the log start.
// read_committed consumers read up to it.
func (p *Partition) LastStableOffset() int64 { return p.lsoAt(p.hwm.Load()) }

func (p *Partition) lsoAt(hwm int64) int64 {
	first := p.firstUnstable.Load()
	if first >= hwm {
		return hwm
	}
	// DeleteRecords may move the start past an open transaction's first
	// offset (up to the high watermark), as in Kafka.
	return max(first, min(p.log.StartOffset(), hwm))
}

// OpenTransactions is the number of producers with an open transaction
// on the partition (metrics, tests).
func (p *Partition) OpenTransactions() int {
	p.txnMu.RLock()
	defer p.txnMu.RUnlock()
	return len(p.txns.open)
}

// AbortedTransactions lists the aborted transactions kept for the
// partition, in marker order (tests, debugging).
func (p *Partition) AbortedTransactions() []AbortedTxn {
	p.txnMu.RLock()
	defer p.txnMu.RUnlock()
	return slices.Clone(p.txns.aborted)
}

// abortedIn returns the aborted transactions whose records may be in
// [from, end): first offset below end and marker at or after from (Kafka's
// collectAbortedTxns), in first-offset order. end is computed only if an
// aborted transaction ends at or after from.
func (p *Partition) abortedIn(from int64, endOf func() int64) []AbortedTxn {
	p.txnMu.RLock()
	i := sort.Search(len(p.txns.aborted), func(i int) bool { return p.txns.aborted[i].LastOffset >= from })
	if i == len(p.txns.aborted) {
		p.txnMu.RUnlock()
		return nil
	}
	end := endOf()
	var out []AbortedTxn
	for _, a := range p.txns.aborted[i:] {
		if a.FirstOffset < end {
			out = append(out, a)
		}
	}
	p.txnMu.RUnlock()
	slices.SortStableFunc(out, func(a, b AbortedTxn) int {
		switch {
		case a.FirstOffset < b.FirstOffset:
			return -1
		case a.FirstOffset > b.FirstOffset:
			return 1
		}
		return 0
	})
	return out
}

// Marker is one transaction marker a coordinator asks a partition leader
// to write (an entry of Kafka's WriteTxnMarkers).
type Marker struct {
	ProducerID    int64
	ProducerEpoch int16
	Commit        bool // false: abort
	// CoordinatorEpoch is stored in the marker's record.
	CoordinatorEpoch int32
	// TransactionVersion is the transaction's (WriteTxnMarkers v2): at 2
	// (KIP-890 part 2) the coordinator bumped the producer's epoch to end
	// the transaction, so the marker's epoch must be newer than the
	// producer's epoch here; 0 or 1: not older.
	TransactionVersion int16
}

// WriteMarker appends a transaction marker (Kafka's WriteTxnMarkers on the
// partition leader) and returns once it is durable and the high watermark
// passed it, as an acks=all produce: see SubmitMarker.
func (p *Partition) WriteMarker(ctx context.Context, m Marker) ProduceResult {
	return p.SubmitMarker(ctx, m).Wait(ctx)
}

// SubmitMarker builds the producer's COMMIT (commit) or ABORT control
// batch (recbatch.EndTxnMarkerBatch) and appends it through the produce
// path (offset, leader epoch, WAL group commit, replication); Wait answers
// like an acks=all produce (fenced, NOT_ENOUGH_REPLICAS below
// min.insync.replicas, REQUEST_TIMED_OUT). Markers submitted one after
// another are appended in that order, behind earlier produces.
//
// The rules are Kafka's: a marker from a transaction coordinator epoch
// older than the newest one of the producer's markers here is
// TRANSACTION_COORDINATOR_FENCED (a deposed coordinator still writing);
// a marker at an epoch older than the partition's
// current one for the producer is INVALID_PRODUCER_EPOCH (under
// transaction version 2 also one at the current epoch: the coordinator
// bumped it, so such a marker is a deposed or retried one, and would end
// the producer's next transaction, which runs at that epoch); a newer one
// fences the older epochs for data. A marker for a producer with no open
// transaction here (a coordinator retrying) is appended and changes
// nothing else. Once the marker has its offset the producer's transaction
// is closed (it holds the LSO until the high watermark passes the marker)
// and an ABORT is listed for read_committed fetches. Every storage mode
// takes markers through its append path (diskless: into an intake object,
// the marker's type recorded in the manifest entry's Txns).
func (p *Partition) SubmitMarker(ctx context.Context, m Marker) *Pending {
	producerID, producerEpoch, commit, coordinatorEpoch := m.ProducerID, m.ProducerEpoch, m.Commit, m.CoordinatorEpoch
	known := func(r ProduceResult) *Pending { return &Pending{p: p, done: r, known: true} }
	if producerID < 0 || producerEpoch < 0 {
		return known(fail(kerr.InvalidRequest, "transaction marker needs a producer id and epoch, got %d and %d", producerID, producerEpoch))
	}
	if mode := p.Topic().StorageMode; txnModeUnsupported(mode) != "" {
		return known(fail(kerr.InvalidTxnState, "%s", txnModeUnsupported(mode)))
	}
	if ok, n, need := p.enoughReplicas(); !ok {
		return known(fail(kerr.NotEnoughReplicas, "the ISR of %s-%d has %d replicas, below min.insync.replicas %d",
			p.cfg.Topic.Name, p.cfg.Partition, n, need))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, failed := p.writableLocked(); failed {
		return known(r)
	}
	if err := p.producers.CheckMarkerEpoch(producerID, producerEpoch, m.TransactionVersion >= 2); err != nil {
		return known(fail(kerr.InvalidProducerEpoch, "transaction marker: %v", err))
	}
	if cur, ok := p.txns.coordinators[producerID]; ok && coordinatorEpoch < cur {
		return known(fail(kerr.TransactionCoordinatorFenced, "transaction marker of producer %d from coordinator epoch %d: a marker from epoch %d is already written",
			producerID, coordinatorEpoch, cur))
	}
	if r, full := p.checkSpaceLocked(); full {
		return known(r)
	}
	batch := recbatch.EndTxnMarkerBatch(producerID, producerEpoch, commit, coordinatorEpoch, time.Now().UnixMilli())
	h, err := recbatch.Validate(batch)
	if err != nil {
		return known(fail(kerr.UnknownServerError, "building the transaction marker: %v", err))
	}
	base := p.assignLocked(batch, &h)
	p.producers.UpdateEpoch(producerID, producerEpoch)
	p.noteCoordinatorLocked(producerID, coordinatorEpoch)
	p.endTxnLocked(producerID, base, !commit, p.hwm.Load())
	return p.appendLocked(ctx, batch, h, AcksAll)
}

// writableLocked reports the result to answer when the partition no
// longer takes writes (closed or failed). p.mu is held.
func (p *Partition) writableLocked() (ProduceResult, bool) {
	if p.closed {
		return fail(kerr.NotLeaderForPartition, "partition %s-%d is no longer led by this node", p.cfg.Topic.Name, p.cfg.Partition), true
	}
	if p.failed != nil {
		return fail(kerr.KafkaStorageError, "partition storage failed: %v", p.failed), true
	}
	return ProduceResult{}, false
}

// checkSpaceLocked refuses an append on a full disk before it has an
// offset or a place in the producer state, so nothing is half-written and
// the partition stays healthy: the producer retries and succeeds once
// space is freed.
func (p *Partition) checkSpaceLocked() (ProduceResult, bool) {
	if sc, ok := p.log.(storage.SpaceChecker); ok {
		if err := sc.CheckSpace(); err != nil {
			return fail(kerr.KafkaStorageError, "%v", err), true
		}
	}
	return ProduceResult{}, false
}
