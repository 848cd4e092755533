// Package uploadrpc is the gRPC adapter of the UploadService: protobuf in,
// upload.Write / meta.Store.Commit, protobuf out. Per-partition commit
// outcomes are data; a gRPC status means the call as a whole failed.
package uploadrpc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	uploadv1 "github.com/streamline-dev/streamline/proto/gen/streamline/upload/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/uploader/objectfmt"
	"github.com/streamline-dev/streamline/uploader/upload"
)

// Server implements uploadv1.UploadServiceServer.
type Server struct {
	uploadv1.UnimplementedUploadServiceServer
	objects upload.ObjectWriter
	commits upload.Committer
	// maxCommitAge, if positive, refuses commits of objects older than it
	// by their key time (see RefuseCommitsOlderThan).
	maxCommitAge time.Duration
	now          func() time.Time
}

// NewServer returns an UploadService writing to objects and committing
// through commits. With objects nil, Upload fails with FailedPrecondition:
// the uploader has no object store configured.
func NewServer(objects upload.ObjectWriter, commits upload.Committer) *Server {
	return &Server{objects: objects, commits: commits, now: time.Now}
}

// RefuseCommitsOlderThan makes Commit refuse (COMMIT_STATUS_FAILED, before
// touching etcd) a partition whose object is older than maxAge by the time
// in its key (objectfmt.KeyTime): the garbage collector (package gc) may
// delete an unreferenced object once it is older than its grace period, so
// coordinates of an object that old must never become referenced. The
// uploader sets maxAge to gc.MaxCommitAge(grace). Objects whose keys carry
// no time are not checked (the collector never deletes them). Call it
// before serving.
func (s *Server) RefuseCommitsOlderThan(maxAge time.Duration) { s.maxCommitAge = maxAge }

// Upload implements UploadService.Upload.
func (s *Server) Upload(ctx context.Context, req *uploadv1.UploadRequest) (*uploadv1.UploadResponse, error) {
	if s.objects == nil {
		return nil, status.Error(codes.FailedPrecondition, "this uploader has no object store configured (--object-store)")
	}
	if req.GetNodeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "node_id is required")
	}
	f := upload.Flush{NodeID: req.GetNodeId(), Seq: req.GetFlushSeq()}
	for _, p := range req.GetPartitions() {
		if len(p.GetTopicId()) != 16 {
			return nil, status.Errorf(codes.InvalidArgument, "partition %s-%d: topic_id must be 16 bytes", p.GetTopic(), p.GetPartition())
		}
		f.Partitions = append(f.Partitions, upload.PartitionBatches{
			Topic: p.GetTopic(), TopicID: meta.TopicID(p.GetTopicId()), Partition: p.GetPartition(),
			LeaderEpoch: p.GetLeaderEpoch(), Batches: p.GetBatches(),
		})
	}
	key, coords, err := upload.Write(ctx, s.objects, f)
	switch {
	case errors.Is(err, upload.ErrInvalidFlush):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case err != nil:
		return nil, status.Errorf(codes.Unavailable, "upload failed: %v", err)
	}
	resp := &uploadv1.UploadResponse{ObjectKey: key}
	for _, c := range coords {
		resp.Partitions = append(resp.Partitions, CoordsToProto(c))
	}
	return resp, nil
}

// Commit implements UploadService.Commit.
func (s *Server) Commit(ctx context.Context, req *uploadv1.CommitRequest) (*uploadv1.CommitResponse, error) {
	commits := make([]meta.PartitionCommit, len(req.GetPartitions()))
	for i, p := range req.GetPartitions() {
		if len(p.GetTopicId()) != 16 || p.GetCoords() == nil {
			return nil, status.Errorf(codes.InvalidArgument, "partition %s-%d: topic_id (16 bytes) and coords are required", p.GetTopic(), p.GetPartition())
		}
		commits[i] = meta.PartitionCommit{
			Topic: p.GetTopic(), TopicID: meta.TopicID(p.GetTopicId()), Partition: p.GetPartition(),
			LeaderRevision: p.GetLeaderRevision(), Ranges: []meta.Coords{CoordsFromProto(p.GetCoords())},
		}
	}
	errs := s.commit(ctx, commits)
	resp := &uploadv1.CommitResponse{}
	for i, c := range commits {
		r := &uploadv1.PartitionCommitResult{Topic: c.Topic, Partition: c.Partition, CommittedEndOffset: -1}
		switch err := errs[i]; {
		case err == nil:
			r.Status, r.CommittedEndOffset = uploadv1.CommitStatus_COMMIT_STATUS_COMMITTED, c.Ranges[len(c.Ranges)-1].LastOffset+1
		case errors.Is(err, meta.ErrCommitFenced):
			r.Status, r.Message = uploadv1.CommitStatus_COMMIT_STATUS_FENCED, err.Error()
		case errors.Is(err, meta.ErrCommitOutOfOrder):
			r.Status, r.Message = uploadv1.CommitStatus_COMMIT_STATUS_OUT_OF_ORDER, err.Error()
		default:
			r.Status, r.Message = uploadv1.CommitStatus_COMMIT_STATUS_FAILED, err.Error()
		}
		resp.Partitions = append(resp.Partitions, r)
	}
	return resp, nil
}

