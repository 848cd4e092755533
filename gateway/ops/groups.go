package ops

import (
	"context"
	"errors"
	"sort"

	"github.com/streamline-dev/streamline/gateway/groups"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Cluster-wide views of consumer groups. One gateway coordinates a group
// at a time (package groups); these operations answer on any gateway:
// from the coordinator's live state when this gateway coordinates the
// group, otherwise from the state the coordinator keeps in etcd (members
// and assignments as of the last completed rebalance step, and every
// committed offset, which is written before it is acknowledged).

// GroupListing is one group of ListGroups.
type GroupListing struct {
	Group        string
	State        string
	ProtocolType string
	// Coordinator is the Kafka node id of the coordinating gateway, -1 when
	// no live gateway holds the group's shard.
	Coordinator int32
}

// GroupMember is one member of a described group.
type GroupMember struct {
	ID         string
	InstanceID *string
	ClientID   string
	ClientHost string
	// Assignment is the member's assignment as the group's leader encoded
	// it (for consumer groups, a kmsg.ConsumerMemberAssignment); empty
	// unless the group is Stable.
	Assignment []byte
}

// GroupView is a described group.
type GroupView struct {
	Group        string
	State        string
	ProtocolType string
	Protocol     string
	Coordinator  int32
	Members      []GroupMember
	// Offsets are the committed offsets, without those of deleted topics.
	Offsets map[meta.TopicPartition]meta.GroupOffset
}

// coordinators maps each held shard to its gateway.
func (o *Ops) coordinators(ctx context.Context) (map[int]meta.Gateway, error) {
	owners, err := o.store.GroupShardOwners(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]meta.Gateway{}
	for _, g := range o.cache.Gateways() {
		byID[g.ID] = g
	}
	out := make(map[int]meta.Gateway, len(owners))
	for shard, id := range owners {
		if g, ok := byID[id]; ok {
			out[shard] = g
		}
	}
	return out, nil
}

// Coordinator returns the live gateway coordinating group; ok is false
// when no live gateway holds its shard (a gateway died a moment ago: its
// shards move within the session TTL).
func (o *Ops) Coordinator(ctx context.Context, group string) (meta.Gateway, bool, *Error) {
	id, err := o.store.GroupShardOwner(ctx, meta.GroupShard(group))
	if err != nil {
		return meta.Gateway{}, false, metaError("group", err)
	}
	for _, g := range o.cache.Gateways() {
		if g.ID == id {
			return g, true, nil
		}
	}
	return meta.Gateway{}, false, nil
}

// ListGroups lists every group of the cluster, sorted by name.
func (o *Ops) ListGroups(ctx context.Context) ([]GroupListing, *Error) {
	metas, err := o.store.ListGroupMetas(ctx, nil)
	if errors.Is(err, meta.ErrCorruptGroupState) {
		o.log.Error("undecodable group state in etcd; listing those groups as empty", "err", err)
		err = nil
	}
	if err != nil {
		return nil, metaError("", err)
	}
	coords, err := o.coordinators(ctx)
	if err != nil {
		return nil, metaError("", err)
	}
	byName := map[string]GroupListing{}
	for i := range metas {
		gm := &metas[i]
		byName[gm.Group] = GroupListing{Group: gm.Group, State: groups.PersistedState(gm), ProtocolType: gm.ProtocolType, Coordinator: -1}
	}
	if o.cfg.Groups != nil {
		// This gateway's groups with their live state, including groups
		// whose first rebalance has not been persisted yet.
		live, err := o.cfg.Groups.ListGroups(ctx)
		if err != nil {
			return nil, metaError("", err)
		}
		for _, s := range live {
			byName[s.Group] = GroupListing{Group: s.Group, State: s.State, ProtocolType: s.ProtocolType}
		}
	}
	out := make([]GroupListing, 0, len(byName))
	for _, l := range byName {
		l.Coordinator = -1
		if g, ok := coords[meta.GroupShard(l.Group)]; ok {
			l.Coordinator = g.NodeID
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out, nil
}

// DescribeGroup describes one group. A group that does not exist (no
// persisted state, no members, no committed offsets) is
// GROUP_ID_NOT_FOUND.
func (o *Ops) DescribeGroup(ctx context.Context, name string) (*GroupView, *Error) {
	if name == "" {
		return nil, fail(kerr.InvalidGroupID, "group", "a group name is required")
	}
	coord, _, e := o.Coordinator(ctx, name)
	if e != nil {
		return nil, e
	}
	v := &GroupView{Group: name, Coordinator: -1}
	if coord.ID != "" {
		v.Coordinator = coord.NodeID
	}
	if o.cfg.Groups != nil && o.cfg.Groups.Owns(name) {
		if ok, e := o.describeLive(ctx, v); e != nil || ok {
			return v, e
		}
		// Lost the shard meanwhile: read what the new coordinator reads.
	}
	gm, offsets, err := o.store.LoadGroup(ctx, name)
	if errors.Is(err, meta.ErrCorruptGroupState) {
		o.log.Error("undecodable group state in etcd", "group", name, "err", err)
		err = nil
	}
	if err != nil {
		return nil, metaError("group", err)
	}
	v.Offsets = o.current(offsets)
	if gm == nil {
		if len(v.Offsets) == 0 {
			return nil, fail(kerr.GroupIDNotFound, "group", "group %q does not exist", name)
		}
		v.State = "Empty"
		return v, nil
	}
	v.State, v.ProtocolType = groups.PersistedState(gm), gm.ProtocolType
	stable := v.State == "Stable"
	if stable {
		v.Protocol = gm.Protocol
	}
	for _, m := range gm.Members {
		gmv := GroupMember{ID: m.ID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost}
		if stable {
			gmv.Assignment = m.Assignment
		}
		v.Members = append(v.Members, gmv)
	}
	sort.Slice(v.Members, func(i, j int) bool { return v.Members[i].ID < v.Members[j].ID })
	return v, nil
}

// describeLive fills v from this gateway's coordinator; false when it no
// longer coordinates the group.
func (o *Ops) describeLive(ctx context.Context, v *GroupView) (bool, *Error) {
	dg := o.cfg.Groups.DescribeGroup(ctx, v.Group)
	if dg.ErrorCode == kerr.NotCoordinator.Code {
		return false, nil
	}
	if dg.ErrorCode != 0 {
		return true, &Error{Code: codeError(int32(dg.ErrorCode)), Field: "group", Msg: "group " + v.Group}
	}
	offsets, ke := o.cfg.Groups.FetchOffsets(ctx, v.Group)
	if ke == kerr.NotCoordinator {
		return false, nil
	}
	if ke != nil {
		return true, &Error{Code: ke, Field: "group", Msg: "group " + v.Group}
	}
	v.Offsets = o.current(offsets)
	if dg.State == "Dead" && len(v.Offsets) == 0 {
		return true, fail(kerr.GroupIDNotFound, "group", "group %q does not exist", v.Group)
	}
	v.State, v.ProtocolType, v.Protocol = dg.State, dg.ProtocolType, dg.Protocol
	if v.State == "Dead" {
		v.State = "Empty" // offsets without a persisted membership
	}
	for _, m := range dg.Members {
		v.Members = append(v.Members, GroupMember{ID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, ClientHost: m.ClientHost, Assignment: m.MemberAssignment})
	}
	return true, nil
}

// current drops the offsets of deleted (maybe re-created) topics: they are
// not commits of the topic there is now (Kafka deletes them with the
// topic).
func (o *Ops) current(offsets map[meta.TopicPartition]meta.GroupOffset) map[meta.TopicPartition]meta.GroupOffset {
	rev := o.cache.Revision()
	for tp, off := range offsets {
		if t, ok := o.cache.Topic(tp.Topic); off.Stale(rev, t, ok) {
			delete(offsets, tp)
		}
	}
	return offsets
}

// PartitionExists tells the coordinator whether a partition exists, and
// the id of its topic with a metadata revision at which it had that id.
func (o *Ops) PartitionExists(topic string, partition int32) (meta.TopicID, int64, bool) {
	rev := o.cache.Revision() // read first: the partition is at least as new
	p, ok := o.cache.Partition(topic, partition)
	return p.TopicID, rev, ok
}

// CommitGroupOffsets sets a group's committed offsets, as an admin does
// (Kafka's kafka-consumer-groups --reset-offsets): only a group without
// members takes them (NON_EMPTY_GROUP otherwise: members would overwrite
// the change with their next commit). Only the coordinating gateway can
// write a group: elsewhere this is NOT_COORDINATOR, and the caller asks
// the gateway Coordinator names.
func (o *Ops) CommitGroupOffsets(ctx context.Context, group string, offsets map[meta.TopicPartition]int64) *Error {
	if group == "" {
		return fail(kerr.InvalidGroupID, "group", "a group name is required")
	}
	if o.cfg.Groups == nil || !o.cfg.Groups.Owns(group) {
		return fail(kerr.NotCoordinator, "group", "gateway %s does not coordinate group %q", o.cfg.GatewayID, group)
	}
	dg := o.cfg.Groups.DescribeGroup(ctx, group)
	switch {
	case dg.ErrorCode == kerr.NotCoordinator.Code:
		return fail(kerr.NotCoordinator, "group", "gateway %s does not coordinate group %q", o.cfg.GatewayID, group)
	case dg.ErrorCode != 0:
		return &Error{Code: codeError(int32(dg.ErrorCode)), Field: "group", Msg: "group " + group}
	case len(dg.Members) > 0:
		return fail(kerr.NonEmptyGroup, "group", "group %q has %d active members (state %s); stop them before changing its offsets", group, len(dg.Members), dg.State)
	}
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = group, -1
	byTopic := map[string]int{}
	for tp, at := range offsets {
		i, ok := byTopic[tp.Topic]
		if !ok {
			i = len(req.Topics)
			byTopic[tp.Topic] = i
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic = tp.Topic
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = tp.Partition, at, -1
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	resp := o.cfg.Groups.CommitOffsets(ctx, req, o.PartitionExists)
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 {
				return &Error{Code: codeError(int32(rp.ErrorCode)), Field: "group", Msg: "committing offsets of group " + group}
			}
		}
	}
	return nil
}
