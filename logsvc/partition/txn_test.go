package partition

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamline-dev/streamline/logsvc/storage/storagetest"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

// txnBatch is a transactional producer's data batch.
func txnBatch(pid int64, epoch int16, seq int32, values ...string) []byte {
	s := recbatchtest.Values(time.Now().UnixMilli(), values...)
	s.ProducerID, s.ProducerEpoch, s.BaseSequence, s.Transactional = pid, epoch, seq, true
	return recbatchtest.Build(s)
}

func plain(values ...string) []byte {
	return recbatchtest.Build(recbatchtest.Values(time.Now().UnixMilli(), values...))
}

func (f *fixture) marker(pid int64, epoch int16, commit bool) ProduceResult {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return f.p.WriteMarker(ctx, Marker{ProducerID: pid, ProducerEpoch: epoch, Commit: commit, CoordinatorEpoch: 1})
}

func (f *fixture) mustMarker(pid int64, epoch int16, commit bool) int64 {
	f.t.Helper()
	r := f.marker(pid, epoch, commit)
	if r.Err != nil {
		f.t.Fatalf("marker of producer %d: %v %s", pid, r.Err, r.Message)
	}
	return r.BaseOffset
}

func (f *fixture) wantProduce(b []byte, wantOffset int64) {
	f.t.Helper()
	if off := f.mustProduce(b); off != wantOffset {
		f.t.Fatalf("batch at %d, want %d", off, wantOffset)
	}
}

func (f *fixture) readCommitted(offset int64, maxBytes int) ReadResult {
	f.t.Helper()
	rr := f.p.ReadIsolated(offset, maxBytes, true, ReadCommitted)
	if rr.Err != nil {
		f.t.Fatalf("read_committed at %d: %v %s", offset, rr.Err, rr.Message)
	}
	return rr
}

