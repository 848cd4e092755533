package logrpc

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/streamline-dev/streamline/logsvc/partition"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
)

// maxReplicateWait bounds how long one follower fetch may long-poll.
const maxReplicateWait = 30 * time.Second

// Replicate implements LogService.Replicate: one follower fetch per
// message, answered in order (the leader side of Kafka's replica fetcher).
func (s *Server) Replicate(stream logv1.LogService_ReplicateServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := s.replicaFetch(stream.Context(), req)
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// replicaFetch answers one follower fetch, long-polling until a partition
// has batches for the follower, an error or a divergence to report, or
// max_wait_ms passes.
func (s *Server) replicaFetch(ctx context.Context, req *logv1.ReplicateRequest) (*logv1.ReplicateResponse, error) {
	switch {
	case req.GetFollowerId() == "":
		return nil, status.Error(codes.InvalidArgument, "follower_id is required")
	case req.GetMaxWaitMs() < 0 || req.GetMaxBytes() < 0:
		return nil, status.Error(codes.InvalidArgument, "max_wait_ms and max_bytes must not be negative")
	}
	wait := min(time.Duration(req.GetMaxWaitMs())*time.Millisecond, maxReplicateWait)
	deadline := time.Now().Add(wait)
	parts := make([]*partition.Partition, len(req.GetPartitions()))
	errs := make([]*kerr.Error, len(req.GetPartitions()))
	for i, rp := range req.GetPartitions() {
		parts[i], errs[i] = s.parts.Lookup(rp.GetTopic(), rp.GetTopicId(), rp.GetPartition())
		if errs[i] == nil {
			errs[i] = checkEpoch(parts[i], rp.GetCurrentLeaderEpoch())
		}
	}
	budget := int(req.GetMaxBytes())
	if budget == 0 {
		budget = 8 << 20
	}
	for {
		var wake []<-chan struct{}
		for i, p := range parts {
			if errs[i] == nil {
				wake = append(wake, p.Appended())
			}
		}
		resp := &logv1.ReplicateResponse{Partitions: make([]*logv1.ReplicatePartitionResult, len(parts))}
		total, news := 0, false
		for i, rp := range req.GetPartitions() {
			r := &logv1.ReplicatePartitionResult{Topic: rp.GetTopic(), Partition: rp.GetPartition(),
				HighWatermark: -1, LogStartOffset: -1, DivergingEpoch: -1, DivergingEndOffset: -1}
			resp.Partitions[i] = r
			if errs[i] != nil {
				r.ErrorCode, r.ErrorMessage, news = code(errs[i]), lookupMessage(errs[i], rp.GetTopic(), rp.GetPartition()), true
				continue
			}
			limit := min(int(rp.GetPartitionMaxBytes()), max(budget-total, 0))
			if rp.GetPartitionMaxBytes() <= 0 {
				limit = max(budget-total, 0)
			}
			fr := parts[i].ReplicaFetch(req.GetFollowerId(), rp.GetFetchOffset(), rp.GetLastFetchedEpoch(), limit)
			r.ErrorCode, r.ErrorMessage = code(fr.Err), fr.Message
			r.HighWatermark, r.LogStartOffset, r.Records = fr.HighWatermark, fr.LogStartOffset, fr.Records
			r.DivergingEpoch, r.DivergingEndOffset = fr.DivergingEpoch, fr.DivergingEndOffset
			if fr.LocalLogStartOffset >= 0 {
				r.LocalLogStartOffset = &fr.LocalLogStartOffset
			}
			if fr.Err != nil || fr.DivergingEpoch >= 0 || len(fr.Records) > 0 {
				news = true
			}
			total += len(fr.Records)
			if s.replicated != nil && len(fr.Records) > 0 {
				s.replicated(string(parts[i].Topic().StorageMode), len(fr.Records))
			}
		}
		remaining := time.Until(deadline)
		if news || remaining <= 0 || len(wake) == 0 {
			return resp, nil
		}
		if !waitAny(ctx, wake, remaining) && ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
}

// CountReplication makes the server report the bytes it sends to
// followers, per storage mode (metrics). Call it before serving.
func (s *Server) CountReplication(fn func(storageMode string, bytes int)) { s.replicated = fn }
