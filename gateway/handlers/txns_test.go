package handlers_test

import (
	"context"
	"testing"

	"github.com/streamline-dev/streamline/gateway"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestTransactionAPIs drives the transaction coordinator over the wire at
// exact versions against two gateways sharing one etcd, checking Kafka's
// error codes (and the older codes for old versions), and through
// franz-go's admin client. The log-service node is unreachable, so the
// commit below is of a transaction whose topic was deleted: its markers
// are skipped, as Kafka skips partitions it finds no leader for; marker
// writing itself is covered in package txns.
func TestTransactionAPIs(t *testing.T) {
	c := startCluster(t)
	c.mustCreate(c.manual, "txn-topic", 2)
	c.mustCreate(c.manual, "txn-gone", 1)
	for _, g := range []*gateway.Gateway{c.auto, c.manual} {
		waitFor(t, func() bool {
			md := c.metadata(g, []string{"txn-topic", "txn-gone"})
			return md.Topics[0].ErrorCode == 0 && md.Topics[1].ErrorCode == 0
		})
	}
	t.Run("FindCoordinator", c.testFindTxnCoordinator)
	t.Run("InitProducerID", c.testTxnInitProducerID)
	t.Run("AddPartitionsAndEnd", c.testTxnAddAndEnd)
	t.Run("OffsetsInTransaction", c.testTxnOffsets)
}

// testTxnOffsets: AddOffsetsToTxn at the transaction's coordinator,
// TxnOffsetCommit at the group's (each NOT_COORDINATOR elsewhere); the
// offsets are pending - not fetched, UNSTABLE_OFFSET_COMMIT for a stable
// fetch - until the commit's group marker, written by one gateway into
// etcd, is applied by the group's.
func (c *cluster) testTxnOffsets(t *testing.T) {
	const id, group = "eos-wire", "eos-wire-group"
	coordT, otherT := c.txnCoordinator(id)
	coordG, otherG := c.coordinator(group)
	p := c.initPID(coordT, initReq(4, id, 60000, -1, -1))
	wantCode(t, "init", p.ErrorCode, nil)
	addOffsets := func(g *gateway.Gateway, version int16, epoch int16, grp string) int16 {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = version, id, p.ProducerID, epoch, grp
		return c.raw(g, req).(*kmsg.AddOffsetsToTxnResponse).ErrorCode
	}
	wantCode(t, "AddOffsetsToTxn on the other gateway", addOffsets(otherT, 3, p.ProducerEpoch, group), kerr.NotCoordinator)
	wantCode(t, "v1 AddOffsetsToTxn at an old epoch", addOffsets(coordT, 1, p.ProducerEpoch-1, group), kerr.InvalidProducerEpoch)
	wantCode(t, "AddOffsetsToTxn without a group", addOffsets(coordT, 3, p.ProducerEpoch, ""), kerr.InvalidGroupID)
	wantCode(t, "AddOffsetsToTxn", addOffsets(coordT, 3, p.ProducerEpoch, group), nil)

	commit := func(g *gateway.Gateway, partition int32) int16 {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.Version, req.TransactionalID, req.Group = 3, id, group
		req.ProducerID, req.ProducerEpoch, req.Generation = p.ProducerID, p.ProducerEpoch, -1
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = "txn-topic"
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = partition, 5
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return c.raw(g, req).(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}
	wantCode(t, "TxnOffsetCommit on the other gateway", commit(otherG, 0), kerr.NotCoordinator)
	wantCode(t, "TxnOffsetCommit of a missing partition", commit(coordG, 9), kerr.UnknownTopicOrPartition)
	wantCode(t, "TxnOffsetCommit", commit(coordG, 0), nil)

	fetch := func(version int16, stable bool) (int64, int16) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version, req.RequireStable = version, stable
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic, rt.Partitions = "txn-topic", []int32{0}
		if version >= 8 {
			rg := kmsg.NewOffsetFetchRequestGroup()
			rg.Group, rg.Topics = group, []kmsg.OffsetFetchRequestGroupTopic{{Topic: "txn-topic", Partitions: []int32{0}}}
			req.Groups = append(req.Groups, rg)
			rp := c.raw(coordG, req).(*kmsg.OffsetFetchResponse).Groups[0].Topics[0].Partitions[0]
			return rp.Offset, rp.ErrorCode
		}
		req.Group, req.Topics = group, []kmsg.OffsetFetchRequestTopic{rt}
		rp := c.raw(coordG, req).(*kmsg.OffsetFetchResponse).Topics[0].Partitions[0]
		return rp.Offset, rp.ErrorCode
	}
	for _, v := range []int16{7, 8} {
		if off, code := fetch(v, false); off != -1 || code != 0 {
			t.Fatalf("v%d fetch while pending: offset %d code %d; want no commit", v, off, code)
		}
		if off, code := fetch(v, true); off != -1 || code != kerr.UnstableOffsetCommit.Code {
			t.Fatalf("v%d stable fetch while pending: offset %d code %d; want UNSTABLE_OFFSET_COMMIT", v, off, code)
		}
	}
	wantCode(t, "commit", c.raw(coordT, endReq(3, id, p.ProducerID, p.ProducerEpoch, true)).(*kmsg.EndTxnResponse).ErrorCode, nil)
	waitFor(t, func() bool {
		off, code := fetch(8, true)
		return off == 5 && code == 0
	})
	if off, code := fetch(7, false); off != 5 || code != 0 {
		t.Fatalf("fetch after the commit: offset %d code %d", off, code)
	}
}

// txnCoordinator waits until id has a transaction coordinator and returns
// it and the other gateway.
func (c *cluster) txnCoordinator(id string) (coord, other *gateway.Gateway) {
	c.t.Helper()
	var node int32 = -1
	waitFor(c.t, func() bool {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version, req.CoordinatorType, req.CoordinatorKey = 3, 1, id
		resp := c.raw(c.auto, req).(*kmsg.FindCoordinatorResponse)
		node = resp.NodeID
		return resp.ErrorCode == 0
	})
	if node == 1 {
		return c.auto, c.manual
	}
	return c.manual, c.auto
}

func (c *cluster) testFindTxnCoordinator(t *testing.T) {
	// A transactional id and a group of the same name share a shard, so
	// they share a coordinator; both gateways agree.
	for _, key := range []string{"txn-a", "txn-b", "txn-c", "txn-d"} {
		coord, _ := c.txnCoordinator(key)
		group, _ := c.coordinator(key)
		if coord != group {
			t.Fatalf("%s: transaction coordinator %d, group coordinator %d", key, coord.Advertised().NodeID, group.Advertised().NodeID)
		}
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version, req.CoordinatorType, req.CoordinatorKeys = 4, 1, []string{key}
		for _, g := range []*gateway.Gateway{c.auto, c.manual} {
			resp := c.raw(g, req).(*kmsg.FindCoordinatorResponse)
			if len(resp.Coordinators) != 1 || resp.Coordinators[0].ErrorCode != 0 || resp.Coordinators[0].NodeID != coord.Advertised().NodeID {
				t.Fatalf("gateways disagree on the transaction coordinator of %s: %+v", key, resp.Coordinators)
			}
		}
	}
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.Version, req.CoordinatorType, req.CoordinatorKeys = 4, 1, []string{""}
	wantCode(t, "empty transactional id", c.raw(c.auto, req).(*kmsg.FindCoordinatorResponse).Coordinators[0].ErrorCode, kerr.InvalidRequest)
	req.CoordinatorType, req.CoordinatorKeys = 2, []string{"x"}
	wantCode(t, "unknown key type", c.raw(c.auto, req).(*kmsg.FindCoordinatorResponse).Coordinators[0].ErrorCode, kerr.InvalidRequest)
}

func initReq(version int16, id string, timeoutMs int32, pid int64, epoch int16) *kmsg.InitProducerIDRequest {
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version, req.TransactionalID, req.TransactionTimeoutMillis = version, kmsg.StringPtr(id), timeoutMs
	req.ProducerID, req.ProducerEpoch = pid, epoch
	return req
}

func (c *cluster) initPID(g *gateway.Gateway, req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	c.t.Helper()
	var resp *kmsg.InitProducerIDResponse
	waitFor(c.t, func() bool { // the shard may still be loading right after a move
		resp = c.raw(g, req).(*kmsg.InitProducerIDResponse)
		return resp.ErrorCode != kerr.CoordinatorLoadInProgress.Code
	})
	return resp
}

func (c *cluster) testTxnInitProducerID(t *testing.T) {
	const id = "init-txn"
	coord, other := c.txnCoordinator(id)
	wantCode(t, "init on the other gateway", c.raw(other, initReq(4, id, 60000, -1, -1)).(*kmsg.InitProducerIDResponse).ErrorCode, kerr.NotCoordinator)
	wantCode(t, "empty id", c.raw(coord, initReq(4, "", 60000, -1, -1)).(*kmsg.InitProducerIDResponse).ErrorCode, kerr.InvalidRequest)
	wantCode(t, "timeout above 15 min", c.raw(coord, initReq(4, id, 15*60*1000+1, -1, -1)).(*kmsg.InitProducerIDResponse).ErrorCode, kerr.InvalidTransactionTimeout)
	wantCode(t, "producer id without epoch", c.raw(coord, initReq(4, id, 60000, 5, -1)).(*kmsg.InitProducerIDResponse).ErrorCode, kerr.InvalidRequest)

	first := c.initPID(coord, initReq(0, id, 60000, -1, -1))
	wantCode(t, "v0 init", first.ErrorCode, nil)
	if first.ProducerID < 0 || first.ProducerEpoch != 0 {
		t.Fatalf("first init: id %d epoch %d", first.ProducerID, first.ProducerEpoch)
	}
	second := c.initPID(coord, initReq(4, id, 60000, -1, -1))
	if second.ErrorCode != 0 || second.ProducerID != first.ProducerID || second.ProducerEpoch != 1 {
		t.Fatalf("second init: %+v", second)
	}
	// KIP-360 with the fenced epoch: INVALID_PRODUCER_EPOCH before v4.
	wantCode(t, "v3 stale recovery", c.initPID(coord, initReq(3, id, 60000, first.ProducerID, 0)).ErrorCode, kerr.InvalidProducerEpoch)
	wantCode(t, "v4 stale recovery", c.initPID(coord, initReq(4, id, 60000, first.ProducerID, 0)).ErrorCode, kerr.ProducerFenced)
	third := c.initPID(coord, initReq(4, id, 60000, first.ProducerID, 1))
	if third.ErrorCode != 0 || third.ProducerEpoch != 2 {
		t.Fatalf("v4 recovery of the current producer: %+v", third)
	}
	// Idempotent producers are unchanged: a fresh id every time.
	plain := kmsg.NewPtrInitProducerIDRequest()
	plain.Version = 4
	if r := c.raw(other, plain).(*kmsg.InitProducerIDResponse); r.ErrorCode != 0 || r.ProducerEpoch != 0 || r.ProducerID == first.ProducerID {
		t.Fatalf("idempotent init: %+v", r)
	}
}

func addReq(version int16, id string, pid int64, epoch int16, topic string, partitions ...int32) *kmsg.AddPartitionsToTxnRequest {
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch = version, id, pid, epoch
	req.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: topic, Partitions: partitions}}
	return req
}

