package handlers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/streamline-dev/streamline/gateway"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGroupAPIs drives the group protocol over the wire at exact versions
// against two gateways sharing one etcd, checking Kafka's error codes.
func TestGroupAPIs(t *testing.T) {
	c := startCluster(t)
	c.mustCreate(c.manual, "grp-topic", 2)
	t.Run("CoordinatorsSplitAndAgree", c.testCoordinatorsSplit)
	t.Run("FindCoordinatorErrors", c.testFindCoordinatorErrors)
	t.Run("JoinSyncHeartbeatCommitLeave", c.testGroupLifecycle)
	t.Run("StaticMemberRejoinsWithoutRebalance", c.testStaticMember)
	t.Run("SimpleCommitsWithoutMembers", c.testSimpleCommits)
	t.Run("CorruptGroupStateInEtcd", c.testCorruptGroupState)
	t.Run("OffsetsOfDeletedTopic", c.testOffsetsOfDeletedTopic)
}

// A group's offsets committed to a topic that is then deleted are not
// answered (Kafka deletes them with the topic); above all, once a topic
// of the same name is created again, the old offsets must not make the
// group skip the new topic's records. Offsets of other topics stay.
func (c *cluster) testOffsetsOfDeletedTopic(t *testing.T) {
	ctx := context.Background()
	const group, topic = "deleted-topic-group", "recreated"
	adm := c.admin(c.manual)
	c.mustCreate(c.manual, topic, 1)
	for _, g := range []*gateway.Gateway{c.auto, c.manual} {
		waitFor(t, func() bool { return c.metadata(g, []string{topic}).Topics[0].ErrorCode == 0 })
	}
	commit := func(off int64) {
		t.Helper()
		var os kadm.Offsets
		os.AddOffset(topic, 0, off, -1)
		os.AddOffset("grp-topic", 0, 11, -1)
		r, err := adm.CommitOffsets(ctx, group, os)
		if err == nil {
			err = r.Error()
		}
		if err != nil {
			t.Fatalf("commit %d: %v", off, err)
		}
	}
	fetch := func() (int64, bool) {
		t.Helper()
		f, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := f.Lookup("grp-topic", 0); !ok || o.At != 11 {
			t.Fatalf("the other topic's offset: %+v %v, want 11", o, ok)
		}
		o, ok := f.Lookup(topic, 0)
		return o.At, ok && o.At >= 0
	}
	commit(500)
	if at, ok := fetch(); !ok || at != 500 {
		t.Fatalf("committed 500, fetched %d %v", at, ok)
	}
	if r, err := adm.DeleteTopic(ctx, topic); err != nil || r.Err != nil {
		t.Fatalf("delete: %v %v", err, r.Err)
	}
	for _, g := range []*gateway.Gateway{c.auto, c.manual} {
		waitFor(t, func() bool { return c.metadata(g, []string{topic}).Topics[0].ErrorCode != 0 })
	}
	if at, ok := fetch(); ok {
		t.Fatalf("offset %d of the deleted topic still answered", at)
	}
	c.mustCreate(c.manual, topic, 1)
	for _, g := range []*gateway.Gateway{c.auto, c.manual} {
		waitFor(t, func() bool { return c.metadata(g, []string{topic}).Topics[0].ErrorCode == 0 })
	}
	if at, ok := fetch(); ok {
		t.Fatalf("the re-created topic shows the old topic's offset %d", at)
	}
	commit(2)
	if at, ok := fetch(); !ok || at != 2 {
		t.Fatalf("committed 2 to the new topic, fetched %d %v", at, ok)
	}
}

