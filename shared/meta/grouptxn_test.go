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

// TestGroupTxnOffsetsAndMarkers: pending transactional offsets and group
// markers survive etcd as written; writes with a lost shard's guard are
// refused; pending offsets cannot be written while a marker of the
// producer waits, a second marker does not replace the first, and
// applying a commit marker makes the pending offsets committed and
// removes both keys, once.
func TestGroupTxnOffsetsAndMarkers(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := meta.NewStore(e.Client, "/test/")
	const group, txnID = "orders/eos group", "copier 1"
	lease, err := e.Client.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	claim := func(key string) meta.ShardGuard {
		g, ok, err := store.ClaimGroupShard(ctx, lease.ID, meta.GroupShard(key), "gw-a")
		if err != nil {
			t.Fatal(err)
		}
		if !ok { // the group and the transactional id share a shard
			owners, _ := store.GroupShardOwners(ctx)
			t.Fatalf("shard of %q held already: %v", key, owners)
		}
		return g
	}
	guardG := claim(group)
	guardT := guardG
	if meta.GroupShard(txnID) != guardG.Shard {
		guardT = claim(txnID)
	}
	md := "m"
	p := &meta.GroupTxnOffsets{TransactionalID: txnID, ProducerID: 77, ProducerEpoch: 2, Offsets: []meta.GroupTxnOffset{
		{Topic: "in", Partition: 1, GroupOffset: meta.GroupOffset{Offset: 42, LeaderEpoch: 3, Metadata: &md, CommitTimeMs: 1}},
	}}
	stale := meta.ShardGuard{Shard: guardG.Shard, CreateRevision: guardG.CreateRevision - 1}
	if err := store.SaveGroupTxnOffsets(ctx, stale, group, p); !errors.Is(err, meta.ErrNotCoordinator) {
		t.Fatalf("pending write with a stale guard: %v, want ErrNotCoordinator", err)
	}
	if err := store.SaveGroupTxnOffsets(ctx, guardG, group, p); err != nil {
		t.Fatal(err)
	}
	got, err := store.LoadGroupTxnOffsets(ctx, group)
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[77], p) {
		t.Fatalf("pending read back as %+v (%v), want %+v", got, err, p)
	}
	if _, offsets, _ := store.LoadGroup(ctx, group); len(offsets) != 0 {
		t.Fatalf("pending offsets visible as committed: %v", offsets)
	}

	mk := meta.GroupTxnMarker{TransactionalID: txnID, ProducerID: 77, ProducerEpoch: 2, Commit: true}
	staleT := meta.ShardGuard{Shard: guardT.Shard, CreateRevision: guardT.CreateRevision - 1}
	if _, err := store.WriteGroupTxnMarker(ctx, staleT, group, mk); !errors.Is(err, meta.ErrNotCoordinator) {
		t.Fatalf("marker with a stale guard: %v, want ErrNotCoordinator", err)
	}
	if wrote, err := store.WriteGroupTxnMarker(ctx, guardT, group, mk); err != nil || !wrote {
		t.Fatalf("marker: wrote %v, %v", wrote, err)
	}
	abort := mk
	abort.Commit = false
	if wrote, err := store.WriteGroupTxnMarker(ctx, guardT, group, abort); err != nil || wrote {
		t.Fatalf("second marker: wrote %v, %v; want left alone", wrote, err)
	}
	if err := store.SaveGroupTxnOffsets(ctx, guardG, group, p); !errors.Is(err, meta.ErrGroupTxnMarkerPending) {
		t.Fatalf("pending write while a marker waits: %v, want ErrGroupTxnMarkerPending", err)
	}
	mks, _, err := store.ListGroupTxnMarkers(ctx)
	if err != nil || len(mks) != 1 || mks[0].Group != group || mks[0].Marker != mk {
		t.Fatalf("markers listed as %+v (%v), want one commit marker of %q", mks, err, group)
	}
	first := mks[0]
	if err := store.ApplyGroupTxnMarker(ctx, stale, first, nil, p.Map()); !errors.Is(err, meta.ErrNotCoordinator) {
		t.Fatalf("apply with a stale guard: %v, want ErrNotCoordinator", err)
	}
	if err := store.ApplyGroupTxnMarker(ctx, guardG, first, &meta.GroupMeta{Group: group}, p.Map()); err != nil {
		t.Fatal(err)
	}
	gm, offsets, err := store.LoadGroup(ctx, group)
	want := map[meta.TopicPartition]meta.GroupOffset{{Topic: "in", Partition: 1}: p.Offsets[0].GroupOffset}
	if err != nil || gm == nil || !reflect.DeepEqual(offsets, want) {
		t.Fatalf("after the commit marker: meta %v offsets %+v (%v), want %+v", gm, offsets, err, want)
	}
	if got, _ := store.LoadGroupTxnOffsets(ctx, group); len(got) != 0 {
		t.Fatalf("pending offsets left after the marker: %+v", got)
	}
	if mks, _ := store.LoadGroupTxnMarkers(ctx, group); len(mks) != 0 {
		t.Fatalf("marker left after it was applied: %+v", mks)
	}
	if err := store.ApplyGroupTxnMarker(ctx, guardG, first, nil, nil); !errors.Is(err, meta.ErrConflict) {
		t.Fatalf("applying an applied marker: %v, want ErrConflict", err)
	}
}
