package txns_test

import (
	"context"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/gateway/txns"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// everyPartition makes every partition exist for TxnOffsetCommit except
// topic "gone".
func everyPartition(topic string, _ int32) (meta.TopicID, int64, bool) {
	return meta.TopicID{}, 0, topic != "gone"
}

// txnCommit sends a TxnOffsetCommit v3 of one offset per partition of
// topic t1 and returns the error code of each, by partition.
func txnCommit(t *testing.T, n *node, group, id string, p txns.ProducerIDAndEpoch, gen int32, topic string, offsets map[int32]int64) map[int32]int16 {
	t.Helper()
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.Version, req.Group, req.TransactionalID = 3, group, id
	req.ProducerID, req.ProducerEpoch, req.Generation = p.ID, p.Epoch, gen
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = topic
	for part, off := range offsets {
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = part, off
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp := n.groups.TxnCommitOffsets(context.Background(), req, everyPartition)
	out := map[int32]int16{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			out[rp.Partition] = rp.ErrorCode
		}
	}
	return out
}

// committedAndPending is a group's committed offsets of t1 and its
// partitions with pending transactional offsets.
func committedAndPending(t *testing.T, n *node, group string) (map[int32]int64, map[int32]bool) {
	t.Helper()
	offs, pending, e := n.groups.FetchOffsetsPending(context.Background(), group)
	if e != nil {
		t.Fatalf("fetch offsets of %s: %v", group, e)
	}
	c, p := map[int32]int64{}, map[int32]bool{}
	for tp, o := range offs {
		if tp.Topic == "t1" {
			c[tp.Partition] = o.Offset
		}
	}
	for tp := range pending {
		if tp.Topic == "t1" {
			p[tp.Partition] = true
		}
	}
	return c, p
}

func (v *env) keys(prefix string) int64 {
	v.t.Helper()
	resp, err := v.etcd.Client.Get(v.ctx, v.store.Prefix()+prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		v.t.Fatal(err)
	}
	return resp.Count
}

// TestTxnOffsetsCommitAndAbort: offsets committed in a transaction are
// pending (invisible to OffsetFetch, UNSTABLE for a stable fetch) until
// the transaction ends; a commit makes them the group's committed
// offsets, an abort drops them; AddOffsetsToTxn and TxnOffsetCommit
// check what Kafka checks.
func TestTxnOffsetsCommitAndAbort(t *testing.T) {
	v := newEnv(t)
	a := v.start("gw-a", time.Hour)
	const id, group = "eos-tx", "eos-group"
	p := initPID(t, a, id, nil)
	ctx := context.Background()
	wantErr(t, "AddOffsetsToTxn without a group", a.txns.AddOffsets(ctx, id, p, ""), kerr.InvalidGroupID)
	wantErr(t, "AddOffsetsToTxn of an old epoch", a.txns.AddOffsets(ctx, id, txns.ProducerIDAndEpoch{ID: p.ID, Epoch: p.Epoch - 1}, group), kerr.ProducerFenced)
	wantErr(t, "AddOffsetsToTxn of another producer", a.txns.AddOffsets(ctx, id, txns.ProducerIDAndEpoch{ID: p.ID + 1, Epoch: p.Epoch}, group), kerr.InvalidProducerIDMapping)
	wantErr(t, "AddOffsetsToTxn of an unknown id", a.txns.AddOffsets(ctx, "nobody", p, group), kerr.InvalidProducerIDMapping)

	// Transaction 1: commit.
	allErr(t, "add", add(t, a, id, p, tps("t1", 0)), nil)
	wantErr(t, "AddOffsetsToTxn", a.txns.AddOffsets(ctx, id, p, group), nil)
	if m := v.stored(id); m.State != meta.TxnOngoing || len(m.Groups) != 1 || m.Groups[0] != group {
		t.Fatalf("stored after AddOffsetsToTxn: %+v", m)
	}
	if c := txnCommit(t, a, group, id, p, 5, "t1", map[int32]int64{0: 1}); c[0] != kerr.IllegalGeneration.Code {
		t.Fatalf("TxnOffsetCommit of generation 5 of an empty group: %v", c)
	}
	if c := txnCommit(t, a, group, id, p, -1, "gone", map[int32]int64{0: 1}); c[0] != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("TxnOffsetCommit of an unknown topic: %v", c)
	}
	if c := txnCommit(t, a, group, id, p, -1, "t1", map[int32]int64{0: 10}); c[0] != 0 {
		t.Fatalf("TxnOffsetCommit: %v", c)
	}
	if c := txnCommit(t, a, group, id, p, -1, "t1", map[int32]int64{1: 11}); c[1] != 0 { // merges
		t.Fatalf("TxnOffsetCommit: %v", c)
	}
	if c, pend := committedAndPending(t, a, group); len(c) != 0 || !pend[0] || !pend[1] {
		t.Fatalf("before the end: committed %v, pending %v; want nothing committed, 0 and 1 pending", c, pend)
	}
	wantErr(t, "commit", errOf(a.txns.EndTxn(ctx, id, p, true, false)), nil)
	if m := v.stored(id); m.State != meta.TxnCompleteCommit || len(m.Groups) != 0 {
		t.Fatalf("stored after the commit: %+v", m)
	}
	waitFor(t, "the commit applied", func() bool {
		c, pend := committedAndPending(t, a, group)
		return len(pend) == 0 && c[0] == 10 && c[1] == 11
	})
	if n := v.keys("grouptxnoffsets/") + v.keys("grouptxnmarkers/"); n != 0 {
		t.Fatalf("%d pending or marker keys left after the commit was applied", n)
	}
	if e := a.groups.DeleteGroup(ctx, group); e != nil {
		t.Fatalf("deleting the group with nothing pending: %v", e)
	}

	// Transaction 2: abort; the group cannot be deleted while pending.
	allErr(t, "add", add(t, a, id, p, tps("t1", 0)), nil)
	wantErr(t, "AddOffsetsToTxn", a.txns.AddOffsets(ctx, id, p, group), nil)
	if c := txnCommit(t, a, group, id, p, -1, "t1", map[int32]int64{0: 20}); c[0] != 0 {
		t.Fatalf("TxnOffsetCommit: %v", c)
	}
	wantErr(t, "delete with pending offsets", a.groups.DeleteGroup(ctx, group), kerr.NonEmptyGroup)
	wantErr(t, "abort", errOf(a.txns.EndTxn(ctx, id, p, false, false)), nil)
	waitFor(t, "the abort applied", func() bool {
		_, pend := committedAndPending(t, a, group)
		return len(pend) == 0
	})
	if c, _ := committedAndPending(t, a, group); len(c) != 0 {
		t.Fatalf("after the abort: committed %v, want nothing (deleted group, aborted offsets)", c)
	}
	if n := v.keys("grouptxnoffsets/") + v.keys("grouptxnmarkers/"); n != 0 {
		t.Fatalf("%d pending or marker keys left after the abort was applied", n)
	}
}

