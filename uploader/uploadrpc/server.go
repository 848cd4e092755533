// Package uploadrpc is the gRPC adapter of the UploadService: protobuf in,
// upload.Write / segupload / meta.Store.Commit, protobuf out. Per-partition commit
// outcomes are data; a gRPC status means the call as a whole failed.
package uploadrpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	uploadv1 "github.com/streamline-dev/streamline/proto/gen/streamline/upload/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/uploader/objectfmt"
	"github.com/streamline-dev/streamline/uploader/segupload"
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
	failpointFn  func(step string)
	now          func() time.Time
	// spoolDir is where UploadSegment spools segments ("": os.TempDir()).
	spoolDir string
	// onSegment, if set, is told about every segment UploadSegment stored.
	onSegment func(meta.Coords)
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

// SpoolSegmentsIn makes UploadSegment spool segments in dir instead of
// os.TempDir() (see package segupload). Call it before serving.
func (s *Server) SpoolSegmentsIn(dir string) { s.spoolDir = dir }

// OnSegmentUploaded makes UploadSegment call fn with the coordinates of
// every segment it stored (metrics). Call it before serving.
func (s *Server) OnSegmentUploaded(fn func(meta.Coords)) { s.onSegment = fn }

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

// The steps of a segment upload a failpoint sees (crash tests).
const (
	FailSegmentBeforePut = "segment-before-put"
	FailSegmentAfterPut  = "segment-after-put"
)

// Failpoint sets a function called at each step of a segment upload with
// its name (crash tests kill the process there). Call it before serving.
func (s *Server) Failpoint(f func(step string)) { s.failpointFn = f }

func (s *Server) failpoint(step string) {
	if s.failpointFn != nil {
		s.failpointFn(step)
	}
}

// UploadSegment implements UploadService.UploadSegment: the stream's
// batches are validated and spooled as they arrive, then PUT as one
// segment object (package segupload). Bad input is InvalidArgument and
// stores nothing; a failed PUT is Unavailable (an object a failed PUT
// left behind is an orphan the collector deletes).
func (s *Server) UploadSegment(stream uploadv1.UploadService_UploadSegmentServer) error {
	if s.objects == nil {
		return status.Error(codes.FailedPrecondition, "this uploader has no object store configured (--object-store)")
	}
	bucket, ok := s.objects.(segupload.Bucket)
	if !ok {
		return status.Error(codes.FailedPrecondition, "this uploader's object store cannot stream a PUT (no PutReader)")
	}
	ctx := stream.Context()
	first, err := stream.Recv()
	switch {
	case err == io.EOF:
		return status.Error(codes.InvalidArgument, "empty stream: the first message must name the partition and the segment must hold record batches")
	case err != nil:
		return err
	case len(first.GetTopicId()) != 16:
		return status.Errorf(codes.InvalidArgument, "partition %s-%d: the first message needs node_id, topic, topic_id (16 bytes) and partition; topic_id has %d bytes",
			first.GetTopic(), first.GetPartition(), len(first.GetTopicId()))
	}
	p := segupload.Partition{NodeID: first.GetNodeId(), Topic: first.GetTopic(), TopicID: meta.TopicID(first.GetTopicId()), Partition: first.GetPartition()}
	up, err := segupload.New(s.spoolDir, p)
	if err != nil {
		return segmentStatus(err)
	}
	defer up.Close()
	for msg := first; ; {
		if err := samePartition(p, msg); err != nil {
			return err
		}
		if err := up.Add(msg.GetBatches()); err != nil {
			return segmentStatus(err)
		}
		if msg, err = stream.Recv(); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
	}
	s.failpoint(FailSegmentBeforePut)
	key, coords, err := up.Put(ctx, bucket)
	if err == nil {
		s.failpoint(FailSegmentAfterPut)
	}
	if err != nil {
		return segmentStatus(err)
	}
	if s.onSegment != nil {
		s.onSegment(coords)
	}
	return stream.SendAndClose(&uploadv1.UploadSegmentResponse{ObjectKey: key, Coords: CoordsToProto(coords)})
}

// samePartition refuses a later message of a segment stream that names
// another partition (the fields may be left empty).
func samePartition(p segupload.Partition, msg *uploadv1.UploadSegmentRequest) error {
	if (msg.GetNodeId() == "" || msg.GetNodeId() == p.NodeID) && (msg.GetTopic() == "" || msg.GetTopic() == p.Topic) &&
		(len(msg.GetTopicId()) == 0 || bytes.Equal(msg.GetTopicId(), p.TopicID[:])) && (msg.GetPartition() == 0 || msg.GetPartition() == p.Partition) {
		return nil
	}
	return status.Errorf(codes.InvalidArgument, "segment of %s-%d from node %s: a later message names topic %q, partition %d, node %q; leave the fields empty or repeat the first message's",
		p.Topic, p.Partition, p.NodeID, msg.GetTopic(), msg.GetPartition(), msg.GetNodeId())
}

