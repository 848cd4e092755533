package adminapi

import (
	"context"
	"sort"

	"github.com/streamline-dev/streamline/gateway/ops"
	adminv1 "github.com/streamline-dev/streamline/proto/gen/streamline/admin/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ListGroups implements adminv1.AdminServiceServer: every group of the
// cluster, whichever gateway coordinates it.
func (s *Server) ListGroups(ctx context.Context, _ *adminv1.ListGroupsRequest) (*adminv1.ListGroupsResponse, error) {
	listed, e := s.ops.ListGroups(ctx)
	if e != nil {
		return nil, opsStatus(e)
	}
	out := &adminv1.ListGroupsResponse{}
	for _, g := range listed {
		out.Groups = append(out.Groups, &adminv1.GroupSummary{Group: g.Group, State: g.State, ProtocolType: g.ProtocolType, Coordinator: g.Coordinator})
	}
	return out, nil
}

// DescribeGroup implements adminv1.AdminServiceServer: members with their
// assignments, and the committed offset, end and lag of every partition
// with a commit or an assignment.
func (s *Server) DescribeGroup(ctx context.Context, req *adminv1.DescribeGroupRequest) (*adminv1.DescribeGroupResponse, error) {
	if err := requireName("group", req.GetGroup()); err != nil {
		return nil, err
	}
	v, e := s.ops.DescribeGroup(ctx, req.GetGroup())
	if e != nil {
		return nil, opsStatus(e)
	}
	out := &adminv1.DescribeGroupResponse{
		Group:    &adminv1.GroupSummary{Group: v.Group, State: v.State, ProtocolType: v.ProtocolType, Coordinator: v.Coordinator},
		Protocol: v.Protocol,
	}
	assigned := map[meta.TopicPartition]string{}
	for _, m := range v.Members {
		gm := &adminv1.GroupMember{MemberId: m.ID, ClientId: m.ClientID, ClientHost: m.ClientHost}
		if m.InstanceID != nil {
			gm.InstanceId = *m.InstanceID
		}
		if v.ProtocolType == "consumer" && len(m.Assignment) > 0 {
			var ca kmsg.ConsumerMemberAssignment
			if err := ca.ReadFrom(m.Assignment); err == nil {
				for _, t := range ca.Topics {
					gm.Assigned = append(gm.Assigned, &adminv1.TopicPartitions{Topic: t.Topic, Partitions: t.Partitions})
					for _, p := range t.Partitions {
						assigned[meta.TopicPartition{Topic: t.Topic, Partition: p}] = m.ID
					}
				}
			}
		}
		out.Members = append(out.Members, gm)
	}
	// Lag of every partition with a commit or an assignment.
	var tps []meta.TopicPartition
	seen := map[meta.TopicPartition]bool{}
	for tp := range v.Offsets {
		tps, seen[tp] = append(tps, tp), true
	}
	for tp := range assigned {
		if !seen[tp] {
			tps = append(tps, tp)
		}
	}
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
	listed := s.startsAndEnds(ctx, tps)
	for i, tp := range tps {
		o := &adminv1.GroupOffset{Topic: tp.Topic, Partition: tp.Partition, Committed: -1, End: -1, Lag: -1, MemberId: assigned[tp]}
		if c, ok := v.Offsets[tp]; ok {
			o.Committed = c.Offset
		}
		start, end := listed[2*i], listed[2*i+1]
		if end.Err == nil {
			o.End = end.Offset
			o.Lag = lag(o.Committed, start, end.Offset)
		}
		if o.Lag > 0 {
			out.TotalLag += o.Lag
		}
		out.Offsets = append(out.Offsets, o)
	}
	return out, nil
}

// lag is end - committed; a commit below the log start, or no commit,
// counts from the log start (what the consumer will read), as kadm
// computes it. -1 when the start is needed and unknown.
func lag(committed int64, start ops.ListedOffset, end int64) int64 {
	from := committed
	if committed < 0 || start.Err == nil && committed < start.Offset {
		if start.Err != nil {
			return -1
		}
		from = start.Offset
	}
	return max(end-from, 0)
}

// ResetGroupOffsets implements adminv1.AdminServiceServer. Like Kafka's
// kafka-consumer-groups --reset-offsets it refuses groups with members:
// they would overwrite the reset with their next commit. The gateway
// coordinating the group commits; another gateway forwards the call there.
func (s *Server) ResetGroupOffsets(ctx context.Context, req *adminv1.ResetGroupOffsetsRequest) (*adminv1.ResetGroupOffsetsResponse, error) {
	if err := requireName("group", req.GetGroup()); err != nil {
		return nil, err
	}
	if err := requireName("topic", req.GetTopic()); err != nil {
		return nil, err
	}
	if req.GetTo() == nil {
		return nil, invalid("to", "give one of earliest, latest, offset or timestamp_ms")
	}
	t, ok := s.cfg.Cache.Topic(req.GetTopic())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "topic %s does not exist", req.GetTopic())
	}
	parts := req.GetPartitions()
	if len(parts) == 0 {
		for p := range t.Partitions {
			parts = append(parts, p)
		}
	}
	for _, p := range parts {
		if p < 0 || p >= t.Partitions {
			return nil, invalid("partitions", "topic %s has no partition %d", t.Name, p)
		}
	}
	at := make([]int64, len(parts))
	switch to := req.GetTo().(type) {
	case *adminv1.ResetGroupOffsetsRequest_Offset:
		if to.Offset < 0 {
			return nil, invalid("offset", "%d is negative", to.Offset)
		}
		for i := range at {
			at[i] = to.Offset
		}
	default:
		ts := ops.Earliest
		switch to := to.(type) {
		case *adminv1.ResetGroupOffsetsRequest_Latest:
			ts = ops.Latest
		case *adminv1.ResetGroupOffsetsRequest_TimestampMs:
			if to.TimestampMs < 0 {
				return nil, invalid("timestamp_ms", "%d is negative", to.TimestampMs)
			}
			ts = to.TimestampMs
		}
		qs := make([]ops.OffsetQuery, len(parts))
		for i, p := range parts {
			qs[i] = ops.OffsetQuery{Topic: t.Name, Partition: p, Timestamp: ts, CurrentLeaderEpoch: -1}
		}
		listed := s.listOffsets(ctx, qs)
		if ts >= 0 {
			// No record at or after the time: the end, as kafka-consumer-groups
			// --to-datetime does.
			for i, o := range listed {
				if o.Err == nil && o.Offset < 0 {
					qs[i].Timestamp = ops.Latest
					listed[i] = s.listOffsets(ctx, qs[i:i+1])[0]
				}
			}
		}
		for i, o := range listed {
			if o.Err != nil {
				return nil, status.Errorf(grpcCode(o.Err), "listing offsets of %s/%d: %s", t.Name, parts[i], o.Err.Message)
			}
			at[i] = o.Offset
		}
	}
	out := &adminv1.ResetGroupOffsetsResponse{}
	offsets := make(map[meta.TopicPartition]int64, len(parts))
	for i, p := range parts {
		offsets[meta.TopicPartition{Topic: t.Name, Partition: p}] = at[i]
		out.Offsets = append(out.Offsets, &adminv1.GroupOffset{Topic: t.Name, Partition: p, Committed: at[i]})
	}
	sort.Slice(out.Offsets, func(i, j int) bool { return out.Offsets[i].Partition < out.Offsets[j].Partition })
	if req.GetDryRun() {
		return out, nil
	}
	if e := s.ops.CommitGroupOffsets(ctx, req.GetGroup(), offsets); e != nil {
		if e.Code == kerr.NotCoordinator {
			return s.forwardReset(ctx, req)
		}
		return nil, opsStatus(e)
	}
	return out, nil
}
