package groups

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// wait returns the answer of a parked call, or ctx's error when the
// connection goes away first (the member's session timer then decides).
func wait[T kmsg.Response](ctx context.Context, ch chan kmsg.Response) (T, error) {
	select {
	case r := <-ch:
		return r.(T), nil
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// JoinGroup answers a JoinGroup, waiting for the rebalance it starts or
// joins.
func (c *Coordinator) JoinGroup(ctx context.Context, cl Client, req *kmsg.JoinGroupRequest) (*kmsg.JoinGroupResponse, error) {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation, resp.MemberID = -1, req.MemberID
	if req.Version == 0 {
		req.RebalanceTimeoutMillis = req.SessionTimeoutMillis // v0 has no rebalance timeout
	}
	st := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	switch {
	case req.Group == "":
		resp.ErrorCode = kerr.InvalidGroupID.Code
	case st < c.cfg.MinSessionTimeout || st > c.cfg.MaxSessionTimeout:
		resp.ErrorCode = kerr.InvalidSessionTimeout.Code
	case req.ProtocolType == "" || len(req.Protocols) == 0:
		resp.ErrorCode = kerr.InconsistentGroupProtocol.Code
	}
	if resp.ErrorCode != 0 {
		return resp, nil
	}
	g, e := c.group(ctx, req.Group)
	if e != nil {
		resp.ErrorCode = e.Code
		return resp, nil
	}
	g.mu.Lock()
	now, ch := g.join(cl, req, resp)
	g.mu.Unlock()
	if ch == nil {
		return now, nil
	}
	return wait[*kmsg.JoinGroupResponse](ctx, ch)
}

// SyncGroup answers a SyncGroup; followers wait for the leader's.
func (c *Coordinator) SyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) (*kmsg.SyncGroupResponse, error) {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	g, e := c.group(ctx, req.Group)
	if e != nil {
		resp.ErrorCode = e.Code
		return resp, nil
	}
	g.mu.Lock()
	now, ch := g.sync(req, resp)
	g.mu.Unlock()
	if ch == nil {
		return now, nil
	}
	return wait[*kmsg.SyncGroupResponse](ctx, ch)
}

// Heartbeat answers a Heartbeat.
func (c *Coordinator) Heartbeat(ctx context.Context, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	g, e := c.group(ctx, req.Group)
	if e == nil {
		g.mu.Lock()
		e = g.heartbeatReq(req)
		g.mu.Unlock()
	}
	if e != nil {
		resp.ErrorCode = e.Code
	}
	return resp
}

// LeaveGroup answers a LeaveGroup (v0-2 with one member id, v3+ a batch).
func (c *Coordinator) LeaveGroup(ctx context.Context, req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	if req.Version < 3 {
		req.Members = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	g, e := c.group(ctx, req.Group)
	if e != nil {
		resp.ErrorCode = e.Code
		return resp
	}
	g.mu.Lock()
	g.leave(req, resp)
	g.mu.Unlock()
	if req.Version < 3 && resp.ErrorCode == 0 && len(resp.Members) == 1 {
		resp.ErrorCode = resp.Members[0].ErrorCode
		resp.Members = nil
	}
	return resp
}

// PartitionExists tells OffsetCommit whether a partition exists, and the
// id of its topic with a metadata revision at which it had that id
// (meta.GroupOffset.TopicID and TopicRevision).
type PartitionExists func(topic string, partition int32) (id meta.TopicID, rev int64, ok bool)

// CommitOffsets answers an OffsetCommit. Offsets are written to etcd
// before the answer; a commit of a member of another generation is
// refused, so a consumer that was kicked out cannot move the group back.
func (c *Coordinator) CommitOffsets(ctx context.Context, req *kmsg.OffsetCommitRequest, exists PartitionExists) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	codes := map[meta.TopicPartition]int16{}
	all := func(e *kerr.Error) {
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				codes[meta.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = e.Code
			}
		}
	}
	if e := c.commit(ctx, req, exists, codes); e != nil {
		all(e)
	}
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = codes[meta.TopicPartition{Topic: t.Topic, Partition: p.Partition}]
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (c *Coordinator) commit(ctx context.Context, req *kmsg.OffsetCommitRequest, exists PartitionExists, codes map[meta.TopicPartition]int16) *kerr.Error {
	if req.Group == "" {
		return kerr.InvalidGroupID
	}
	g, e := c.group(ctx, req.Group)
	if e != nil {
		return e
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == stateDead {
		return kerr.NotCoordinator
	}
	if e := g.validateInstanceID(req.InstanceID, req.MemberID); e != nil {
		return e
	}
	var m *member
	if len(g.members) > 0 {
		var ok bool
		if m, ok = g.members[req.MemberID]; !ok {
			return kerr.UnknownMemberID
		}
		if req.Generation != g.generation {
			return kerr.IllegalGeneration
		}
	} else if req.Generation >= 0 {
		// Only "simple" commits (generation -1) go to a group without members.
		return kerr.IllegalGeneration
	}
	if g.state == stateCompletingRebalance {
		g.heartbeat(m)
		return kerr.RebalanceInProgress
	}
	var asked []askedOffset
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			epoch := p.LeaderEpoch
			if req.Version < 6 {
				epoch = -1
			}
			asked = append(asked, askedOffset{t.Topic, p.Partition, p.Offset, epoch, p.Metadata})
		}
	}
	valid := validOffsets(asked, exists, codes)
	if len(valid) == 0 {
		return nil
	}
	var gm *meta.GroupMeta
	if !g.persisted {
		gm = g.snapshot() // so ListGroups shows a group that only commits
	}
	wctx, cancel := context.WithTimeout(ctx, persistTimeout)
	defer cancel()
	began := time.Now()
	err := c.store.CommitGroupOffsets(wctx, g.guard, g.name, gm, valid)
	if c.cfg.CommitLatency != nil {
		c.cfg.CommitLatency.Observe(time.Since(began).Seconds())
	}
	if err != nil {
		return c.persistFailed(g, err)
	}
	if gm != nil {
		g.persisted = true
	}
	for tp, o := range valid {
		g.offsets[tp] = o
	}
	if m != nil {
		g.heartbeat(m)
	}
	return nil
}

