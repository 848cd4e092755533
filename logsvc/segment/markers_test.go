package segment

import (
	"fmt"
	"testing"

	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

// TestScanHeadersReadsMarkers: ScanHeaders reports what each control
// batch's record says, whether the record is in the header window already
// or lies past its end (the window ends 4 bytes into the control batch's
// record), and nothing for data batches.
func TestScanHeadersReadsMarkers(t *testing.T) {
	l := openLog(t, t.TempDir(), Config{})
	marker := func(commit bool) []byte {
		b := recbatch.EndTxnMarkerBatch(5, 1, commit, 0, 1)
		recbatch.SetBaseOffset(b, l.EndOffset())
		return b
	}
	// A data batch at position 0 that ends the first 16 KiB window (read
	// from position 0) just after the next batch's header.
	var big []byte
	for n := 1; ; n++ {
		if big = recbatchtest.Build(recbatchtest.Values(0, string(make([]byte, n)))); len(big) >= headerWindow-recbatch.HeaderSize-4 {
			break
		}
	}
	if len(big) != headerWindow-recbatch.HeaderSize-4 {
		t.Fatalf("could not size the big batch: %d", len(big))
	}
	mustAppend(t, l, big)
	mustAppend(t, l, marker(false))
	mustAppend(t, l, mkBatch(l.EndOffset(), 0, 2))
	mustAppend(t, l, marker(true))
	mustAppend(t, l, marker(false))
	mustAppend(t, l, mkBatch(l.EndOffset(), 0, 1))

	var got []recbatch.Marker
	if err := l.ScanHeaders(0, func(h recbatch.Header) error {
		if h.Control() != (h.Marker != recbatch.MarkerNone) {
			t.Errorf("batch at %d: control %v marker %v", h.BaseOffset, h.Control(), h.Marker)
		}
		got = append(got, h.Marker)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []recbatch.Marker{recbatch.MarkerNone, recbatch.MarkerAbort, recbatch.MarkerNone, recbatch.MarkerCommit, recbatch.MarkerAbort, recbatch.MarkerNone}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("markers %v, want %v", got, want)
	}
}