// A group whose values in etcd do not decode (written by hand, garbage)
// is served: the bad offset reads as no commit, the good one as stored,
// the bad metadata as an empty group that members can join again; the
// coordinator lists it and keeps serving its other groups.
func (c *cluster) testCorruptGroupState(t *testing.T) {
	ctx := context.Background()
	const group = "corrupt-state"
	cli := c.store.Client()
	for key, val := range map[string]string{
		"/streamline/groupmeta/" + group:                         "{not json",
		"/streamline/groupoffsets/" + group + "/grp-topic/00000": "garbage",
		"/streamline/groupoffsets/" + group + "/grp-topic/00001": `{"offset":7,"leader_epoch":-1,"commit_time_ms":1}`,
	} {
		if _, err := cli.Put(ctx, key, val); err != nil {
			t.Fatal(err)
		}
	}
	adm := c.admin(c.manual)
	fetched, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("OffsetFetch of a group with corrupt state: %v", err)
	}
	if o, ok := fetched.Lookup("grp-topic", 1); !ok || o.At != 7 {
		t.Fatalf("good offset of partition 1: %+v %v, want 7", o, ok)
	}
	if o, ok := fetched.Lookup("grp-topic", 0); ok && o.At >= 0 {
		t.Fatalf("undecodable offset of partition 0 answered as %+v", o)
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("ListGroups with a corrupt group: %v", err)
	}
	if _, ok := listed[group]; !ok {
		t.Fatalf("corrupt group not listed: %v", listed.Groups())
	}
	// A simple commit replaces the bad offset, and a member can join the
	// group again (its metadata gets rewritten).
	g, _ := c.coordinator(group)
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Version, commit.Group, commit.Generation = 8, group, -1
	ct := kmsg.NewOffsetCommitRequestTopic()
	ct.Topic = "grp-topic"
	ct.Partitions = []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 3, LeaderEpoch: -1}}
	commit.Topics = []kmsg.OffsetCommitRequestTopic{ct}
	wantCode(t, "commit", c.raw(g, commit).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode, nil)
	first := c.raw(g, joinReq(group, "", nil)).(*kmsg.JoinGroupResponse)
	joined := c.raw(g, joinReq(group, first.MemberID, nil)).(*kmsg.JoinGroupResponse)
	wantCode(t, "join a group with corrupt metadata", joined.ErrorCode, nil)
	if m, err := cli.Get(ctx, "/streamline/groupmeta/"+group); err != nil || len(m.Kvs) != 1 || !strings.Contains(string(m.Kvs[0].Value), joined.MemberID) {
		t.Fatalf("group metadata not rewritten by the join: %v %v", m, err)
	}
	resp, err := cli.Get(ctx, "/streamline/groupoffsets/"+group+"/grp-topic/00000")
	if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), `"offset":3`) {
		t.Fatalf("bad offset not replaced: %v %v", resp, err)
	}
}

// coordinator waits until group has a coordinator and returns it, and the
// other gateway.
func (c *cluster) coordinator(group string) (coord, other *gateway.Gateway) {
	c.t.Helper()
	var node int32 = -1
	waitFor(c.t, func() bool {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version, req.CoordinatorKey = 3, group
		resp := c.raw(c.auto, req).(*kmsg.FindCoordinatorResponse)
		node = resp.NodeID
		return resp.ErrorCode == 0
	})
	if node == 1 {
		return c.auto, c.manual
	}
	return c.manual, c.auto
}

func (c *cluster) testCoordinatorsSplit(t *testing.T) {
	// Right after startup the first gateway may still hold shards it is
	// handing to the second.
	waitFor(t, func() bool {
		nodes := map[int32]bool{}
		for i := range 40 {
			coord, _ := c.coordinator(fmt.Sprintf("split-%d", i))
			nodes[coord.Advertised().NodeID] = true
		}
		return len(nodes) == 2
	})
	byNode := map[int32]int{}
	for i := range 40 {
		group := fmt.Sprintf("split-%d", i)
		coord, other := c.coordinator(group)
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version, req.CoordinatorKeys = 4, []string{group}
		for _, g := range []*gateway.Gateway{c.auto, c.manual} {
			resp := c.raw(g, req).(*kmsg.FindCoordinatorResponse)
			if len(resp.Coordinators) != 1 || resp.Coordinators[0].NodeID != coord.Advertised().NodeID {
				t.Fatalf("gateways disagree on the coordinator of %s: %+v", group, resp.Coordinators)
			}
		}
		byNode[coord.Advertised().NodeID]++
		// The other gateway refuses to coordinate it.
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.Version, hb.Group, hb.MemberID, hb.Generation = 4, group, "m", 1
		wantCode(t, "Heartbeat at the non-coordinator", c.raw(other, hb).(*kmsg.HeartbeatResponse).ErrorCode, kerr.NotCoordinator)
	}
	if len(byNode) != 2 {
		t.Fatalf("40 groups all coordinated by one gateway: %v", byNode)
	}
}

func (c *cluster) testFindCoordinatorErrors(t *testing.T) {
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.Version, req.CoordinatorType, req.CoordinatorKeys = 4, 0, []string{""}
	resp := c.raw(c.auto, req).(*kmsg.FindCoordinatorResponse)
	wantCode(t, "empty group id", resp.Coordinators[0].ErrorCode, kerr.InvalidGroupID)
}

func joinReq(group, member string, instance *string) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version, req.Group, req.MemberID, req.InstanceID = 9, group, member, instance
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis, req.ProtocolType = 10000, 5000, "consumer"
	meta := (&kmsg.ConsumerMemberMetadata{Topics: []string{"grp-topic"}}).AppendTo(nil)
	req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: meta}}
	return req
}

