package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/logsvc/storage/storagetest"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/uploader/merge"
)

// TestDisklessTxnFactsSurviveMerge: the transaction events of intake
// entries (storagetest.AppendTxns, twice) are concatenated into the merged
// segment's entry, a transaction's begin repeated by a later intake entry
// dropped (bounded by markers), and a fresh engine's ScanHeaders reports
// them from the merged entry as from the intake ones.
func TestDisklessTxnFactsSurviveMerge(t *testing.T) {
	me := newMergeEnv(t)
	spec := storagetest.Spec("txn-merged")
	spec.Topic.StorageMode = meta.StorageDiskless
	l, err := me.open().Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	next := storagetest.AppendTxns(t, l, 0)
	next = storagetest.AppendTxns(t, l, next)
	storagetest.CheckTxnHeaders(t, l, 0)
	storagetest.CheckTxnHeaders(t, l, 7)
	if st := me.pass(merge.Config{RoundBytes: 1 << 20, TargetBytes: 3 << 20, ChunkBytes: 64 << 10}); st.Failed != 0 || st.Conflicts != 0 {
		t.Fatalf("merge pass: %+v", st)
	}
	rs, err := me.store.RangesFrom(context.Background(), spec.Topic.ID, 0, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Segment == nil || rs[0].LastOffset != next-1 {
		t.Fatalf("manifest after the merge: %+v, want one segment entry up to %d", rs, next-1)
	}
	var kinds []meta.TxnKind
	for _, e := range rs[0].Txns {
		kinds = append(kinds, e.Kind)
	}
	// Per AppendTxns: begin, ABORT, begin, COMMIT (the batch at +2
	// continues the transaction begun at +0).
	if want := "[b a b c b a b c]"; fmtKinds(kinds) != want {
		t.Fatalf("merged entry's transaction events %v (%+v), want %s", kinds, rs[0].Txns, want)
	}
	l, err = me.open().Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	storagetest.CheckTxnHeaders(t, l, 0)
	storagetest.CheckTxnHeaders(t, l, 7)
}

func fmtKinds(k []meta.TxnKind) string {
	s := "["
	for i, x := range k {
		if i > 0 {
			s += " "
		}
		s += string(x)
	}
	return s + "]"
}

// TestHybridTxnFactsFromTier: with local.retention.bytes=0 the segments
// holding transactions leave the local disk once uploaded, and the reopened
// log's ScanHeaders reports their transactional batches and markers from
// the tier's manifest entries (built by the segment upload).
func TestHybridTxnFactsFromTier(t *testing.T) {
	h, _ := hybridHarness(t, map[string]string{meta.ConfigSegmentBytes: "1024", meta.ConfigRetentionMs: "-1", meta.ConfigLocalRetentionBytes: "0"})
	e := h.New(t)
	spec := storagetest.Spec("txn-tiered")
	l, err := e.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	next := storagetest.AppendTxns(t, l, 0)
	for i := 0; i < 30; i++ {
		next = storagetest.Append(t, l, next, int64(1000*(i+1)), "value-1", "value-2", "value-3")
	}
	tierStart := func() int64 { return l.(interface{ TierStart() int64 }).TierStart() }
	deadline := time.Now().Add(30 * time.Second)
	for tierStart() <= 7 {
		if time.Now().After(deadline) {
			t.Fatalf("tier start %d, log end %d: uploads did not catch up", tierStart(), next)
		}
		time.Sleep(20 * time.Millisecond)
	}
	e = h.Reopen(t, e)
	if l, err = e.Open(spec); err != nil {
		t.Fatal(err)
	}
	if s := tierStart(); s <= 7 {
		t.Fatalf("reopened: local copy starts at %d, the transactions are not only in the tier", s)
	}
	storagetest.CheckTxnHeaders(t, l, 0)
}
