package partition

import (
	"context"
	"testing"
)

// TestProducerStateAfterLogStartMoved: the idempotence state is rebuilt
// from the log's batches at open. When DeleteRecords moved the start into
// the producer's last batch, that batch is still there: a retry of it is
// answered with its offset. When it emptied the log, the producer is
// unknown again and may go on with its next sequence, at the log end.
func TestProducerStateAfterLogStartMoved(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var last ProduceResult
	for seq := int32(0); seq < 6; seq += 2 {
		if last = f.produce(idem(9, 0, seq, "a", "b")); last.Err != nil {
			t.Fatal(last.Err)
		}
	}
	// Inside the last batch (offsets 4-5).
	if low, e, msg := f.p.DeleteRecords(ctx, 5); e != nil || low != 5 {
		t.Fatalf("delete below 5: %d %v %s", low, e, msg)
	}
	f.reopen()
	if dup := f.produce(idem(9, 0, 4, "a", "b")); dup.Err != nil || dup.BaseOffset != last.BaseOffset {
		t.Fatalf("retry of the batch holding the log start after reopen: %+v, want offset %d", dup, last.BaseOffset)
	}
	if f.p.HighWatermark() != 6 {
		t.Fatalf("retry was appended: hwm %d", f.p.HighWatermark())
	}

	// Everything deleted: an empty log, no state to rebuild.
	if low, e, msg := f.p.DeleteRecords(ctx, -1); e != nil || low != 6 {
		t.Fatalf("delete all: %d %v %s", low, e, msg)
	}
	f.reopen()
	if r := f.produce(idem(9, 0, 6, "c")); r.Err != nil || r.BaseOffset != 6 {
		t.Fatalf("next sequence after the log was emptied: %+v", r)
	}
	if r := f.produce(idem(9, 0, 7, "d")); r.Err != nil || r.BaseOffset != 7 {
		t.Fatalf("the one after: %+v", r)
	}
}