func (c *cluster) testGroupLifecycle(t *testing.T) {
	const group = "lifecycle"
	g, _ := c.coordinator(group)

	bad := joinReq(group, "", nil)
	bad.SessionTimeoutMillis = 5
	wantCode(t, "session timeout 5ms", c.raw(g, bad).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InvalidSessionTimeout)
	bad = joinReq("", "", nil)
	wantCode(t, "empty group", c.raw(g, bad).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InvalidGroupID)
	bad = joinReq(group, "", nil)
	bad.ProtocolType = ""
	wantCode(t, "empty protocol type", c.raw(g, bad).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InconsistentGroupProtocol)
	wantCode(t, "unknown member", c.raw(g, joinReq(group, "nobody", nil)).(*kmsg.JoinGroupResponse).ErrorCode, kerr.UnknownMemberID)

	// KIP-394: the first v4+ join only hands out a member id.
	first := c.raw(g, joinReq(group, "", nil)).(*kmsg.JoinGroupResponse)
	wantCode(t, "first join", first.ErrorCode, kerr.MemberIDRequired)
	joined := c.raw(g, joinReq(group, first.MemberID, nil)).(*kmsg.JoinGroupResponse)
	wantCode(t, "join", joined.ErrorCode, nil)
	if joined.Generation != 1 || joined.LeaderID != first.MemberID || len(joined.Members) != 1 || *joined.Protocol != "range" {
		t.Fatalf("join: generation %d leader %q members %d protocol %v", joined.Generation, joined.LeaderID, len(joined.Members), joined.Protocol)
	}
	member, gen := joined.MemberID, joined.Generation

	other := joinReq(group, "", nil)
	other.ProtocolType = "connect"
	wantCode(t, "other protocol type", c.raw(g, other).(*kmsg.JoinGroupResponse).ErrorCode, kerr.InconsistentGroupProtocol)

	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Version, sync.Group, sync.MemberID, sync.Generation = 5, group, member, gen
	sync.ProtocolType, sync.Protocol = kmsg.StringPtr("consumer"), kmsg.StringPtr("range")
	assignment := (&kmsg.ConsumerMemberAssignment{Topics: []kmsg.ConsumerMemberAssignmentTopic{{Topic: "grp-topic", Partitions: []int32{0, 1}}}}).AppendTo(nil)
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: member, MemberAssignment: assignment}}
	synced := c.raw(g, sync).(*kmsg.SyncGroupResponse)
	wantCode(t, "sync", synced.ErrorCode, nil)
	if string(synced.MemberAssignment) != string(assignment) {
		t.Fatal("sync answered another assignment")
	}
	sync.Generation = gen + 1
	wantCode(t, "sync at another generation", c.raw(g, sync).(*kmsg.SyncGroupResponse).ErrorCode, kerr.IllegalGeneration)

	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version, hb.Group, hb.MemberID, hb.Generation = 4, group, member, gen
	wantCode(t, "heartbeat", c.raw(g, hb).(*kmsg.HeartbeatResponse).ErrorCode, nil)
	hb.Generation = gen - 1
	wantCode(t, "stale heartbeat", c.raw(g, hb).(*kmsg.HeartbeatResponse).ErrorCode, kerr.IllegalGeneration)
	hb.Generation, hb.MemberID = gen, "ghost"
	wantCode(t, "ghost heartbeat", c.raw(g, hb).(*kmsg.HeartbeatResponse).ErrorCode, kerr.UnknownMemberID)

	commit := func(generation int32, topic string, partition int32, offset int64, metadata string) int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Version, req.Group, req.MemberID, req.Generation = 8, group, member, generation
		req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.OffsetCommitRequestTopicPartition{
			{Partition: partition, Offset: offset, LeaderEpoch: 3, Metadata: kmsg.StringPtr(metadata)}}}}
		return c.raw(g, req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}
	wantCode(t, "commit", commit(gen, "grp-topic", 1, 42, "m"), nil)
	wantCode(t, "commit at a stale generation", commit(gen-1, "grp-topic", 1, 7, ""), kerr.IllegalGeneration)
	wantCode(t, "commit to an unknown partition", commit(gen, "grp-topic", 9, 7, ""), kerr.UnknownTopicOrPartition)
	wantCode(t, "commit with huge metadata", commit(gen, "grp-topic", 0, 7, string(make([]byte, 5000))), kerr.OffsetMetadataTooLarge)

	fetch := func(version int16) (offset int64, epoch int32) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version = version
		if version >= 8 {
			req.Groups = []kmsg.OffsetFetchRequestGroup{{Group: group, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "grp-topic", Partitions: []int32{0, 1}}}}}
			resp := c.raw(g, req).(*kmsg.OffsetFetchResponse)
			wantCode(t, "fetch v8", resp.Groups[0].ErrorCode, nil)
			ps := resp.Groups[0].Topics[0].Partitions
			if ps[0].Offset != -1 {
				t.Fatalf("partition 0 has offset %d without a commit", ps[0].Offset)
			}
			return ps[1].Offset, ps[1].LeaderEpoch
		}
		req.Group = group
		req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "grp-topic", Partitions: []int32{1}}}
		p := c.raw(g, req).(*kmsg.OffsetFetchResponse).Topics[0].Partitions[0]
		wantCode(t, fmt.Sprintf("fetch v%d", version), p.ErrorCode, nil)
		return p.Offset, p.LeaderEpoch
	}
	if o, e := fetch(8); o != 42 || e != 3 {
		t.Fatalf("fetch v8: offset %d epoch %d, want 42 and 3", o, e)
	}
	if o, _ := fetch(1); o != 42 {
		t.Fatalf("fetch v1: offset %d, want 42", o)
	}

	desc := kmsg.NewPtrDescribeGroupsRequest()
	desc.Version, desc.Groups = 5, []string{group}
	dg := c.raw(g, desc).(*kmsg.DescribeGroupsResponse).Groups
	if dg[0].State != "Stable" || len(dg[0].Members) != 1 || string(dg[0].Members[0].MemberAssignment) != string(assignment) {
		t.Fatalf("describe: %+v", dg[0])
	}
	unknown := kmsg.NewPtrDescribeGroupsRequest()
	unknown.Version, unknown.Groups = 5, []string{"never-seen"}
	ug, _ := c.coordinator("never-seen")
	if dg := c.raw(ug, unknown).(*kmsg.DescribeGroupsResponse).Groups[0]; dg.State != "Dead" || dg.ErrorCode != 0 {
		t.Fatalf("describe of an unknown group: state %s code %d", dg.State, dg.ErrorCode)
	}

	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Version, del.Groups = 2, []string{group}
	wantCode(t, "delete a group with members", c.raw(g, del).(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode, kerr.NonEmptyGroup)
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group, od.Topics = group, []kmsg.OffsetDeleteRequestTopic{{Topic: "grp-topic", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 1}}}}
	odr := c.raw(g, od).(*kmsg.OffsetDeleteResponse)
	wantCode(t, "offset delete of a subscribed topic", odr.Topics[0].Partitions[0].ErrorCode, kerr.GroupSubscribedToTopic)

	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version, leave.Group = 5, group
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: member}, {MemberID: "ghost"}}
	lr := c.raw(g, leave).(*kmsg.LeaveGroupResponse)
	wantCode(t, "leave", lr.Members[0].ErrorCode, nil)
	wantCode(t, "leave of a ghost", lr.Members[1].ErrorCode, kerr.UnknownMemberID)
	if dg := c.raw(g, desc).(*kmsg.DescribeGroupsResponse).Groups[0]; dg.State != "Empty" {
		t.Fatalf("after the last member left: %s, want Empty", dg.State)
	}
	list := kmsg.NewPtrListGroupsRequest()
	list.Version, list.StatesFilter = 5, []string{"empty"}
	found := false
	for _, lg := range c.raw(g, list).(*kmsg.ListGroupsResponse).Groups {
		found = found || lg.Group == group && lg.GroupState == "Empty" && lg.ProtocolType == "consumer"
	}
	if !found {
		t.Fatalf("ListGroups(Empty) does not list %s", group)
	}
	wantCode(t, "delete", c.raw(g, del).(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode, nil)
	if o, _ := fetch(8); o != -1 {
		t.Fatalf("offset %d survived DeleteGroups", o)
	}
	wantCode(t, "delete again", c.raw(g, del).(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode, kerr.GroupIDNotFound)
}

func (c *cluster) testStaticMember(t *testing.T) {
	const group = "static"
	g, _ := c.coordinator(group)
	instance := kmsg.StringPtr("instance-a")
	joined := c.raw(g, joinReq(group, "", instance)).(*kmsg.JoinGroupResponse)
	wantCode(t, "static join", joined.ErrorCode, nil)
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Version, sync.Group, sync.MemberID, sync.Generation, sync.InstanceID = 5, group, joined.MemberID, joined.Generation, instance
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: joined.MemberID, MemberAssignment: []byte("a")}}
	wantCode(t, "static sync", c.raw(g, sync).(*kmsg.SyncGroupResponse).ErrorCode, nil)

	// A restart with the same instance id: new member id, same generation,
	// assignment kept, leader told to skip assignment (KIP-814).
	again := c.raw(g, joinReq(group, "", instance)).(*kmsg.JoinGroupResponse)
	wantCode(t, "static rejoin", again.ErrorCode, nil)
	if again.MemberID == joined.MemberID || again.Generation != joined.Generation || !again.SkipAssignment {
		t.Fatalf("static rejoin: member %q gen %d skip %v; want a new id at generation %d with SkipAssignment", again.MemberID, again.Generation, again.SkipAssignment, joined.Generation)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version, hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = 4, group, joined.MemberID, joined.Generation, instance
	wantCode(t, "heartbeat of the replaced instance", c.raw(g, hb).(*kmsg.HeartbeatResponse).ErrorCode, kerr.FencedInstanceID)
	hb.MemberID = again.MemberID
	wantCode(t, "heartbeat of the new instance", c.raw(g, hb).(*kmsg.HeartbeatResponse).ErrorCode, nil)
	sync.MemberID, sync.GroupAssignment = again.MemberID, nil
	if r := c.raw(g, sync).(*kmsg.SyncGroupResponse); r.ErrorCode != 0 || string(r.MemberAssignment) != "a" {
		t.Fatalf("sync after static rejoin: code %d assignment %q, want the kept one", r.ErrorCode, r.MemberAssignment)
	}
}