// FetchOffsets returns a copy of group's committed offsets (not the
// pending ones of transactions).
func (c *Coordinator) FetchOffsets(ctx context.Context, group string) (map[meta.TopicPartition]meta.GroupOffset, *kerr.Error) {
	out, _, e := c.FetchOffsetsPending(ctx, group)
	return out, e
}

// DescribeGroup fills one DescribeGroups answer. As in Kafka, members'
// metadata and assignments are shown only while the group is Stable, and
// an unknown group is "Dead" without an error (v0-5).
func (c *Coordinator) DescribeGroup(ctx context.Context, name string) kmsg.DescribeGroupsResponseGroup {
	out := kmsg.NewDescribeGroupsResponseGroup()
	out.Group = name
	g, e := c.group(ctx, name)
	if e != nil {
		out.ErrorCode = e.Code
		return out
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == stateDead {
		out.ErrorCode = kerr.NotCoordinator.Code
		return out
	}
	out.State = g.state.String()
	if !g.persisted && len(g.members) == 0 {
		out.State = stateDead.String()
		return out
	}
	out.ProtocolType = g.protocolType
	stable := g.state == stateStable
	if stable {
		out.Protocol = g.protocol
	}
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		m := g.members[id]
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID, dm.InstanceID, dm.ClientID, dm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
		if stable {
			dm.ProtocolMetadata = m.metadataFor(g.protocol)
			dm.MemberAssignment = m.assignment
		}
		out.Members = append(out.Members, dm)
	}
	return out
}

// PersistedState is the state of a group as of its last persisted step:
// what the next coordinator resumes it in (a rebalance being prepared is
// not persisted until its join phase completes).
func PersistedState(gm *meta.GroupMeta) string {
	st := stateEmpty
	switch {
	case len(gm.Members) > 0 && gm.Stable:
		st = stateStable
	case len(gm.Members) > 0:
		st = stateCompletingRebalance
	}
	return st.String()
}

// GroupSummary is one ListGroups entry.
type GroupSummary struct {
	Group        string
	ProtocolType string
	State        string
}

// ListGroups lists the groups this gateway coordinates: loaded groups with
// their live state, the others as persisted.
func (c *Coordinator) ListGroups(ctx context.Context) ([]GroupSummary, error) {
	held := c.shards.heldSet()
	metas, err := c.store.ListGroupMetas(ctx, held)
	if errors.Is(err, meta.ErrCorruptGroupState) {
		c.log.Error("undecodable group state in etcd; listing those groups as empty", "err", err)
		err = nil
	}
	if err != nil {
		return nil, err
	}
	byName := map[string]GroupSummary{}
	for _, gm := range metas {
		byName[gm.Group] = GroupSummary{Group: gm.Group, ProtocolType: gm.ProtocolType, State: PersistedState(&gm)}
	}
	c.mu.Lock()
	loaded := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		loaded = append(loaded, g)
	}
	c.mu.Unlock()
	for _, g := range loaded {
		g.mu.Lock()
		if g.state != stateDead && held[g.guard.Shard] && (g.persisted || len(g.members) > 0) {
			byName[g.name] = GroupSummary{Group: g.name, ProtocolType: g.protocolType, State: g.state.String()}
		}
		g.mu.Unlock()
	}
	out := make([]GroupSummary, 0, len(byName))
	for _, s := range byName {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out, nil
}

