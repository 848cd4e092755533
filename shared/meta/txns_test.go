package meta_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
)

// TestTxnStateRoundTripAndFencing: a transaction's state survives etcd
// as written; a write with the guard of a gateway that lost the shard is
// refused (ErrNotCoordinator), a write from a stale read is refused
// (ErrConflict), and the coordinator epoch grows with every takeover.
func TestTxnStateRoundTripAndFencing(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := meta.NewStore(e.Client, "/test/")

	const id = "orders/tx 1" // slashes and spaces must survive the key escaping
	shard := meta.GroupShard(id)
	leaseA, err := e.Client.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	guardA, ok, err := store.ClaimGroupShard(ctx, leaseA.ID, shard, "gw-a")
	if err != nil || !ok {
		t.Fatalf("claim A: ok=%v err=%v", ok, err)
	}
	epochA, err := store.BumpTxnCoordinatorEpoch(ctx, guardA, "gw-a")
	if err != nil || epochA < 1 {
		t.Fatalf("coordinator epoch of A: %d %v", epochA, err)
	}

	if st, err := store.LoadTxn(ctx, id); err != nil || st.Meta != nil || st.Revision != 0 {
		t.Fatalf("unknown transactional id loaded as %+v, %v", st, err)
	}
	m := &meta.TxnMeta{
		TransactionalID: id, ProducerID: 4000, ProducerEpoch: 3,
		LastProducerID: 3999, LastProducerEpoch: 32766, State: meta.TxnOngoing,
		Partitions: []meta.TxnPartition{
			{Topic: "orders", TopicID: meta.NewTopicID(), Partition: 2},
			{Topic: "audit", Partition: 0},
		},
		TimeoutMs: 60000, StartTimeMs: 1700000000000, LastUpdateTimeMs: 1700000000500,
	}
	rev, err := store.SaveTxn(ctx, guardA, m, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.LoadTxn(ctx, id)
	if err != nil || st.Revision != rev || !reflect.DeepEqual(st.Meta, m) {
		t.Fatalf("loaded %+v (rev %d), %v; want %+v at rev %d", st.Meta, st.Revision, err, m, rev)
	}
	// A second create (revision 0) or a write from a stale read conflicts.
	if _, err := store.SaveTxn(ctx, guardA, m, 0); !errors.Is(err, meta.ErrConflict) {
		t.Fatalf("create over an existing key: %v, want ErrConflict", err)
	}
	next := m.Clone()
	next.State = meta.TxnPrepareCommit
	rev2, err := store.SaveTxn(ctx, guardA, next, rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.SaveTxn(ctx, guardA, m, rev); !errors.Is(err, meta.ErrConflict) {
		t.Fatalf("write from a stale read: %v, want ErrConflict", err)
	}
	// The guard of another shard never writes this id.
	other := meta.ShardGuard{Shard: (shard + 1) % meta.GroupShards, CreateRevision: guardA.CreateRevision}
	if _, err := store.SaveTxn(ctx, other, next, rev2); !errors.Is(err, meta.ErrNotCoordinator) {
		t.Fatalf("write with another shard's guard: %v, want ErrNotCoordinator", err)
	}

	// A's lease expires (here: revoked); B claims; A's writes now fail.
	if _, err := e.Client.Revoke(ctx, leaseA.ID); err != nil {
		t.Fatal(err)
	}
	leaseB, err := e.Client.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	guardB, ok, err := store.ClaimGroupShard(ctx, leaseB.ID, shard, "gw-b")
	if err != nil || !ok {
		t.Fatalf("claim B: ok=%v err=%v", ok, err)
	}
	done := next.Clone()
	done.State, done.Partitions = meta.TxnCompleteCommit, nil
	if _, err := store.SaveTxn(ctx, guardA, done, rev2); !errors.Is(err, meta.ErrNotCoordinator) {
		t.Fatalf("write with the deposed guard: %v, want ErrNotCoordinator", err)
	}
	if _, err := store.BumpTxnCoordinatorEpoch(ctx, guardA, "gw-a"); !errors.Is(err, meta.ErrNotCoordinator) {
		t.Fatalf("epoch bump with the deposed guard: %v, want ErrNotCoordinator", err)
	}
	epochB, err := store.BumpTxnCoordinatorEpoch(ctx, guardB, "gw-b")
	if err != nil || epochB <= epochA {
		t.Fatalf("coordinator epoch after the takeover: %d %v, want above %d", epochB, err, epochA)
	}
	if st, _ := store.LoadTxn(ctx, id); st.Meta.State != meta.TxnPrepareCommit || st.Revision != rev2 {
		t.Fatalf("the deposed coordinator's write landed: %+v", st.Meta)
	}
	if _, err := store.SaveTxn(ctx, guardB, done, rev2); err != nil {
		t.Fatalf("the new coordinator completes: %v", err)
	}

	// Listing by shard, and an undecodable value next to good ones.
	const other2 = "another-txn"
	if meta.GroupShard(other2) == shard {
		t.Fatal("pick another id: same shard")
	}
	if _, err := e.Client.Put(ctx, "/test/txns/"+other2, "{not json"); err != nil {
		t.Fatal(err)
	}
	listed, err := store.ListTxns(ctx, map[int]bool{shard: true})
	if err != nil || len(listed) != 1 || listed[0].TransactionalID != id || listed[0].Meta.State != meta.TxnCompleteCommit {
		t.Fatalf("ListTxns(own shard) = %+v, %v", listed, err)
	}
	all, err := store.ListTxns(ctx, nil)
	if !errors.Is(err, meta.ErrCorruptTxnState) || len(all) != 2 {
		t.Fatalf("ListTxns(all) with a corrupt value = %d entries, %v", len(all), err)
	}
	for _, st := range all {
		if st.TransactionalID == other2 && (st.Meta != nil || st.Revision == 0) {
			t.Fatalf("corrupt entry listed as %+v; want no state and its revision", st)
		}
	}
	bad, err := store.LoadTxn(ctx, other2)
	if !errors.Is(err, meta.ErrCorruptTxnState) || bad.Meta != nil || bad.Revision == 0 {
		t.Fatalf("LoadTxn(corrupt) = %+v, %v", bad, err)
	}
	// The owner of the corrupt id's shard can replace it from its revision.
	g2, ok, err := store.ClaimGroupShard(ctx, leaseB.ID, meta.GroupShard(other2), "gw-b")
	if err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	fresh := &meta.TxnMeta{TransactionalID: other2, ProducerID: 9, LastProducerID: -1, LastProducerEpoch: -1, State: meta.TxnEmpty, TimeoutMs: 1000, StartTimeMs: -1}
	if _, err := store.SaveTxn(ctx, g2, fresh, bad.Revision); err != nil {
		t.Fatalf("replacing a corrupt value: %v", err)
	}
	if st, err := store.LoadTxn(ctx, other2); err != nil || !reflect.DeepEqual(st.Meta, fresh) {
		t.Fatalf("after replacing: %+v %v", st.Meta, err)
	}

	// Expiry deletes under the same guards: not from a stale read, not
	// with a deposed or another shard's guard.
	cur, err := store.LoadTxn(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.DeleteTxn(ctx, guardB, id, cur.Revision-1); !errors.Is(err, meta.ErrConflict) {
		t.Fatalf("delete from a stale read: %v, want ErrConflict", err)
	}
	if err := store.DeleteTxn(ctx, guardA, id, cur.Revision); !errors.Is(err, meta.ErrNotCoordinator) {
		t.Fatalf("delete with the deposed guard: %v, want ErrNotCoordinator", err)
	}
	if err := store.DeleteTxn(ctx, g2, id, cur.Revision); !errors.Is(err, meta.ErrNotCoordinator) {
		t.Fatalf("delete with another shard's guard: %v, want ErrNotCoordinator", err)
	}
	if st, _ := store.LoadTxn(ctx, id); st.Revision != cur.Revision {
		t.Fatalf("a refused delete changed the key: %+v", st)
	}
	if err := store.DeleteTxn(ctx, guardB, id, cur.Revision); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if st, err := store.LoadTxn(ctx, id); err != nil || st.Meta != nil || st.Revision != 0 {
		t.Fatalf("after delete: %+v %v", st, err)
	}
}
