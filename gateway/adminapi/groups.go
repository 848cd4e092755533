package adminapi

import (
	"context"
	"sort"

	adminv1 "github.com/streamline-dev/streamline/proto/gen/streamline/admin/v1"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ListGroups implements adminv1.AdminServiceServer: every gateway's groups
// (kadm asks each gateway for the groups it coordinates).
func (s *Server) ListGroups(ctx context.Context, _ *adminv1.ListGroupsRequest) (*adminv1.ListGroupsResponse, error) {
	listed, err := s.cfg.Kafka.ListGroups(ctx)
	if err != nil {
		return nil, kafkaStatus(err, "")
	}
	out := &adminv1.ListGroupsResponse{}
	for _, g := range listed.Sorted() {
		out.Groups = append(out.Groups, &adminv1.GroupSummary{Group: g.Group, State: g.State, ProtocolType: g.ProtocolType, Coordinator: g.Coordinator})
	}
	return out, nil
}

// DescribeGroup implements adminv1.AdminServiceServer.
func (s *Server) DescribeGroup(ctx context.Context, req *adminv1.DescribeGroupRequest) (*adminv1.DescribeGroupResponse, error) {
	if err := requireName("group", req.GetGroup()); err != nil {
		return nil, err
	}
	described, err := s.cfg.Kafka.DescribeGroups(ctx, req.GetGroup())
	if err != nil {
		return nil, kafkaStatus(err, "group")
	}
	dg, ok := described[req.GetGroup()]
	if !ok {
		return nil, status.Errorf(codes.Unavailable, "group %q was not described; retry", req.GetGroup())
	}
	if dg.Err != nil {
		return nil, kafkaStatus(dg.Err, "group")
	}
	committed, err := s.cfg.Kafka.FetchOffsets(ctx, req.GetGroup())
	if err != nil {
		return nil, kafkaStatus(err, "group")
	}
	if dg.State == "Dead" && len(committed) == 0 {
		return nil, status.Errorf(codes.NotFound, "group %q does not exist", req.GetGroup())
	}
	out := &adminv1.DescribeGroupResponse{
		Group:    &adminv1.GroupSummary{Group: dg.Group, State: dg.State, ProtocolType: dg.ProtocolType, Coordinator: dg.Coordinator.NodeID},
		Protocol: dg.Protocol,
	}
	for _, m := range dg.Members {
		gm := &adminv1.GroupMember{MemberId: m.MemberID, ClientId: m.ClientID, ClientHost: m.ClientHost}
		if m.InstanceID != nil {
			gm.InstanceId = *m.InstanceID
		}
		if ca, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range ca.Topics {
				gm.Assigned = append(gm.Assigned, &adminv1.TopicPartitions{Topic: t.Topic, Partitions: t.Partitions})
			}
		}
		out.Members = append(out.Members, gm)
	}
	// Lag of every partition with a commit or an assignment.
	topics := committed.Offsets().TopicsSet()
	for _, m := range dg.Members {
		if ca, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range ca.Topics {
				topics.Add(t.Topic, t.Partitions...)
			}
		}
	}
	if len(topics) == 0 {
		return out, nil
	}
	ends, err := s.cfg.Kafka.ListEndOffsets(ctx, topics.Topics()...)
	if err != nil {
		return nil, kafkaStatus(err, "group")
	}
	starts, err := s.cfg.Kafka.ListStartOffsets(ctx, topics.Topics()...)
	if err != nil {
		return nil, kafkaStatus(err, "group")
	}
	lag := kadm.CalculateGroupLagWithStartOffsets(dg, committed, starts, ends)
	for _, l := range lag.Sorted() {
		if _, want := topics[l.Topic][l.Partition]; !want {
			continue
		}
		o := &adminv1.GroupOffset{Topic: l.Topic, Partition: l.Partition, Committed: l.Commit.At, End: l.End.Offset, Lag: l.Lag}
		if l.Member != nil {
			o.MemberId = l.Member.MemberID
		}
		out.Offsets = append(out.Offsets, o)
		if l.Lag > 0 {
			out.TotalLag += l.Lag
		}
	}
	return out, nil
}

// ResetGroupOffsets implements adminv1.AdminServiceServer. Like Kafka's
// kafka-consumer-groups --reset-offsets it refuses groups with members:
// they would overwrite the reset with their next commit.
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
		return nil, status.Errorf(codes.NotFound, "topic %q does not exist", req.GetTopic())
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
	described, err := s.cfg.Kafka.DescribeGroups(ctx, req.GetGroup())
	if err != nil {
		return nil, kafkaStatus(err, "group")
	}
	if dg := described[req.GetGroup()]; dg.Err != nil {
		return nil, kafkaStatus(dg.Err, "group")
	} else if len(dg.Members) > 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "group %q has %d active members (state %s); stop them before resetting offsets", req.GetGroup(), len(dg.Members), dg.State)
	}

	var listed kadm.ListedOffsets
	switch to := req.GetTo().(type) {
	case *adminv1.ResetGroupOffsetsRequest_Earliest:
		listed, err = s.cfg.Kafka.ListStartOffsets(ctx, t.Name)
	case *adminv1.ResetGroupOffsetsRequest_Latest:
		listed, err = s.cfg.Kafka.ListEndOffsets(ctx, t.Name)
	case *adminv1.ResetGroupOffsetsRequest_TimestampMs:
		listed, err = s.cfg.Kafka.ListOffsetsAfterMilli(ctx, to.TimestampMs, t.Name)
	case *adminv1.ResetGroupOffsetsRequest_Offset:
		if to.Offset < 0 {
			return nil, invalid("offset", "%d is negative", to.Offset)
		}
	}
	if err != nil {
		return nil, kafkaStatus(err, "topic")
	}
	offsets := kadm.Offsets{}
	out := &adminv1.ResetGroupOffsetsResponse{}
	for _, p := range parts {
		var at int64
		if o, ok := req.GetTo().(*adminv1.ResetGroupOffsetsRequest_Offset); ok {
			at = o.Offset
		} else {
			lo, ok := listed.Lookup(t.Name, p)
			if !ok || lo.Err != nil {
				if ok {
					err = lo.Err
				}
				return nil, kafkaStatus(orUnavailable(err), "topic")
			}
			at = lo.Offset
		}
		offsets.Add(kadm.Offset{Topic: t.Name, Partition: p, At: at, LeaderEpoch: -1})
		out.Offsets = append(out.Offsets, &adminv1.GroupOffset{Topic: t.Name, Partition: p, Committed: at})
	}
	sort.Slice(out.Offsets, func(i, j int) bool { return out.Offsets[i].Partition < out.Offsets[j].Partition })
	if req.GetDryRun() {
		return out, nil
	}
	resps, err := s.cfg.Kafka.CommitOffsets(ctx, req.GetGroup(), offsets)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		return nil, kafkaStatus(err, "group")
	}
	return out, nil
}

func orUnavailable(err error) error {
	if err == nil {
		return kerr.UnknownTopicOrPartition
	}
	return err
}