// delivered filters a fetch answer the way a read_committed Kafka consumer
// does (the Java client's CompletedFetch): aborted transactions become
// active in first-offset order as the batches pass them, a producer's
// transactional batches are dropped while its abort is active, its abort
// marker ends it, and control batches are never delivered. It returns the
// base offsets of the data batches delivered.
func delivered(t *testing.T, rr ReadResult) []int64 {
	t.Helper()
	pending := rr.AbortedTransactions
	aborted := map[int64]bool{}
	out := []int64{}
	if _, err := recbatch.Iterate(rr.Records, true, func(h recbatch.Header, b []byte) error {
		for len(pending) > 0 && pending[0].FirstOffset <= h.LastOffset() {
			aborted[pending[0].ProducerID] = true
			pending = pending[1:]
		}
		if h.Idempotent() {
			if h.Control() && recbatch.MarkerOf(b) == recbatch.MarkerAbort {
				delete(aborted, h.ProducerID)
			} else if h.Transactional() && aborted[h.ProducerID] {
				return nil
			}
		}
		if !h.Control() {
			out = append(out, h.BaseOffset)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func same(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func (f *fixture) wantLSO(want int64) {
	f.t.Helper()
	if lso := f.p.LastStableOffset(); lso != want {
		f.t.Fatalf("last stable offset %d, want %d (high watermark %d)", lso, want, f.p.HighWatermark())
	}
}

// TestTxnCommitVisibleAbortInvisible: under read_committed a committed
// transaction's batches are delivered and an aborted one's are not (the
// fetch lists the abort); read_uncommitted gets everything and no list.
func TestTxnCommitVisibleAbortInvisible(t *testing.T) {
	f := newFixture(t)
	f.wantProduce(plain("a"), 0)
	f.wantProduce(txnBatch(1, 0, 0, "t1a", "t1b"), 1)
	f.wantProduce(txnBatch(2, 0, 0, "t2a"), 3)
	f.wantProduce(txnBatch(1, 0, 2, "t1c"), 4)
	if off := f.mustMarker(1, 0, true); off != 5 {
		t.Fatalf("commit marker at %d", off)
	}
	if off := f.mustMarker(2, 0, false); off != 6 {
		t.Fatalf("abort marker at %d", off)
	}
	f.wantProduce(plain("b"), 7)
	f.wantLSO(8)

	rr := f.readCommitted(0, 1<<20)
	if !same(rr.AbortedTransactions, []AbortedTxn{{2, 3, 6}}) || rr.LastStableOffset != 8 {
		t.Fatalf("read_committed: aborted %v, LSO %d", rr.AbortedTransactions, rr.LastStableOffset)
	}
	if got := delivered(t, rr); !same(got, []int64{0, 1, 4, 7}) {
		t.Fatalf("read_committed delivers %v, want [0 1 4 7]", got)
	}
	// The stored marker is Kafka's: a control batch of producer 2.
	var markers []string
	_, _ = recbatch.Iterate(rr.Records, false, func(h recbatch.Header, b []byte) error {
		if h.Control() {
			typ, ce, err := recbatch.ParseEndTxnMarker(b)
			markers = append(markers, fmt.Sprintf("%d:%d/%d:%d:%d:%v", h.BaseOffset, h.ProducerID, h.ProducerEpoch, typ, ce, err))
		}
		return nil
	})
	if !same(markers, []string{"5:1/0:1:1:<nil>", "6:2/0:0:1:<nil>"}) {
		t.Fatalf("stored markers %v", markers)
	}

	ru := f.p.Read(0, 1<<20, true)
	if ru.AbortedTransactions != nil || ru.LastStableOffset != 8 || len(ru.Records) != len(rr.Records) {
		t.Fatalf("read_uncommitted: aborted %v, LSO %d, %d bytes", ru.AbortedTransactions, ru.LastStableOffset, len(ru.Records))
	}
	if rr := f.readCommitted(7, 1<<20); len(rr.AbortedTransactions) != 0 || !same(delivered(t, rr), []int64{7}) {
		t.Fatalf("read_committed past the abort: %v %v", rr.AbortedTransactions, delivered(t, rr))
	}
}

// TestTxnLastStableOffset: an open transaction holds the LSO at its first
// offset (reads, ListOffsets latest and by time), its producer may not
// write outside it, and its marker releases the LSO to the high watermark.
func TestTxnLastStableOffset(t *testing.T) {
	f := newFixture(t)
	f.wantProduce(recbatchtest.Build(recbatchtest.Values(1000, "p")), 0)
	s := recbatchtest.Values(2000, "x", "y")
	s.ProducerID, s.ProducerEpoch, s.BaseSequence, s.Transactional = 5, 0, 0, true
	f.wantProduce(recbatchtest.Build(s), 1)
	f.wantProduce(recbatchtest.Build(recbatchtest.Values(3000, "q")), 3)
	if f.p.HighWatermark() != 4 || f.p.OpenTransactions() != 1 {
		t.Fatalf("high watermark %d, %d open transactions", f.p.HighWatermark(), f.p.OpenTransactions())
	}
	f.wantLSO(1)

	rr := f.readCommitted(0, 1<<20)
	if rr.LastStableOffset != 1 || rr.HighWatermark != 4 || !same(delivered(t, rr), []int64{0}) {
		t.Fatalf("read_committed from 0: LSO %d HW %d delivers %v", rr.LastStableOffset, rr.HighWatermark, delivered(t, rr))
	}
	if rr := f.readCommitted(1, 1<<20); len(rr.Records) != 0 {
		t.Fatalf("read_committed at the LSO returned %d bytes", len(rr.Records))
	}
	if rr := f.readCommitted(3, 1<<20); len(rr.Records) != 0 || rr.Err != nil {
		t.Fatalf("read_committed between the LSO and the high watermark: %+v", rr)
	}
	if ru := f.p.Read(1, 1<<20, true); len(ru.Records) == 0 || ru.LastStableOffset != 1 {
		t.Fatalf("read_uncommitted is not held by the transaction: %d bytes, LSO %d", len(ru.Records), ru.LastStableOffset)
	}
	for _, c := range []struct {
		ts        int64
		iso       Isolation
		wantOff   int64
		isolation string
	}{
		{LatestTimestamp, ReadCommitted, 1, "committed latest"},
		{LatestTimestamp, ReadUncommitted, 4, "uncommitted latest"},
		{2500, ReadCommitted, -1, "committed by time past the LSO"},
		{2500, ReadUncommitted, 3, "uncommitted by time"},
		{500, ReadCommitted, 0, "committed by time below the LSO"},
	} {
		if off, _, e, _ := f.p.ListOffsetIsolated(c.ts, c.iso); e != nil || off != c.wantOff {
			t.Errorf("%s: %d %v, want %d", c.isolation, off, e, c.wantOff)
		}
	}

	// Inside its transaction the producer may only write transactionally.
	if r := f.produce(idem(5, 0, 2, "z")); r.Err != kerr.InvalidTxnState {
		t.Fatalf("non-transactional batch inside a transaction: %v", r.Err)
	}
	if off := f.mustMarker(5, 0, true); off != 4 {
		t.Fatalf("marker at %d", off)
	}
	f.wantLSO(5)
	if f.p.OpenTransactions() != 0 {
		t.Fatalf("%d open transactions after the commit", f.p.OpenTransactions())
	}
	if got := delivered(t, f.readCommitted(1, 1<<20)); !same(got, []int64{1, 3}) {
		t.Fatalf("after the commit read_committed delivers %v", got)
	}
	if off, _, _, _ := f.p.ListOffsetIsolated(LatestTimestamp, ReadCommitted); off != 5 {
		t.Fatalf("committed latest after the commit: %d", off)
	}
	// Its sequence goes on outside a transaction now.
	f.wantProduce(idem(5, 0, 2, "z"), 5)
}

// TestTxnTwoProducersInterleaved: the LSO is the first offset of the
// oldest open transaction; committing the older one moves it to the
// younger's start, aborting that one to the high watermark.
func TestTxnTwoProducersInterleaved(t *testing.T) {
	f := newFixture(t)
	f.wantProduce(txnBatch(1, 0, 0, "a"), 0)
	f.wantProduce(txnBatch(2, 0, 0, "b"), 1)
	f.wantProduce(txnBatch(1, 0, 1, "c"), 2)
	f.wantProduce(txnBatch(2, 0, 1, "d"), 3)
	f.wantLSO(0)
	if f.p.OpenTransactions() != 2 {
		t.Fatalf("%d open transactions", f.p.OpenTransactions())
	}
	f.mustMarker(1, 0, true)
	f.wantLSO(1)
	if got := delivered(t, f.readCommitted(0, 1<<20)); !same(got, []int64{0}) {
		t.Fatalf("with producer 2 open read_committed delivers %v", got)
	}
	f.mustMarker(2, 0, false)
	f.wantLSO(6)
	rr := f.readCommitted(0, 1<<20)
	if !same(rr.AbortedTransactions, []AbortedTxn{{2, 1, 5}}) || !same(delivered(t, rr), []int64{0, 2}) {
		t.Fatalf("after both: aborted %v, delivers %v", rr.AbortedTransactions, delivered(t, rr))
	}
}

// TestTxnAbortedListOverlappingFetchesOnly: a fetch gets the aborted
// transactions that overlap what it returns (first offset before its end,
// marker at or after its start), in first-offset order, not marker order.
func TestTxnAbortedListOverlappingFetchesOnly(t *testing.T) {
	f := newFixture(t)
	f.wantProduce(txnBatch(1, 0, 0, "x1"), 0) // X opens
	f.wantProduce(txnBatch(2, 0, 0, "y1"), 1) // Y opens
	f.mustMarker(2, 0, false)                 // 2: Y aborted
	f.wantProduce(txnBatch(1, 0, 1, "x2"), 3)
	f.mustMarker(1, 0, false) // 4: X aborted
	f.wantProduce(plain("p"), 5)
	f.wantProduce(txnBatch(3, 0, 0, "z1"), 6) // Z opens
	f.mustMarker(3, 0, false)                 // 7: Z aborted
	f.wantProduce(plain("q"), 8)

	x, y, z := AbortedTxn{1, 0, 4}, AbortedTxn{2, 1, 2}, AbortedTxn{3, 6, 7}
	if got := f.p.AbortedTransactions(); !same(got, []AbortedTxn{y, x, z}) {
		t.Fatalf("aborted list (marker order) %v", got)
	}
	for _, c := range []struct {
		name      string
		from      int64
		maxBytes  int
		aborted   []AbortedTxn
		delivered []int64
	}{
		{"whole log", 0, 1 << 20, []AbortedTxn{x, y, z}, []int64{5, 8}},
		{"after X's and Y's markers", 5, 1 << 20, []AbortedTxn{z}, []int64{5, 8}},
		{"first batch only", 0, 1, []AbortedTxn{x}, []int64{}},
		{"X's second batch only", 3, 1, []AbortedTxn{x}, []int64{}},
		{"the plain batch only", 5, 1, nil, []int64{5}},
		{"the last batch", 8, 1 << 20, nil, []int64{8}},
	} {
		rr := f.readCommitted(c.from, c.maxBytes)
		if !same(rr.AbortedTransactions, c.aborted) {
			t.Errorf("%s: aborted %v, want %v", c.name, rr.AbortedTransactions, c.aborted)
		}
		if got := delivered(t, rr); !same(got, c.delivered) {
			t.Errorf("%s: delivers %v, want %v", c.name, got, c.delivered)
		}
	}
}

// crashImage copies the data directory of a running engine: what a kill -9
// leaves (the WAL is fsynced at every ack; nothing is closed cleanly). The
// segment files lose their second half, as un-fsynced pages would, so the
// batches come back from the WAL.
func crashImage(t *testing.T, f *fixture) string {
	t.Helper()
	image := t.TempDir()
	if out, err := exec.Command("cp", "-a", f.dir+"/.", image).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	segs, _ := filepath.Glob(filepath.Join(image, "partitions", f.spec.Stream(), "*.log"))
	if len(segs) == 0 {
		t.Fatal("no segment files in the image")
	}
	for _, s := range segs {
		fi, err := os.Stat(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(s, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
	}
	return image
}

// TestTxnStateRebuiltAfterCrash: killed between a transaction's data and
// its marker, the partition reopens with the transaction open (the LSO
// held at its first offset, its producer inside it) and with the aborted
// list of the transactions that ended; the coordinator's marker then ends
// it, and a clean reopen rebuilds the same list.
func TestTxnStateRebuiltAfterCrash(t *testing.T) {
	f := &fixture{t: t, dir: t.TempDir(), spec: storagetest.Spec("p"), epoch: 3, checkpoint: time.Hour}
	f.open()
	f.wantProduce(txnBatch(1, 0, 0, "a"), 0) // producer 1: no marker before the crash
	f.wantProduce(txnBatch(2, 0, 0, "b"), 1)
	f.mustMarker(2, 0, false) // 2
	f.wantProduce(txnBatch(3, 0, 0, "c"), 3)
	f.mustMarker(3, 0, true) // 4
	f.wantProduce(plain("p"), 5)
	f.wantProduce(txnBatch(1, 0, 1, "d"), 6)

	g := &fixture{t: t, dir: crashImage(t, f), spec: f.spec, epoch: 4, checkpoint: time.Hour}
	g.open()
	if g.p.HighWatermark() != 7 || g.p.OpenTransactions() != 1 {
		t.Fatalf("after the crash: high watermark %d, %d open transactions", g.p.HighWatermark(), g.p.OpenTransactions())
	}
	g.wantLSO(0)
	if got := g.p.AbortedTransactions(); !same(got, []AbortedTxn{{2, 1, 2}}) {
		t.Fatalf("aborted list after the crash %v", got)
	}
	if rr := g.readCommitted(0, 1<<20); len(rr.Records) != 0 {
		t.Fatalf("read_committed returned %d bytes past the open transaction's start", len(rr.Records))
	}
	if r := g.produce(idem(1, 0, 2, "x")); r.Err != kerr.InvalidTxnState {
		t.Fatalf("non-transactional batch of the reopened transaction's producer: %v", r.Err)
	}
	if off := g.mustMarker(1, 0, false); off != 7 {
		t.Fatalf("marker at %d", off)
	}
	g.wantLSO(8)
	want := []AbortedTxn{{2, 1, 2}, {1, 0, 7}}
	if got := g.p.AbortedTransactions(); !same(got, want) {
		t.Fatalf("aborted list %v, want %v", got, want)
	}
	if got := delivered(t, g.readCommitted(0, 1<<20)); !same(got, []int64{3, 5}) {
		t.Fatalf("read_committed delivers %v", got)
	}
	g.reopen()
	if got := g.p.AbortedTransactions(); !same(got, want) || g.p.OpenTransactions() != 0 {
		t.Fatalf("after a clean reopen: aborted %v, %d open", got, g.p.OpenTransactions())
	}
	g.wantLSO(8)
}

// TestTxnMarkerEpochs: a marker older than the producer's epoch is
// refused and changes nothing; a newer one ends the transaction and
// fences the older epoch for data (also after a reopen), and the new
// epoch starts at sequence 0.
func TestTxnMarkerEpochs(t *testing.T) {
	f := newFixture(t)
	f.wantProduce(txnBatch(1, 2, 0, "a"), 0)
	if r := f.marker(1, 1, false); r.Err != kerr.InvalidProducerEpoch || r.BaseOffset != -1 {
		t.Fatalf("marker at an older epoch: %+v", r)
	}
	if f.p.HighWatermark() != 1 || f.p.OpenTransactions() != 1 {
		t.Fatalf("a refused marker was written: high watermark %d, %d open", f.p.HighWatermark(), f.p.OpenTransactions())
	}
	if off := f.mustMarker(1, 3, false); off != 1 {
		t.Fatalf("marker at a newer epoch at %d", off)
	}
	f.wantLSO(2)
	if got := f.p.AbortedTransactions(); !same(got, []AbortedTxn{{1, 0, 1}}) {
		t.Fatalf("aborted %v", got)
	}
	check := func(when string) {
		t.Helper()
		if r := f.produce(txnBatch(1, 2, 1, "b")); r.Err != kerr.InvalidProducerEpoch {
			t.Fatalf("%s: transactional batch at the fenced epoch: %v", when, r.Err)
		}
		if r := f.produce(idem(1, 2, 1, "b")); r.Err != kerr.InvalidProducerEpoch {
			t.Fatalf("%s: idempotent batch at the fenced epoch: %v", when, r.Err)
		}
		if r := f.produce(txnBatch(1, 3, 5, "c")); r.Err != kerr.OutOfOrderSequenceNumber {
			t.Fatalf("%s: first batch of the marker's epoch not at 0: %v", when, r.Err)
		}
	}
	check("running")
	f.reopen()
	check("reopened")
	f.wantProduce(txnBatch(1, 3, 0, "c"), 2)
	f.wantLSO(2)
	if f.p.OpenTransactions() != 1 {
		t.Fatalf("%d open transactions at the new epoch", f.p.OpenTransactions())
	}
}

// TestTxnVersion2MarkerMustBeNewer: under transaction version 2 the
// coordinator ends a transaction at the bumped epoch, and the producer's
// next transaction runs at that epoch; a second marker at that epoch (a
// retry, or a deposed coordinator's) is INVALID_PRODUCER_EPOCH and does
// not end the next transaction. A version 1 marker at the current epoch
// still does (the classic protocol ends at the transaction's own epoch).
func TestTxnVersion2MarkerMustBeNewer(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v2 := func(epoch int16) ProduceResult {
		return f.p.WriteMarker(ctx, Marker{ProducerID: 1, ProducerEpoch: epoch, Commit: true, CoordinatorEpoch: 1, TransactionVersion: 2})
	}
	f.wantProduce(txnBatch(1, 4, 0, "a"), 0)
	if r := v2(5); r.Err != nil || r.BaseOffset != 1 {
		t.Fatalf("version 2 commit at the bumped epoch: %+v", r)
	}
	f.wantProduce(txnBatch(1, 5, 0, "b"), 2) // the next transaction, at the bumped epoch
	if r := v2(5); r.Err != kerr.InvalidProducerEpoch {
		t.Fatalf("a second version 2 marker at epoch 5: %v, want INVALID_PRODUCER_EPOCH", r.Err)
	}
	if f.p.OpenTransactions() != 1 {
		t.Fatalf("%d open transactions after a refused marker, want the next one still open", f.p.OpenTransactions())
	}
	f.wantLSO(2)
	if off := f.mustMarker(1, 5, true); off != 3 { // version 1 at the current epoch
		t.Fatalf("version 1 marker at %d", off)
	}
	if f.p.OpenTransactions() != 0 {
		t.Fatalf("%d open transactions after the version 1 marker", f.p.OpenTransactions())
	}
}

// TestTxnCoordinatorFenced: once a marker of a producer from coordinator
// epoch 3 is in the log, a marker from epoch 2 (a deposed coordinator
// still writing) is TRANSACTION_COORDINATOR_FENCED and changes nothing,
// also after a reopen (the epoch is rebuilt from the marker's record);
// the same or a newer coordinator epoch is written.
func TestTxnCoordinatorFenced(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mark := func(coordinator int32) ProduceResult {
		return f.p.WriteMarker(ctx, Marker{ProducerID: 1, ProducerEpoch: 0, Commit: false, CoordinatorEpoch: coordinator})
	}
	f.wantProduce(txnBatch(1, 0, 0, "a"), 0)
	if r := mark(3); r.Err != nil || r.BaseOffset != 1 {
		t.Fatalf("abort from coordinator epoch 3: %+v", r)
	}
	check := func(when string, seq int32) {
		t.Helper()
		f.wantProduce(txnBatch(1, 0, seq, "b"), f.p.HighWatermark())
		if r := mark(2); r.Err != kerr.TransactionCoordinatorFenced {
			t.Fatalf("%s: marker from coordinator epoch 2: %v, want TRANSACTION_COORDINATOR_FENCED", when, r.Err)
		}
		if f.p.OpenTransactions() != 1 {
			t.Fatalf("%s: a fenced marker ended the transaction", when)
		}
	}
	check("running", 1)
	f.reopen()
	if r := mark(2); r.Err != kerr.TransactionCoordinatorFenced {
		t.Fatalf("reopened: marker from coordinator epoch 2: %v, want TRANSACTION_COORDINATOR_FENCED", r.Err)
	}
	if r := mark(3); r.Err != nil {
		t.Fatalf("reopened: marker from coordinator epoch 3: %v", r.Err)
	}
	if f.p.OpenTransactions() != 0 {
		t.Fatal("the marker from the current coordinator did not end the transaction")
	}
	check("after a newer marker", 2)
	if r := mark(4); r.Err != nil || f.p.OpenTransactions() != 0 {
		t.Fatalf("marker from coordinator epoch 4: %+v, %d open", r, f.p.OpenTransactions())
	}
}

// TestTxnMarkerWithoutOpenTransaction: a marker for a producer with no
// open transaction (a coordinator's retry, a producer never seen) is
// appended and changes nothing else: no aborted entry, the LSO at the
// high watermark, the producer's sequence going on.
func TestTxnMarkerWithoutOpenTransaction(t *testing.T) {
	f := newFixture(t)
	f.wantProduce(idem(4, 0, 0, "a"), 0)
	for i, m := range []struct {
		pid    int64
		commit bool
	}{{4, false}, {4, false}, {9, true}} {
		if off := f.mustMarker(m.pid, 0, m.commit); off != int64(i+1) {
			t.Fatalf("marker %d at %d", i, off)
		}
	}
	f.wantProduce(idem(4, 0, 1, "b"), 4)
	f.wantLSO(5)
	if got := f.p.AbortedTransactions(); len(got) != 0 || f.p.OpenTransactions() != 0 {
		t.Fatalf("aborted %v, %d open", got, f.p.OpenTransactions())
	}
	rr := f.readCommitted(0, 1<<20)
	if len(rr.AbortedTransactions) != 0 || !same(delivered(t, rr), []int64{0, 4}) {
		t.Fatalf("read_committed: aborted %v, delivers %v", rr.AbortedTransactions, delivered(t, rr))
	}
	f.reopen()
	if got := f.p.AbortedTransactions(); len(got) != 0 || f.p.OpenTransactions() != 0 {
		t.Fatalf("after reopen: aborted %v, %d open", got, f.p.OpenTransactions())
	}
	if r := f.produce(idem(4, 0, 1, "b")); r.Err != nil || r.BaseOffset != 4 {
		t.Fatalf("retry after reopen: %+v", r)
	}
}

// TestTxnAbortedTrimmedByDeleteRecords: DeleteRecords forgets the aborted
// transactions wholly below the new log start and keeps one it cuts into.
func TestTxnAbortedTrimmedByDeleteRecords(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.wantProduce(txnBatch(1, 0, 0, "a"), 0)
	f.mustMarker(1, 0, false) // 1
	f.wantProduce(txnBatch(2, 0, 0, "b"), 2)
	f.wantProduce(plain("p"), 3)
	f.mustMarker(2, 0, false) // 4
	f.wantProduce(plain("q"), 5)
	if low, e, msg := f.p.DeleteRecords(ctx, 3); e != nil || low != 3 {
		t.Fatalf("delete below 3: %d %v %s", low, e, msg)
	}
	if got := f.p.AbortedTransactions(); !same(got, []AbortedTxn{{2, 2, 4}}) {
		t.Fatalf("after deleting below 3: %v", got)
	}
	if rr := f.readCommitted(3, 1<<20); !same(rr.AbortedTransactions, []AbortedTxn{{2, 2, 4}}) || !same(delivered(t, rr), []int64{3, 5}) {
		t.Fatalf("read_committed from the start: %v %v", rr.AbortedTransactions, delivered(t, rr))
	}
	if low, e, msg := f.p.DeleteRecords(ctx, 5); e != nil || low != 5 {
		t.Fatalf("delete below 5: %d %v %s", low, e, msg)
	}
	if got := f.p.AbortedTransactions(); len(got) != 0 {
		t.Fatalf("after deleting below 5: %v", got)
	}
	f.reopen()
	if got := f.p.AbortedTransactions(); len(got) != 0 {
		t.Fatalf("after reopen: %v", got)
	}
}

// TestTxnAbortedTrimmedByRetention: retention that removes an aborted
// transaction's segments forgets it.
func TestTxnAbortedTrimmedByRetention(t *testing.T) {
	f := &fixture{t: t, dir: t.TempDir(), spec: storagetest.Spec("p"), epoch: 3}
	f.spec.Topic.Configs = map[string]string{meta.ConfigSegmentBytes: "1024"}
	f.open()
	big := strings.Repeat("x", 400)
	f.wantProduce(txnBatch(1, 0, 0, big), 0)
	f.mustMarker(1, 0, false) // 1
	for i := range 4 {
		f.wantProduce(plain(big), int64(2+i))
	}
	if got := f.p.AbortedTransactions(); len(got) != 1 {
		t.Fatalf("aborted before retention: %v", got)
	}
	changed := f.spec.Topic
	changed.Configs = map[string]string{meta.ConfigSegmentBytes: "1024", meta.ConfigRetentionBytes: "1024"}
	f.p.Reconfigure(changed)
	if err := f.p.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	if s := f.p.LogStartOffset(); s < 2 {
		t.Fatalf("retention kept the start at %d", s)
	}
	if got := f.p.AbortedTransactions(); len(got) != 0 {
		t.Fatalf("aborted after retention: %v", got)
	}
}

// TestTxnOnEveryMode: transactional batches and markers are taken on
// topics of every storage mode (the fixture's engine is local: this is the
// partition's mode guard; services/conformance and e2e run the real
// diskless and hybrid engines). Client-sent control batches and
// transactional batches without a producer id are INVALID_RECORD
// everywhere.
func TestTxnOnEveryMode(t *testing.T) {
	for _, mode := range []meta.StorageMode{meta.StorageHybrid, meta.StorageDiskless} {
		f := &fixture{t: t, dir: t.TempDir(), spec: storagetest.Spec("p"), epoch: 3}
		f.spec.Topic.StorageMode = mode
		f.open()
		if off := f.mustProduce(txnBatch(1, 0, 0, "a")); off != 0 || f.p.OpenTransactions() != 1 || f.p.LastStableOffset() != 0 {
			t.Errorf("%s: transactional batch at %d, %d open, LSO %d", mode, off, f.p.OpenTransactions(), f.p.LastStableOffset())
		}
		if m := f.marker(1, 0, false); m.Err != nil || m.BaseOffset != 1 {
			t.Errorf("%s marker: %+v", mode, m)
		}
		if got := f.p.AbortedTransactions(); f.p.OpenTransactions() != 0 || len(got) != 1 || got[0] != (AbortedTxn{ProducerID: 1, FirstOffset: 0, LastOffset: 1}) {
			t.Errorf("%s: after the abort %d open, aborted %v", mode, f.p.OpenTransactions(), got)
		}
		if off := f.mustProduce(idem(1, 0, 1, "b")); f.p.OpenTransactions() != 0 || f.p.LastStableOffset() != off+1 {
			t.Errorf("%s: idempotent batch at %d, %d open, LSO %d", mode, off, f.p.OpenTransactions(), f.p.LastStableOffset())
		}
	}
	f := newFixture(t)
	s := recbatchtest.Values(1, "a")
	s.Transactional = true
	if r := f.produce(recbatchtest.Build(s)); r.Err != kerr.InvalidRecord {
		t.Errorf("transactional batch without a producer id: %v", r.Err)
	}
	if r := f.produce(recbatch.EndTxnMarkerBatch(1, 0, true, 0, 1)); r.Err != kerr.InvalidRecord {
		t.Errorf("client-sent control batch: %v", r.Err)
	}
	if f.p.HighWatermark() != 0 {
		t.Fatalf("refused batches were written: high watermark %d", f.p.HighWatermark())
	}
}

// TestTxnMarkerHoldsLSOUntilReplicated: a marker closes its transaction
// once appended, but the LSO stays at the transaction's start until the
// high watermark passes the marker (Kafka's unreplicated transactions), so
// read_committed never shows a transaction whose outcome is not on the
// ISR; the marker is answered only then, like an acks=all produce.
func TestTxnMarkerHoldsLSOUntilReplicated(t *testing.T) {
	f := &fixture{t: t, dir: t.TempDir(), spec: storagetest.Spec("p"), epoch: 3, node: "n1",
		record: meta.Partition{Leader: "n1", LeaderEpoch: 3, Replicas: []string{"n1", "n2"}, ISR: []string{"n1", "n2"}}}
	f.open()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f.p.ReplicaFetch("n2", 0, -1, 1<<20)
	if r := f.p.SubmitAcks(ctx, txnBatch(1, 0, 0, "a"), AcksLeader).Wait(ctx); r.Err != nil || r.BaseOffset != 0 {
		t.Fatalf("acks=1 transactional batch: %+v", r)
	}
	f.p.ReplicaFetch("n2", 1, -1, 1<<20)
	if f.p.HighWatermark() != 1 {
		t.Fatalf("high watermark %d", f.p.HighWatermark())
	}
	f.wantLSO(0)
	w := f.p.SubmitMarker(ctx, Marker{ProducerID: 1, ProducerEpoch: 0, Commit: true})
	// The follower fetches until the marker is durable on the leader.
	for {
		rf := f.p.ReplicaFetch("n2", 1, -1, 1<<20)
		if rf.Err != nil {
			t.Fatal(rf.Err, rf.Message)
		}
		if len(rf.Records) > 0 {
			break
		}
		select {
		case <-f.p.Appended():
		case <-ctx.Done():
			t.Fatal("the marker never became durable")
		}
	}
	if f.p.OpenTransactions() != 0 || f.p.HighWatermark() != 1 {
		t.Fatalf("%d open, high watermark %d", f.p.OpenTransactions(), f.p.HighWatermark())
	}
	f.wantLSO(0)
	if rr := f.readCommitted(0, 1<<20); len(rr.Records) != 0 {
		t.Fatalf("read_committed returned the transaction before its marker was replicated")
	}
	f.p.ReplicaFetch("n2", 2, -1, 1<<20)
	f.wantLSO(2)
	if r := w.Wait(ctx); r.Err != nil || r.BaseOffset != 1 {
		t.Fatalf("marker: %+v", r)
	}
	if got := delivered(t, f.readCommitted(0, 1<<20)); !same(got, []int64{0}) {
		t.Fatalf("read_committed delivers %v", got)
	}
}

// TestTxnLSONotBelowLogStart: DeleteRecords may move the log start past an
// open transaction's first offset (up to the high watermark); the LSO is
// then the log start, as in Kafka, and reads there are not out of range.
// Reopened, the transaction's batches are gone and nothing holds the LSO.
func TestTxnLSONotBelowLogStart(t *testing.T) {
	f := newFixture(t)
	f.wantProduce(txnBatch(1, 0, 0, "a"), 0)
	f.wantProduce(plain("p"), 1)
	f.wantProduce(plain("q"), 2)
	f.wantLSO(0)
	if low, e, msg := f.p.DeleteRecords(context.Background(), 2); e != nil || low != 2 {
		t.Fatalf("delete below 2: %d %v %s", low, e, msg)
	}
	f.wantLSO(2)
	if rr := f.readCommitted(2, 1<<20); len(rr.Records) != 0 || rr.LastStableOffset != 2 {
		t.Fatalf("read_committed at the log start: %d bytes, LSO %d", len(rr.Records), rr.LastStableOffset)
	}
	f.reopen()
	f.wantLSO(3)
	if f.p.OpenTransactions() != 0 {
		t.Fatalf("%d open transactions after reopen", f.p.OpenTransactions())
	}
	f.mustMarker(1, 0, false)
	if got := f.p.AbortedTransactions(); len(got) != 0 {
		t.Fatalf("aborted %v for a transaction whose batches are gone", got)
	}
}