// TestGroupMarkerAppliedByNextCoordinator: a marker written while nobody
// coordinates the group is applied by the next gateway to take the shard.
func TestGroupMarkerAppliedByNextCoordinator(t *testing.T) {
	v := newEnv(t)
	const id, group = "late-tx", "late-group"
	a := v.start("gw-a", time.Hour)
	p := initPID(t, a, id, nil)
	if c := txnCommit(t, a, group, id, p, -1, "t1", map[int32]int64{0: 7}); c[0] != 0 {
		t.Fatalf("TxnOffsetCommit: %v", c)
	}
	a.close()

	// The transaction coordinator's marker, with nobody holding the
	// group's shard (written here with a claim of the transactional id's
	// shard, as that coordinator would).
	lease, err := v.etcd.Client.Grant(v.ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	var g meta.ShardGuard
	waitFor(t, "the shard freed", func() bool {
		var ok bool
		g, ok, err = v.store.ClaimGroupShard(v.ctx, lease.ID, meta.GroupShard(id), "gw-txn")
		return err == nil && ok
	})
	if wrote, err := v.store.WriteGroupTxnMarker(v.ctx, g, group, meta.GroupTxnMarker{TransactionalID: id, ProducerID: p.ID, ProducerEpoch: p.Epoch, Commit: true}); err != nil || !wrote {
		t.Fatalf("marker: %v %v", wrote, err)
	}
	if err := v.store.ReleaseGroupShard(v.ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, offsets, _ := v.store.LoadGroup(v.ctx, group); len(offsets) != 0 {
		t.Fatalf("committed before any coordinator applied the marker: %v", offsets)
	}
	if np, nm := v.keys("grouptxnoffsets/"), v.keys("grouptxnmarkers/"); np != 1 || nm != 1 {
		t.Fatalf("%d pending and %d marker keys before B, want 1 each", np, nm)
	}

	b := v.start("gw-b", time.Hour)
	waitFor(t, "B applies the marker", func() bool {
		_, offsets, _ := v.store.LoadGroup(v.ctx, group)
		return offsets[meta.TopicPartition{Topic: "t1", Partition: 0}].Offset == 7
	})
	if c, pend := committedAndPending(t, b, group); c[0] != 7 || len(pend) != 0 {
		t.Fatalf("B serves committed %v, pending %v", c, pend)
	}
	if n := v.keys("grouptxnoffsets/") + v.keys("grouptxnmarkers/"); n != 0 {
		t.Fatalf("%d pending or marker keys left", n)
	}
}