// segmentStatus maps a segupload error to a gRPC status.
func segmentStatus(err error) error {
	switch {
	case errors.Is(err, segupload.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	default:
		return status.Errorf(codes.Unavailable, "segment upload failed: %v", err)
	}
}

// Commit implements UploadService.Commit.
func (s *Server) Commit(ctx context.Context, req *uploadv1.CommitRequest) (*uploadv1.CommitResponse, error) {
	commits := make([]meta.PartitionCommit, len(req.GetPartitions()))
	for i, p := range req.GetPartitions() {
		if len(p.GetTopicId()) != 16 || p.GetCoords() == nil {
			return nil, status.Errorf(codes.InvalidArgument, "partition %s-%d: topic_id (16 bytes) and coords are required", p.GetTopic(), p.GetPartition())
		}
		if p.ExpectedEnd != nil && p.GetExpectedEnd() < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "partition %s-%d: expected_end %d is negative", p.GetTopic(), p.GetPartition(), p.GetExpectedEnd())
		}
		commits[i] = meta.PartitionCommit{
			Topic: p.GetTopic(), TopicID: meta.TopicID(p.GetTopicId()), Partition: p.GetPartition(),
			LeaderRevision: p.GetLeaderRevision(), Ranges: []meta.Coords{CoordsFromProto(p.GetCoords())},
		}
		if p.ExpectedEnd != nil {
			end := p.GetExpectedEnd()
			commits[i].ExpectedEnd = &end
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

// CoordsToProto converts coordinates for the wire, segment index and
// leader epochs included.
func CoordsToProto(c meta.Coords) *uploadv1.Coords {
	out := &uploadv1.Coords{ObjectKey: c.Object, Position: c.Position, Length: c.Length, BaseOffset: c.BaseOffset,
		LastOffset: c.LastOffset, MaxTimestamp: c.MaxTimestamp, LeaderEpoch: c.LeaderEpoch}
	if c.Segment != nil {
		out.SegmentIndexPos, out.SegmentIndexLen = c.Segment.IndexPos, c.Segment.IndexLen
	}
	for _, e := range c.Epochs {
		out.Epochs = append(out.Epochs, &uploadv1.EpochStart{Epoch: e.Epoch, StartOffset: e.Start})
	}
	for _, p := range c.Producers {
		out.Producers = append(out.Producers, &uploadv1.ProducerBatch{ProducerId: p.ProducerID, ProducerEpoch: int32(p.Epoch),
			FirstSequence: p.FirstSeq, LastSequence: p.LastSeq, BaseOffset: p.BaseOffset, LastOffset: p.LastOffset})
	}
	for _, t := range c.Txns {
		out.Txns = append(out.Txns, &uploadv1.TxnEvent{ProducerId: t.ProducerID, ProducerEpoch: int32(t.Epoch), Offset: t.Offset, Kind: string(t.Kind),
			CoordinatorEpoch: t.CoordinatorEpoch})
	}
	return out
}

// CoordsFromProto converts coordinates from the wire; Segment is nil when
// segment_index_len is 0.
func CoordsFromProto(c *uploadv1.Coords) meta.Coords {
	out := meta.Coords{Object: c.GetObjectKey(), Position: c.GetPosition(), Length: c.GetLength(), BaseOffset: c.GetBaseOffset(),
		LastOffset: c.GetLastOffset(), MaxTimestamp: c.GetMaxTimestamp(), LeaderEpoch: c.GetLeaderEpoch()}
	if c.GetSegmentIndexLen() != 0 {
		out.Segment = &meta.SegmentRef{IndexPos: c.GetSegmentIndexPos(), IndexLen: c.GetSegmentIndexLen()}
	}
	for _, e := range c.GetEpochs() {
		out.Epochs = append(out.Epochs, meta.EpochStart{Epoch: e.GetEpoch(), Start: e.GetStartOffset()})
	}
	for _, p := range c.GetProducers() {
		out.Producers = append(out.Producers, meta.ProducerBatch{ProducerID: p.GetProducerId(), Epoch: int16(p.GetProducerEpoch()),
			FirstSeq: p.GetFirstSequence(), LastSeq: p.GetLastSequence(), BaseOffset: p.GetBaseOffset(), LastOffset: p.GetLastOffset()})
	}
	for _, t := range c.GetTxns() {
		out.Txns = append(out.Txns, meta.TxnEvent{ProducerID: t.GetProducerId(), Epoch: int16(t.GetProducerEpoch()), Offset: t.GetOffset(), Kind: meta.TxnKind(t.GetKind()),
			CoordinatorEpoch: t.GetCoordinatorEpoch()})
	}
	return out
}
