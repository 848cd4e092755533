// Package uploadrpc is the gRPC adapter of the UploadService: protobuf in,
// uploader.Upload, protobuf out. Per-partition commit outcomes are data;
// a gRPC status means the flush as a whole failed (nothing committed).
package uploadrpc

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	uploadv1 "github.com/streamline-dev/streamline/proto/gen/streamline/upload/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/uploader"
)

// Server implements uploadv1.UploadServiceServer.
type Server struct {
	uploadv1.UnimplementedUploadServiceServer
	objects uploader.ObjectWriter
	commits uploader.Committer
}

// NewServer returns an UploadService writing to objects and committing
// through commits. With objects nil every call fails with
// FailedPrecondition: the cluster has no object store configured.
func NewServer(objects uploader.ObjectWriter, commits uploader.Committer) *Server {
	return &Server{objects: objects, commits: commits}
}

// Upload implements UploadService.Upload.
func (s *Server) Upload(ctx context.Context, req *uploadv1.UploadRequest) (*uploadv1.UploadResponse, error) {
	if s.objects == nil {
		return nil, status.Error(codes.FailedPrecondition, "this uploader has no object store configured (--object-store)")
	}
	if req.GetNodeId() == "" || len(req.GetPartitions()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "node_id and at least one partition are required")
	}
	f := uploader.Flush{NodeID: req.GetNodeId(), Seq: req.GetFlushSeq()}
	for _, p := range req.GetPartitions() {
		if len(p.GetTopicId()) != 16 {
			return nil, status.Errorf(codes.InvalidArgument, "partition %s-%d: topic_id must be 16 bytes", p.GetTopic(), p.GetPartition())
		}
		f.Partitions = append(f.Partitions, uploader.PartitionBatches{
			Topic: p.GetTopic(), TopicID: meta.TopicID(p.GetTopicId()), Partition: p.GetPartition(),
			LeaderEpoch: p.GetLeaderEpoch(), LeaderRevision: p.GetLeaderRevision(), Batches: p.GetBatches(),
		})
	}
	key, outcomes, err := uploader.Upload(ctx, s.objects, s.commits, f)
	switch {
	case errors.Is(err, uploader.ErrInvalidFlush):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case err != nil:
		return nil, status.Errorf(codes.Unavailable, "upload failed, nothing committed: %v", err)
	}
	resp := &uploadv1.UploadResponse{ObjectKey: key}
	for i, o := range outcomes {
		r := &uploadv1.UploadPartitionResult{Topic: f.Partitions[i].Topic, Partition: f.Partitions[i].Partition, CommittedEndOffset: o.CommittedEnd}
		switch {
		case o.Err == nil:
			r.Status = uploadv1.CommitStatus_COMMIT_STATUS_COMMITTED
		case errors.Is(o.Err, meta.ErrCommitFenced):
			r.Status, r.Message = uploadv1.CommitStatus_COMMIT_STATUS_FENCED, o.Err.Error()
		case errors.Is(o.Err, meta.ErrCommitOutOfOrder):
			r.Status, r.Message = uploadv1.CommitStatus_COMMIT_STATUS_OUT_OF_ORDER, o.Err.Error()
		default:
			r.Status, r.Message = uploadv1.CommitStatus_COMMIT_STATUS_FAILED, o.Err.Error()
		}
		resp.Partitions = append(resp.Partitions, r)
	}
	return resp, nil
}
