package logrpc

import (
	"context"
	"fmt"

	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
)

// OffsetForLeaderEpoch implements LogService.OffsetForLeaderEpoch: each
// partition's answer comes from its leader-epoch history
// (partition.EndOffsetForEpoch), after the same KIP-320 fencing of
// current_leader_epoch as Fetch and ListOffsets.
func (s *Server) OffsetForLeaderEpoch(ctx context.Context, req *logv1.OffsetForLeaderEpochRequest) (*logv1.OffsetForLeaderEpochResponse, error) {
	resp := &logv1.OffsetForLeaderEpochResponse{Partitions: make([]*logv1.OffsetForLeaderEpochPartitionResult, 0, len(req.GetPartitions()))}
	for _, ep := range req.GetPartitions() {
		r := &logv1.OffsetForLeaderEpochPartitionResult{Topic: ep.GetTopic(), Partition: ep.GetPartition(), LeaderEpoch: -1, EndOffset: -1}
		resp.Partitions = append(resp.Partitions, r)
		p, kerrCode := s.parts.Lookup(ep.GetTopic(), ep.GetTopicId(), ep.GetPartition())
		if kerrCode == nil {
			if kerrCode = checkEpoch(p, ep.GetCurrentLeaderEpoch()); kerrCode != nil {
				r.ErrorMessage = fmt.Sprintf("current leader epoch %d, partition is led at epoch %d", ep.GetCurrentLeaderEpoch(), p.LeaderEpoch())
			}
		}
		if kerrCode != nil {
			r.ErrorCode = code(kerrCode)
			continue
		}
		r.LeaderEpoch, r.EndOffset = p.EndOffsetForEpoch(ep.GetLeaderEpoch())
	}
	return resp, nil
}
