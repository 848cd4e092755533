package logrpc

import (
	"context"
	"sync"

	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
)

// DeleteRecords implements LogService.DeleteRecords: each partition's log
// start moves to the requested offset (partition.DeleteRecords), all
// partitions in parallel (a diskless one is an etcd transaction, a local
// one a checkpoint fsync). Results are in request order.
func (s *Server) DeleteRecords(ctx context.Context, req *logv1.DeleteRecordsRequest) (*logv1.DeleteRecordsResponse, error) {
	resp := &logv1.DeleteRecordsResponse{Partitions: make([]*logv1.DeleteRecordsPartitionResult, len(req.GetPartitions()))}
	var wg sync.WaitGroup
	for i, dp := range req.GetPartitions() {
		r := &logv1.DeleteRecordsPartitionResult{Topic: dp.GetTopic(), Partition: dp.GetPartition(), LowWatermark: -1}
		resp.Partitions[i] = r
		p, kerrCode := s.parts.Lookup(dp.GetTopic(), dp.GetTopicId(), dp.GetPartition())
		if kerrCode != nil {
			r.ErrorCode, r.ErrorMessage = code(kerrCode), lookupMessage(kerrCode, dp.GetTopic(), dp.GetPartition())
			continue
		}
		wg.Go(func() {
			low, e, msg := p.DeleteRecords(ctx, dp.GetOffset())
			r.LowWatermark, r.ErrorCode, r.ErrorMessage = low, code(e), msg
		})
	}
	wg.Wait()
	return resp, nil
}