// DeleteGroup deletes an empty group and its committed offsets. A group
// with offsets pending in transactions is not empty (NON_EMPTY_GROUP)
// until their transactions end: deleting it would leave the pending
// offsets and markers to be applied to a group that no longer exists.
func (c *Coordinator) DeleteGroup(ctx context.Context, name string) *kerr.Error {
	if name == "" {
		return kerr.InvalidGroupID
	}
	g, e := c.group(ctx, name)
	if e != nil {
		return e
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.state == stateDead:
		return kerr.NotCoordinator
	case g.state != stateEmpty || len(g.txnPending) > 0:
		return kerr.NonEmptyGroup
	case !g.persisted && len(g.offsets) == 0:
		return kerr.GroupIDNotFound
	}
	wctx, cancel := context.WithTimeout(ctx, persistTimeout)
	defer cancel()
	if err := c.store.DeleteGroup(wctx, g.guard, name); err != nil {
		return c.persistFailed(g, err)
	}
	g.kill(kerr.GroupIDNotFound) // the next request starts from nothing
	return nil
}

// DeleteOffsets answers an OffsetDelete: a group with members keeps the
// offsets of topics they subscribe to (GROUP_SUBSCRIBED_TO_TOPIC).
func (c *Coordinator) DeleteOffsets(ctx context.Context, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	g, e := c.group(ctx, req.Group)
	if e != nil {
		resp.ErrorCode = e.Code
		return resp
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var subscribed map[string]bool
	switch {
	case g.state == stateDead:
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp
	case !g.persisted && len(g.members) == 0:
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return resp
	case g.state != stateEmpty && g.protocolType != "consumer":
		resp.ErrorCode = kerr.NonEmptyGroup.Code
		return resp
	case g.state != stateEmpty:
		subscribed = g.subscribedTopics()
	}
	var del []meta.TopicPartition
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			if subscribed[t.Topic] {
				rp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			} else {
				del = append(del, meta.TopicPartition{Topic: t.Topic, Partition: p.Partition})
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if len(del) == 0 {
		return resp
	}
	wctx, cancel := context.WithTimeout(ctx, persistTimeout)
	defer cancel()
	if err := c.store.DeleteGroupOffsets(wctx, g.guard, g.name, del); err != nil {
		resp.ErrorCode = c.persistFailed(g, err).Code
		resp.Topics = nil
		return resp
	}
	for _, tp := range del {
		delete(g.offsets, tp)
	}
	return resp
}

// askedOffset is one partition's offset in an OffsetCommit or a
// TxnOffsetCommit (LeaderEpoch -1 where the request's version has none).
type askedOffset struct {
	topic       string
	partition   int32
	offset      int64
	leaderEpoch int32
	metadata    *string
}

// validOffsets is what a commit stores of asked: partitions that exist,
// with metadata within MaxOffsetMetadataBytes, stamped with the commit time
// and the topic's id; each refused one gets its error code in codes.
func validOffsets(asked []askedOffset, exists PartitionExists, codes map[meta.TopicPartition]int16) map[meta.TopicPartition]meta.GroupOffset {
	now := time.Now().UnixMilli()
	valid := map[meta.TopicPartition]meta.GroupOffset{}
	for _, a := range asked {
		tp := meta.TopicPartition{Topic: a.topic, Partition: a.partition}
		id, rev, ok := exists(a.topic, a.partition)
		switch {
		case !ok:
			codes[tp] = kerr.UnknownTopicOrPartition.Code
		case a.metadata != nil && len(*a.metadata) > MaxOffsetMetadataBytes:
			codes[tp] = kerr.OffsetMetadataTooLarge.Code
		default:
			valid[tp] = meta.GroupOffset{Offset: a.offset, LeaderEpoch: a.leaderEpoch, Metadata: a.metadata, CommitTimeMs: now, TopicID: id, TopicRevision: rev}
		}
	}
	return valid
}