func (c *cluster) testSimpleCommits(t *testing.T) {
	const group = "simple"
	g, _ := c.coordinator(group)
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version, req.Group, req.Generation = 2, group, -1
	req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "grp-topic", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 5}}}}
	wantCode(t, "simple commit", c.raw(g, req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode, nil)
	req.Generation = 3
	wantCode(t, "member commit to an empty group", c.raw(g, req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode, kerr.IllegalGeneration)
	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.Version, fetch.Group = 7, group // null topics: all committed
	resp := c.raw(g, fetch).(*kmsg.OffsetFetchResponse)
	if len(resp.Topics) != 1 || resp.Topics[0].Partitions[0].Offset != 5 {
		t.Fatalf("fetch all: %+v", resp.Topics)
	}
}

// TestGroupCoordinatorHandover: when the coordinating gateway goes away,
// the other takes the group's shard and resumes the group from etcd - the
// same member, generation and committed offsets - without a rebalance.
func TestGroupCoordinatorHandover(t *testing.T) {
	c := startCluster(t)
	c.mustCreate(c.manual, "grp-topic", 2)
	const group = "handover"
	g, other := c.coordinator(group)
	first := c.raw(g, joinReq(group, "", nil)).(*kmsg.JoinGroupResponse)
	joined := c.raw(g, joinReq(group, first.MemberID, nil)).(*kmsg.JoinGroupResponse)
	wantCode(t, "join", joined.ErrorCode, nil)
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Version, sync.Group, sync.MemberID, sync.Generation = 5, group, joined.MemberID, joined.Generation
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: joined.MemberID, MemberAssignment: []byte("x")}}
	wantCode(t, "sync", c.raw(g, sync).(*kmsg.SyncGroupResponse).ErrorCode, nil)
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Version, commit.Group, commit.MemberID, commit.Generation = 8, group, joined.MemberID, joined.Generation
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "grp-topic", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 77, LeaderEpoch: -1}}}}
	wantCode(t, "commit", c.raw(g, commit).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode, nil)

	g.Close()
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version, hb.Group, hb.MemberID, hb.Generation = 4, group, joined.MemberID, joined.Generation
	waitFor(t, func() bool { return c.raw(other, hb).(*kmsg.HeartbeatResponse).ErrorCode != kerr.NotCoordinator.Code })
	wantCode(t, "heartbeat at the new coordinator", c.raw(other, hb).(*kmsg.HeartbeatResponse).ErrorCode, nil)
	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.Version, fetch.Group = 7, group
	fetch.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "grp-topic", Partitions: []int32{0}}}
	if o := c.raw(other, fetch).(*kmsg.OffsetFetchResponse).Topics[0].Partitions[0].Offset; o != 77 {
		t.Fatalf("committed offset %d at the new coordinator, want 77", o)
	}
	sync.GroupAssignment = nil
	if r := c.raw(other, sync).(*kmsg.SyncGroupResponse); r.ErrorCode != 0 || string(r.MemberAssignment) != "x" {
		t.Fatalf("sync at the new coordinator: code %d assignment %q", r.ErrorCode, r.MemberAssignment)
	}
}