// Trim implements UploadService.Trim.
func (s *Server) Trim(ctx context.Context, req *uploadv1.TrimRequest) (*uploadv1.TrimResponse, error) {
	if len(req.GetTopicId()) != 16 || req.GetStartOffset() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "partition %s-%d: topic_id (16 bytes) and a start_offset >= 0 are required", req.GetTopic(), req.GetPartition())
	}
	start, err := s.commits.AdvanceLogStart(ctx, req.GetTopic(), meta.TopicID(req.GetTopicId()), req.GetPartition(), req.GetLeaderRevision(), req.GetStartOffset())
	resp := &uploadv1.TrimResponse{LogStartOffset: start}
	switch {
	case err == nil:
		resp.Status = uploadv1.CommitStatus_COMMIT_STATUS_COMMITTED
	case errors.Is(err, meta.ErrCommitFenced):
		resp.Status, resp.Message = uploadv1.CommitStatus_COMMIT_STATUS_FENCED, err.Error()
	default:
		resp.Status, resp.Message = uploadv1.CommitStatus_COMMIT_STATUS_FAILED, err.Error()
	}
	return resp, nil
}

// commit sends to etcd the commits whose objects are young enough and
// refuses the others; errs[i] is commits[i]'s outcome.
func (s *Server) commit(ctx context.Context, commits []meta.PartitionCommit) []error {
	if s.maxCommitAge <= 0 {
		return s.commits.Commit(ctx, commits)
	}
	errs := make([]error, len(commits))
	var send []meta.PartitionCommit
	var idx []int
	now := s.now()
	for i, c := range commits {
		if err := s.checkAge(c, now); err != nil {
			errs[i] = err
			continue
		}
		send = append(send, c)
		idx = append(idx, i)
	}
	if len(send) > 0 {
		for j, err := range s.commits.Commit(ctx, send) {
			errs[idx[j]] = err
		}
	}
	return errs
}

func (s *Server) checkAge(c meta.PartitionCommit, now time.Time) error {
	for _, r := range c.Ranges {
		t, ok := objectfmt.KeyTime(r.Object)
		if ok && now.Sub(t) > s.maxCommitAge {
			return fmt.Errorf("%s-%d: object %s was written %v ago, more than the %v a commit may take: "+
				"it may be garbage-collected, so it is not committed", c.Topic, c.Partition, r.Object, now.Sub(t).Round(time.Millisecond), s.maxCommitAge)
		}
	}
	return nil
}

// CoordsToProto converts coordinates for the wire.
func CoordsToProto(c meta.Coords) *uploadv1.Coords {
	out := &uploadv1.Coords{ObjectKey: c.Object, Position: c.Position, Length: c.Length, BaseOffset: c.BaseOffset,
		LastOffset: c.LastOffset, MaxTimestamp: c.MaxTimestamp, LeaderEpoch: c.LeaderEpoch}
	for _, p := range c.Producers {
		out.Producers = append(out.Producers, &uploadv1.ProducerBatch{ProducerId: p.ProducerID, ProducerEpoch: int32(p.Epoch),
			FirstSequence: p.FirstSeq, LastSequence: p.LastSeq, BaseOffset: p.BaseOffset, LastOffset: p.LastOffset})
	}
	return out
}

// CoordsFromProto converts coordinates from the wire.
func CoordsFromProto(c *uploadv1.Coords) meta.Coords {
	out := meta.Coords{Object: c.GetObjectKey(), Position: c.GetPosition(), Length: c.GetLength(), BaseOffset: c.GetBaseOffset(),
		LastOffset: c.GetLastOffset(), MaxTimestamp: c.GetMaxTimestamp(), LeaderEpoch: c.GetLeaderEpoch()}
	for _, p := range c.GetProducers() {
		out.Producers = append(out.Producers, meta.ProducerBatch{ProducerID: p.GetProducerId(), Epoch: int16(p.GetProducerEpoch()),
			FirstSeq: p.GetFirstSequence(), LastSeq: p.GetLastSequence(), BaseOffset: p.GetBaseOffset(), LastOffset: p.GetLastOffset()})
	}
	return out
}
