package logrpc

import (
	"context"
	"sort"

	"github.com/streamline-dev/streamline/logsvc/partition"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
)

// LedPartitions is implemented by Partitions that can list every partition
// this node leads (DescribeSizes with an empty request).
type LedPartitions interface {
	Led() []*partition.Partition
}

// DescribeSizes implements LogService.DescribeSizes: each partition's
// stored bytes (storage.Log.Size: local, its segment files without
// indexes; diskless, its committed manifest entries), read from memory.
// An empty request answers every partition this node leads, sorted by
// topic and partition; otherwise results are in request order.
func (s *Server) DescribeSizes(ctx context.Context, req *logv1.DescribeSizesRequest) (*logv1.DescribeSizesResponse, error) {
	resp := &logv1.DescribeSizesResponse{}
	result := func(p *partition.Partition) *logv1.DescribeSizesPartitionResult {
		t := p.Topic()
		return &logv1.DescribeSizesPartitionResult{Topic: t.Name, Partition: p.Number(), SizeBytes: p.Size(), StorageMode: string(t.StorageMode)}
	}
	if len(req.GetPartitions()) == 0 {
		lp, ok := s.parts.(LedPartitions)
		if !ok {
			return resp, nil
		}
		for _, p := range lp.Led() {
			resp.Partitions = append(resp.Partitions, result(p))
		}
		sort.Slice(resp.Partitions, func(i, j int) bool {
			a, b := resp.Partitions[i], resp.Partitions[j]
			return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
		})
		return resp, nil
	}
	for _, dp := range req.GetPartitions() {
		p, kerrCode := s.parts.Lookup(dp.GetTopic(), dp.GetTopicId(), dp.GetPartition())
		if kerrCode != nil {
			resp.Partitions = append(resp.Partitions, &logv1.DescribeSizesPartitionResult{
				Topic: dp.GetTopic(), Partition: dp.GetPartition(), SizeBytes: -1,
				ErrorCode: code(kerrCode), ErrorMessage: lookupMessage(kerrCode, dp.GetTopic(), dp.GetPartition()),
			})
			continue
		}
		resp.Partitions = append(resp.Partitions, result(p))
	}
	return resp, nil
}
