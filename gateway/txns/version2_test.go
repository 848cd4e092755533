package txns_test

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/gateway/txns"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TestTransactionVersion2 is KIP-890 part 2 at the coordinator: the
// implicit adds of Produce v12 and TxnOffsetCommit v5 start the
// transaction, EndTxn v5 bumps the epoch and writes the markers at the
// bumped epoch, a retry with the epoch before the bump gets the same
// answer, an abort of no transaction bumps the epoch, a commit of none is
// refused, and an exhausted epoch ends with a new producer id.
func TestTransactionVersion2(t *testing.T) {
	v := newEnv(t)
	seedExhausted(v, "v2-exhausted", 9001)
	n := v.start("gw-a", time.Hour)
	ctx := context.Background()
	end := func(id string, p txns.ProducerIDAndEpoch, commit bool) (txns.ProducerIDAndEpoch, *kerr.Error) {
		return n.txns.EndTxn(ctx, id, p, commit, true)
	}

	p := initPID(t, n, "v2", nil)
	allErr(t, "implicit add", n.txns.ImplicitAddPartitions(ctx, "v2", p, tps("t1", 0, "t2", 0)), nil)
	wantErr(t, "implicit group add", n.txns.ImplicitAddOffsets(ctx, "v2", p, "grp"), nil)
	if m := v.stored("v2"); m.State != meta.TxnOngoing || len(m.Partitions) != 2 || !slices.Equal(m.Groups, []string{"grp"}) {
		t.Fatalf("after the implicit adds: %+v", m)
	}
	next, e := end("v2", p, true)
	bumped := txns.ProducerIDAndEpoch{ID: p.ID, Epoch: p.Epoch + 1}
	if e != nil || next != bumped {
		t.Fatalf("commit: %+v %v, want %+v", next, e, bumped)
	}
	written := n.markers.writtenFor(p.ID)
	if len(written) != 2 {
		t.Fatalf("commit wrote %d markers, want 2", len(written))
	}
	for _, mk := range written {
		if !mk.Commit || mk.ProducerEpoch != bumped.Epoch || mk.TransactionVersion != 2 {
			t.Fatalf("marker %+v: want a version 2 commit at the bumped epoch %d", mk, bumped.Epoch)
		}
	}
	if m := v.stored("v2"); m.State != meta.TxnCompleteCommit || m.ProducerEpoch != bumped.Epoch || m.LastProducerEpoch != p.Epoch {
		t.Fatalf("after commit: %+v", m)
	}

	// A retry (the answer was lost) is recognised by the epoch before the
	// bump; it writes nothing and gets the same answer.
	if again, e := end("v2", p, true); e != nil || again != bumped {
		t.Fatalf("retried commit: %+v %v, want %+v", again, e, bumped)
	}
	wantErr(t, "abort retried with the epoch before the bump", errOf(end("v2", p, false)), kerr.InvalidTxnState)
	if len(n.markers.writtenFor(p.ID)) != 2 {
		t.Fatal("a retried commit wrote markers again")
	}
	// A late batch of the ended transaction: its epoch is fenced.
	allErr(t, "add at the old epoch", n.txns.ImplicitAddPartitions(ctx, "v2", p, tps("t1", 1)), kerr.ProducerFenced)

	// At the bumped epoch: committing nothing is refused, aborting
	// nothing bumps the epoch again and writes no marker.
	wantErr(t, "commit of no transaction", errOf(end("v2", bumped, true)), kerr.InvalidTxnState)
	next, e = end("v2", bumped, false)
	if want := (txns.ProducerIDAndEpoch{ID: p.ID, Epoch: bumped.Epoch + 1}); e != nil || next != want {
		t.Fatalf("abort of no transaction: %+v %v, want %+v", next, e, want)
	}
	if len(n.markers.writtenFor(p.ID)) != 2 {
		t.Fatal("an empty abort wrote markers")
	}
	// A version 1 end (EndTxn v0-4) of the next transaction keeps the
	// epoch.
	allErr(t, "add", add(t, n, "v2", next, tps("t1", 1)), nil)
	if same, e := n.txns.EndTxn(ctx, "v2", next, true, false); e != nil || same != next {
		t.Fatalf("version 1 commit: %+v %v, want %+v", same, e, next)
	}
	if w := n.markers.writtenFor(p.ID); len(w) != 3 || w[2].ProducerEpoch != next.Epoch || w[2].TransactionVersion != 0 {
		t.Fatalf("version 1 marker: %+v", w[len(w)-1])
	}

	// An exhausted epoch: the markers carry the last epoch, and the
	// producer continues under a new id at epoch 0.
	old := txns.ProducerIDAndEpoch{ID: 9001, Epoch: math.MaxInt16 - 1}
	allErr(t, "add with an exhausted epoch", n.txns.ImplicitAddPartitions(ctx, "v2-exhausted", old, tps("t2", 0)), nil)
	rotated, e := end("v2-exhausted", old, true)
	if e != nil || rotated.ID == old.ID || rotated.ID < 0 || rotated.Epoch != 0 {
		t.Fatalf("commit at an exhausted epoch: %+v %v, want a new producer id at epoch 0", rotated, e)
	}
	if w := n.markers.writtenFor(old.ID); len(w) != 1 || w[0].ProducerEpoch != math.MaxInt16 {
		t.Fatalf("markers at an exhausted epoch: %+v, want one at epoch %d", w, math.MaxInt16)
	}
	if again, e := end("v2-exhausted", old, true); e != nil || again != rotated {
		t.Fatalf("retried commit after the rotation: %+v %v, want %+v", again, e, rotated)
	}
	if m := v.stored("v2-exhausted"); m.ProducerID != rotated.ID || m.LastProducerID != old.ID || m.State != meta.TxnCompleteCommit {
		t.Fatalf("after the rotation: %+v", m)
	}
	allErr(t, "the new producer id adds", n.txns.ImplicitAddPartitions(ctx, "v2-exhausted", rotated, tps("t2", 0)), nil)
	allErr(t, "the old producer id adds", n.txns.ImplicitAddPartitions(ctx, "v2-exhausted", old, tps("t2", 0)), kerr.InvalidProducerIDMapping)
}
