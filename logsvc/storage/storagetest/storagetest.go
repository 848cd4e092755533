// Package storagetest is the conformance suite every storage.Engine must
// pass, whatever its mode: the partition layer relies on exactly these
// behaviours.
package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

// Harness builds and restarts engines under test.
type Harness struct {
	// New returns a fresh, empty engine.
	New func(t *testing.T) storage.Engine
	// Reopen closes e cleanly and opens a new engine over the same data.
	Reopen func(t *testing.T, e storage.Engine) storage.Engine
}

// Spec returns a partition spec of a new topic.
func Spec(name string) storage.PartitionSpec {
	return storage.PartitionSpec{Topic: meta.Topic{Name: name, ID: meta.NewTopicID(), Partitions: 1, StorageMode: meta.StorageLocal}}
}

// Append writes a batch of values at the log's end and waits until durable.
func Append(t testing.TB, l storage.Log, next int64, ts int64, values ...string) int64 {
	t.Helper()
	b := recbatchtest.Build(recbatchtest.Values(ts, values...))
	recbatch.SetBaseOffset(b, next)
	h, err := recbatch.Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-l.Append(b, h):
		if err != nil {
			t.Fatalf("append at %d: %v", next, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("append at %d not durable after 30s", next)
	}
	return h.NextOffset()
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("AppendReadReopen", func(t *testing.T) { appendReadReopen(t, h) })
	t.Run("ManyAppendsInFlight", func(t *testing.T) { manyInFlight(t, h) })
	t.Run("OffsetForTimestamp", func(t *testing.T) { offsetForTimestamp(t, h) })
	t.Run("Remove", func(t *testing.T) { remove(t, h) })
	t.Run("DeleteRecords", func(t *testing.T) { deleteRecords(t, h) })
	t.Run("Size", func(t *testing.T) { size(t, h) })
	t.Run("Transactions", func(t *testing.T) { transactions(t, h) })
}

func appendReadReopen(t *testing.T, h Harness) {
	e := h.New(t)
	spec := Spec("a")
	l, err := e.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	next := Append(t, l, 0, 1000, "a", "b", "c")
	next = Append(t, l, next, 2000, "d")
	if l.StartOffset() != 0 || l.EndOffset() != 4 || next != 4 {
		t.Fatalf("start %d end %d next %d", l.StartOffset(), l.EndOffset(), next)
	}
	// Offset 1 lies inside the first batch: the whole batch comes back.
	got, err := l.Read(1, 1<<20, l.EndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	var bases []int64
	if _, err := recbatch.Iterate(got, true, func(h recbatch.Header, _ []byte) error { bases = append(bases, h.BaseOffset); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(bases) != 2 || bases[0] != 0 || bases[1] != 3 {
		t.Fatalf("read bases %v", bases)
	}
	// The high watermark bound excludes the second batch.
	if got, _ := l.Read(0, 1<<20, 3, true); len(got) == 0 || bytes.Equal(got, mustRead(t, l, 0)) {
		t.Fatal("maxOffset did not cut the read")
	}
	if _, err := l.Read(5, 100, 10, true); !errors.Is(err, storage.ErrOffsetOutOfRange) {
		t.Fatalf("read past end: %v", err)
	}
	before := mustRead(t, l, 0)
	e = h.Reopen(t, e)
	l, err = e.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	if l.EndOffset() != 4 || !bytes.Equal(mustRead(t, l, 0), before) {
		t.Fatalf("after reopen end %d, data equal %v", l.EndOffset(), bytes.Equal(mustRead(t, l, 0), before))
	}
	var producers int
	if err := l.ScanHeaders(0, func(recbatch.Header) error { producers++; return nil }); err != nil || producers != 2 {
		t.Fatalf("scan headers: %d %v", producers, err)
	}
}

func mustRead(t testing.TB, l storage.Log, from int64) []byte {
	t.Helper()
	b, err := l.Read(from, 1<<30, l.EndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func manyInFlight(t *testing.T, h Harness) {
	e := h.New(t)
	l, err := e.Open(Spec("b"))
	if err != nil {
		t.Fatal(err)
	}
	var done []<-chan error
	next := int64(0)
	for i := 0; i < 200; i++ {
		b := recbatchtest.Build(recbatchtest.Values(int64(i), "x", "y"))
		recbatch.SetBaseOffset(b, next)
		hd, _ := recbatch.Validate(b)
		done = append(done, l.Append(b, hd))
		next = hd.NextOffset()
	}
	for i, ch := range done {
		if err := <-ch; err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if l.EndOffset() != 400 {
		t.Fatalf("end %d", l.EndOffset())
	}
}

func offsetForTimestamp(t *testing.T, h Harness) {
	e := h.New(t)
	l, err := e.Open(Spec("c"))
	if err != nil {
		t.Fatal(err)
	}
	next := Append(t, l, 0, 1000, "a", "b") // timestamps 1000, 1001
	Append(t, l, next, 5000, "c")
	for _, c := range []struct{ ts, off, at int64 }{{0, 0, 1000}, {1001, 1, 1001}, {1002, 2, 5000}} {
		o, at, ok, err := l.OffsetForTimestamp(c.ts)
		if err != nil || !ok || o != c.off || at != c.at {
			t.Fatalf("ts %d: offset %d at %d ok %v err %v; want %d at %d", c.ts, o, at, ok, err, c.off, c.at)
		}
	}
	if _, _, ok, _ := l.OffsetForTimestamp(6000); ok {
		t.Fatal("found an offset after the last timestamp")
	}
}

func remove(t *testing.T, h Harness) {
	e := h.New(t)
	spec := Spec("d")
	l, err := e.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	Append(t, l, 0, 1, "a")
	if err := l.Remove(); err != nil {
		t.Fatal(err)
	}
	// A topic re-created under a new id starts empty.
	spec2 := Spec("d")
	l2, err := e.Open(spec2)
	if err != nil {
		t.Fatal(err)
	}
	if l2.EndOffset() != 0 {
		t.Fatalf("new topic starts at %d", l2.EndOffset())
	}
}

// bases lists the base offsets of concatenated batches.
func bases(t testing.TB, b []byte) []int64 {
	t.Helper()
	var out []int64
	if _, err := recbatch.Iterate(b, true, func(h recbatch.Header, _ []byte) error { out = append(out, h.BaseOffset); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func deleteRecords(t *testing.T, h Harness) {
	e := h.New(t)
	spec := Spec("e")
	l, err := e.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	next := Append(t, l, 0, 1000, "a", "b", "c") // offsets 0-2, timestamps 1000-1002
	next = Append(t, l, next, 2000, "d", "e")    // 3-4, 2000-2001
	next = Append(t, l, next, 3000, "f")         // 5, 3000
	if err := l.DeleteRecords(next + 1); !errors.Is(err, storage.ErrOffsetOutOfRange) {
		t.Fatalf("delete past the end: %v", err)
	}
	// Offset 4 lies inside the second batch: the start is exactly 4.
	if err := l.DeleteRecords(4); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		if l.StartOffset() != 4 || l.EndOffset() != next {
			t.Fatalf("%s: start %d end %d, want 4 and %d", when, l.StartOffset(), l.EndOffset(), next)
		}
		for _, off := range []int64{0, 3} {
			if _, err := l.Read(off, 1<<20, next, true); !errors.Is(err, storage.ErrOffsetOutOfRange) {
				t.Fatalf("%s: read at %d below the start: %v", when, off, err)
			}
		}
		// A read at the start returns the whole batch holding it.
		if got := bases(t, mustRead(t, l, 4)); len(got) != 2 || got[0] != 3 || got[1] != 5 {
			t.Fatalf("%s: read at the start: bases %v", when, got)
		}
		// Offset 3 (timestamp 2000) is below the start: never an answer.
		for _, c := range []struct{ ts, off, at int64 }{{0, 4, 2001}, {2000, 4, 2001}, {2500, 5, 3000}} {
			o, at, ok, err := l.OffsetForTimestamp(c.ts)
			if err != nil || !ok || o != c.off || at != c.at {
				t.Fatalf("%s: timestamp %d: offset %d at %d ok %v err %v; want %d at %d", when, c.ts, o, at, ok, err, c.off, c.at)
			}
		}
	}
	check("after delete")
	// Never backwards.
	if err := l.DeleteRecords(1); err != nil {
		t.Fatal(err)
	}
	check("after deleting below the start")

	e = h.Reopen(t, e)
	if l, err = e.Open(spec); err != nil {
		t.Fatal(err)
	}
	check("after reopen")

	// Changed configs apply to a running log without disturbing it.
	changed := spec.Topic
	changed.Configs = map[string]string{meta.ConfigSegmentBytes: "1024", meta.ConfigBatchTimeoutMs: "0", meta.ConfigBatchSizeBytes: "1"}
	l.Reconfigure(changed)
	next = Append(t, l, next, 4000, "g")
	next = Append(t, l, next, 5000, "h")
	if got := bases(t, mustRead(t, l, 4)); len(got) != 4 || got[3] != 7 {
		t.Fatalf("after reconfigure: bases %v", got)
	}

	// Everything: start == end, reads at the end are empty, appends go on.
	if err := l.DeleteRecords(next); err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() != next || l.EndOffset() != next {
		t.Fatalf("all deleted: start %d end %d, want %d", l.StartOffset(), l.EndOffset(), next)
	}
	if b, err := l.Read(next, 1<<20, next, true); err != nil || len(b) != 0 {
		t.Fatalf("read at the end: %d bytes, %v", len(b), err)
	}
	if _, _, ok, _ := l.OffsetForTimestamp(0); ok {
		t.Fatal("a deleted record answered a timestamp lookup")
	}
	deletedAll := next
	next = Append(t, l, next, 6000, "i")
	e = h.Reopen(t, e)
	if l, err = e.Open(spec); err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() != deletedAll || l.EndOffset() != next {
		t.Fatalf("reopened: start %d end %d, want %d and %d", l.StartOffset(), l.EndOffset(), deletedAll, next)
	}
	if got := bases(t, mustRead(t, l, deletedAll)); len(got) != 1 || got[0] != deletedAll {
		t.Fatalf("reopened: bases %v", got)
	}
}

// size checks Log.Size: the bytes of the stored batches (local: segment
// files, one batch per segment here; diskless: committed manifest
// entries, one per append here), growing with appends, surviving a
// reopen, and shrinking when DeleteRecords or retention frees whole
// segments or entries.
func size(t *testing.T, h Harness) {
	e := h.New(t)
	spec := Spec("size")
	// One batch per segment (local); flush each batch at once (diskless).
	spec.Topic.Configs = map[string]string{meta.ConfigSegmentBytes: "1", meta.ConfigBatchTimeoutMs: "0"}
	l, err := e.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Size(); got != 0 {
		t.Fatalf("empty log: size %d, want 0", got)
	}
	var lens []int64
	next := int64(0)
	for i, ts := range []int64{1000, 2000, 3000} {
		b := recbatchtest.Build(recbatchtest.Values(ts, "value-a", "value-b"))
		lens = append(lens, int64(len(b)))
		before := l.Size()
		next = Append(t, l, next, ts, "value-a", "value-b")
		if got, want := l.Size(), before+lens[i]; got != want {
			t.Fatalf("after append %d: size %d, want %d", i, got, want)
		}
	}
	total := lens[0] + lens[1] + lens[2]
	// Inside the second batch: only the first goes.
	if err := l.DeleteRecords(3); err != nil {
		t.Fatal(err)
	}
	if got, want := l.Size(), total-lens[0]; got != want {
		t.Fatalf("after DeleteRecords(3): size %d, want %d (the first batch freed)", got, want)
	}
	e = h.Reopen(t, e)
	if l, err = e.Open(spec); err != nil {
		t.Fatal(err)
	}
	if got, want := l.Size(), total-lens[0]; got != want {
		t.Fatalf("after reopen: size %d, want %d", got, want)
	}
	// Keep at most the last batch's bytes: the second batch goes.
	if err := l.ApplyRetention(-1, lens[2]); err != nil {
		t.Fatal(err)
	}
	if got := l.Size(); got != lens[2] {
		t.Fatalf("after retention: size %d, want %d (start %d)", got, lens[2], l.StartOffset())
	}
	if l.StartOffset() != 4 || l.EndOffset() != next {
		t.Fatalf("after retention: start %d end %d, want 4 and %d", l.StartOffset(), l.EndOffset(), next)
	}
}

func transactions(t *testing.T, h Harness) {
	e := h.New(t)
	spec := Spec("txn")
	l, err := e.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	next := AppendTxns(t, l, 0)
	if l.EndOffset() != next {
		t.Fatalf("end %d after the transactions, want %d", l.EndOffset(), next)
	}
	e = h.Reopen(t, e)
	if l, err = e.Open(spec); err != nil {
		t.Fatal(err)
	}
	CheckTxnHeaders(t, l, 0)
}

// TxnProducer and TxnOther are the producer ids AppendTxns writes as.
const (
	TxnProducer int64 = 7
	TxnOther    int64 = 8
)

// AppendTxns appends, from offset next (the log's end), seven offsets
// of transactions: producer TxnProducer's transactional batches at next+0 (2 records) and next+2, producer
// TxnOther's idempotent batch at next+3, TxnProducer's ABORT marker at
// next+4, its transactional batch at next+5 and COMMIT marker at next+6.
// It returns the offset after them. CheckTxnHeaders checks what a scan
// reports of them.
func AppendTxns(t testing.TB, l storage.Log, next int64) int64 {
	t.Helper()
	data := func(pid int64, seq int32, txn bool, values ...string) []byte {
		s := recbatchtest.Values(1000, values...)
		s.ProducerID, s.ProducerEpoch, s.BaseSequence, s.Transactional = pid, 0, seq, txn
		return recbatchtest.Build(s)
	}
	for _, b := range [][]byte{
		data(TxnProducer, 0, true, "t1", "t2"),
		data(TxnProducer, 2, true, "t3"),
		data(TxnOther, 0, false, "i1"),
		recbatch.EndTxnMarkerBatch(TxnProducer, 0, false, 5, 1000),
		data(TxnProducer, 3, true, "t4"),
		recbatch.EndTxnMarkerBatch(TxnProducer, 0, true, 5, 1000),
	} {
		recbatch.SetBaseOffset(b, next)
		hd, err := recbatch.Validate(b)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-l.Append(b, hd):
			if err != nil {
				t.Fatalf("append at %d: %v", next, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("append at %d not durable after 30s", next)
		}
		next = hd.NextOffset()
	}
	return next
}

// CheckTxnHeaders checks what ScanHeaders reports of the batches
// AppendTxns wrote at base: the transactional bit on (at least) the first
// batch of each transaction and on nothing else than TxnProducer's data
// batches, exactly the two markers as control batches with their types
// at their offsets, and TxnOther's idempotent batch with its sequence, not
// transactional. Engines may report more data headers (local segments
// report every batch), never other markers.
func CheckTxnHeaders(t testing.TB, l storage.Log, base int64) {
	t.Helper()
	var txnData, markers []string
	other := false
	err := l.ScanHeaders(base, func(h recbatch.Header) error {
		if h.BaseOffset < base || h.BaseOffset > base+6 {
			return nil
		}
		switch {
		case h.Control():
			markers = append(markers, fmt.Sprintf("%d:%d:%d:txn=%v:coordinator=%d", h.BaseOffset-base, h.ProducerID, h.Marker, h.Transactional(), h.CoordinatorEpoch))
		case h.Transactional():
			txnData = append(txnData, fmt.Sprintf("%d:%d", h.BaseOffset-base, h.ProducerID))
		case h.ProducerID == TxnOther:
			other = h.BaseOffset == base+3 && h.BaseSequence == 0 && h.ProducerEpoch == 0
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantMarkers := []string{
		fmt.Sprintf("4:%d:%d:txn=true:coordinator=5", TxnProducer, recbatch.MarkerAbort),
		fmt.Sprintf("6:%d:%d:txn=true:coordinator=5", TxnProducer, recbatch.MarkerCommit),
	}
	if !slices.Equal(markers, wantMarkers) {
		t.Errorf("control headers %v, want %v", markers, wantMarkers)
	}
	first, second := fmt.Sprintf("0:%d", TxnProducer), fmt.Sprintf("5:%d", TxnProducer)
	for _, d := range txnData {
		if d != first && d != second && d != fmt.Sprintf("2:%d", TxnProducer) {
			t.Errorf("transactional data header %s: not one of producer %d's transactional batches", d, TxnProducer)
		}
	}
	if !slices.Contains(txnData, first) || !slices.Contains(txnData, second) {
		t.Errorf("transactional data headers %v: want %s and %s (each transaction's first batch)", txnData, first, second)
	}
	if !other {
		t.Errorf("producer %d's idempotent batch at %d is missing, transactional or has the wrong facts", TxnOther, base+3)
	}
}