func endReq(version int16, id string, pid int64, epoch int16, commit bool) *kmsg.EndTxnRequest {
	req := kmsg.NewPtrEndTxnRequest()
	req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = version, id, pid, epoch, commit
	return req
}

func (c *cluster) testTxnAddAndEnd(t *testing.T) {
	ctx := context.Background()
	const id = "shop-txn"
	coord, other := c.txnCoordinator(id)
	p := c.initPID(coord, initReq(4, id, 60000, -1, -1))
	wantCode(t, "init", p.ErrorCode, nil)
	pid, epoch := p.ProducerID, p.ProducerEpoch

	add := func(req *kmsg.AddPartitionsToTxnRequest) []kmsg.AddPartitionsToTxnResponseTopicPartition {
		t.Helper()
		resp := c.raw(coord, req).(*kmsg.AddPartitionsToTxnResponse)
		if len(resp.Topics) != len(req.Topics) || len(resp.Topics[0].Partitions) != len(req.Topics[0].Partitions) {
			t.Fatalf("answer does not mirror the request: %+v", resp.Topics)
		}
		return resp.Topics[0].Partitions
	}
	wantCode(t, "add on the other gateway", c.raw(other, addReq(3, id, pid, epoch, "txn-gone", 0)).(*kmsg.AddPartitionsToTxnResponse).Topics[0].Partitions[0].ErrorCode, kerr.NotCoordinator)
	wantCode(t, "v1 add at an old epoch", add(addReq(1, id, pid, epoch-1, "txn-gone", 0))[0].ErrorCode, kerr.InvalidProducerEpoch)
	wantCode(t, "v3 add at an old epoch", add(addReq(3, id, pid, epoch-1, "txn-gone", 0))[0].ErrorCode, kerr.ProducerFenced)
	wantCode(t, "add for an unknown producer id", add(addReq(3, id, pid+1000, epoch, "txn-gone", 0))[0].ErrorCode, kerr.InvalidProducerIDMapping)
	mixed := addReq(3, id, pid, epoch, "txn-topic", 0, 9)
	ps := c.raw(coord, mixed).(*kmsg.AddPartitionsToTxnResponse).Topics[0].Partitions
	wantCode(t, "existing partition next to a missing one", ps[0].ErrorCode, kerr.OperationNotAttempted)
	wantCode(t, "missing partition", ps[1].ErrorCode, kerr.UnknownTopicOrPartition)
	wantCode(t, "end with nothing open", c.raw(coord, endReq(3, id, pid, epoch, true)).(*kmsg.EndTxnResponse).ErrorCode, kerr.InvalidTxnState)

	wantCode(t, "add", add(addReq(3, id, pid, epoch, "txn-gone", 0))[0].ErrorCode, nil)
	adm := c.admin(c.auto)
	described, err := adm.DescribeTransactions(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	d := described[id]
	if d.Err != nil || d.State != "Ongoing" || d.ProducerID != pid || d.ProducerEpoch != epoch || !d.Topics.Lookup("txn-gone", 0) || d.TimeoutMillis != 60000 ||
		d.StartTimestamp <= 0 || d.Coordinator != coord.Advertised().NodeID {
		t.Fatalf("described %+v", d)
	}
	listed, err := adm.ListTransactions(ctx, nil, []string{"Ongoing"})
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := listed[id]; !ok || l.ProducerID != pid || l.State != "Ongoing" || l.Coordinator != coord.Advertised().NodeID {
		t.Fatalf("ListTransactions(Ongoing) = %+v", listed)
	}

	wantCode(t, "v0 end at an old epoch", c.raw(coord, endReq(0, id, pid, epoch-1, true)).(*kmsg.EndTxnResponse).ErrorCode, kerr.InvalidProducerEpoch)
	wantCode(t, "v3 end at an old epoch", c.raw(coord, endReq(3, id, pid, epoch-1, true)).(*kmsg.EndTxnResponse).ErrorCode, kerr.ProducerFenced)
	wantCode(t, "end on the other gateway", c.raw(other, endReq(3, id, pid, epoch, true)).(*kmsg.EndTxnResponse).ErrorCode, kerr.NotCoordinator)

	// The transaction's only partition goes with its topic: the commit
	// completes without a marker to write.
	if r, err := adm.DeleteTopic(ctx, "txn-gone"); err != nil || r.Err != nil {
		t.Fatalf("delete: %v %v", err, r.Err)
	}
	for _, g := range []*gateway.Gateway{c.auto, c.manual} {
		waitFor(t, func() bool { return c.metadata(g, []string{"txn-gone"}).Topics[0].ErrorCode != 0 })
	}
	wantCode(t, "commit", c.raw(coord, endReq(3, id, pid, epoch, true)).(*kmsg.EndTxnResponse).ErrorCode, nil)
	wantCode(t, "commit retried", c.raw(coord, endReq(3, id, pid, epoch, true)).(*kmsg.EndTxnResponse).ErrorCode, nil)
	wantCode(t, "abort after the commit", c.raw(coord, endReq(3, id, pid, epoch, false)).(*kmsg.EndTxnResponse).ErrorCode, kerr.InvalidTxnState)

	desc := kmsg.NewPtrDescribeTransactionsRequest()
	desc.TransactionalIDs = []string{id, "never-used-txn", ""}
	states := c.raw(coord, desc).(*kmsg.DescribeTransactionsResponse).TransactionStates
	if len(states) != 3 {
		t.Fatalf("%d states for 3 ids", len(states))
	}
	if s := states[0]; s.ErrorCode != 0 || s.State != "CompleteCommit" || len(s.Topics) != 0 || s.ProducerID != pid {
		t.Fatalf("after the commit: %+v", s)
	}
	if unknownCoord, _ := c.txnCoordinator("never-used-txn"); unknownCoord == coord {
		wantCode(t, "describe an unknown id", states[1].ErrorCode, kerr.TransactionalIDNotFound)
	} else {
		wantCode(t, "describe an id coordinated elsewhere", states[1].ErrorCode, kerr.NotCoordinator)
	}
	wantCode(t, "describe an empty id", states[2].ErrorCode, kerr.InvalidRequest)

	list := kmsg.NewPtrListTransactionsRequest()
	list.Version, list.StateFilters, list.ProducerIDFilters = 1, []string{"CompleteCommit", "Nonsense"}, []int64{pid}
	lr := c.raw(coord, list).(*kmsg.ListTransactionsResponse)
	wantCode(t, "list", lr.ErrorCode, nil)
	if len(lr.TransactionStates) != 1 || lr.TransactionStates[0].TransactionalID != id || lr.TransactionStates[0].TransactionState != "CompleteCommit" ||
		len(lr.UnknownStateFilters) != 1 || lr.UnknownStateFilters[0] != "Nonsense" {
		t.Fatalf("ListTransactions: %+v", lr)
	}
	if lr := c.raw(other, list).(*kmsg.ListTransactionsResponse); lr.ErrorCode != 0 || len(lr.TransactionStates) != 0 {
		t.Fatalf("the other gateway lists %+v", lr.TransactionStates)
	}
}
