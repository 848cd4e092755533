// Package logrpc is the gRPC adapter of the LogService: it turns protobuf
// requests into calls on led partitions and their results back into
// protobuf. Kafka errors are per-partition data in the responses; a gRPC
// status is returned only for a malformed request as a whole.
package logrpc

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/streamline-dev/streamline/logsvc/partition"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/telemetry"
)

// Partitions finds the partitions this node leads. It answers a Kafka error
// when it does not lead the partition (NOT_LEADER_OR_FOLLOWER) or the topic
// does not exist (UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_ID).
type Partitions interface {
	Lookup(topic string, topicID []byte, partition int32) (*partition.Partition, *kerr.Error)
}

// Server implements logv1.LogServiceServer.
type Server struct {
	logv1.UnimplementedLogServiceServer
	parts  Partitions
	tracer trace.Tracer // nil: not tracing
	// replicated counts bytes sent to followers (CountReplication).
	replicated func(storageMode string, bytes int)
}

// NewServer returns a LogService over parts.
func NewServer(parts Partitions) *Server { return &Server{parts: parts} }

// TraceWith makes the server give each ProduceStream message that carries
// a trace context a server span of its own (tp nil or no-op: none). Unary
// calls are traced by the gRPC server's stats handler instead. Call it
// before serving.
func (s *Server) TraceWith(tp trace.TracerProvider) {
	s.tracer = telemetry.Tracer(tp, "github.com/streamline-dev/streamline/logsvc/logrpc")
}

func code(e *kerr.Error) int32 {
	if e == nil {
		return 0
	}
	return int32(e.Code)
}

// Produce implements LogService.Produce for one request.
func (s *Server) Produce(ctx context.Context, req *logv1.ProduceRequest) (*logv1.ProduceResponse, error) {
	switch req.GetAcks() {
	case -1, 0, 1:
	default:
		return nil, status.Errorf(codes.InvalidArgument, "acks must be -1, 0 or 1, got %d", req.GetAcks())
	}
	if t := req.GetTimeoutMs(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Millisecond)
		defer cancel()
	}
	// Submit in request order, then wait for all: partitions of one
	// request share WAL group commits.
	results, pending := s.submit(ctx, req)
	for i, res := range partition.WaitAll(ctx, pending) {
		if pending[i] != nil {
			fill(results[i], res)
		}
	}
	return &logv1.ProduceResponse{Partitions: results}, nil
}

// checkEpoch applies KIP-320: a client ahead of us knows of a newer leader
// (UNKNOWN_LEADER_EPOCH, retry later); one behind us must refresh metadata
// (FENCED_LEADER_EPOCH). -1 means the client does not track epochs.
func checkEpoch(p *partition.Partition, clientEpoch int32) *kerr.Error {
	switch {
	case clientEpoch < 0 || clientEpoch == p.LeaderEpoch():
		return nil
	case clientEpoch > p.LeaderEpoch():
		return kerr.UnknownLeaderEpoch
	default:
		return kerr.FencedLeaderEpoch
	}
}

// Fetch implements LogService.Fetch with Kafka's long-poll: answer as soon
// as min_bytes are available, an error occurs, or max_wait_ms passes.
func (s *Server) Fetch(ctx context.Context, req *logv1.FetchRequest) (*logv1.FetchResponse, error) {
	if req.GetMaxWaitMs() < 0 || req.GetMaxBytes() < 0 {
		return nil, status.Error(codes.InvalidArgument, "max_wait_ms and max_bytes must not be negative")
	}
	if _, err := isolation(req.GetIsolationLevel()); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(time.Duration(req.GetMaxWaitMs()) * time.Millisecond)
	parts := make([]*partition.Partition, len(req.GetPartitions()))
	errs := make([]*kerr.Error, len(req.GetPartitions()))
	for i, fp := range req.GetPartitions() {
		parts[i], errs[i] = s.parts.Lookup(fp.GetTopic(), fp.GetTopicId(), fp.GetPartition())
		if errs[i] == nil {
			errs[i] = checkEpoch(parts[i], fp.GetCurrentLeaderEpoch())
		}
	}
	for {
		// Take the wake-up channels before reading, so an append between
		// the read and the wait is not missed.
		var wake []<-chan struct{}
		for i, p := range parts {
			if errs[i] == nil {
				wake = append(wake, p.Changed())
			}
		}
		resp, total, anyErr := s.readAll(req, parts, errs)
		remaining := time.Until(deadline)
		if total >= int(req.GetMinBytes()) || anyErr || remaining <= 0 || len(wake) == 0 {
			return resp, nil
		}
		if !waitAny(ctx, wake, remaining) {
			if ctx.Err() != nil {
				return nil, status.FromContextError(ctx.Err()).Err()
			}
		}
	}
}

// isolation maps a request's isolation_level (0 read_uncommitted, 1
// read_committed).
func isolation(level int32) (partition.Isolation, error) {
	switch level {
	case 0:
		return partition.ReadUncommitted, nil
	case 1:
		return partition.ReadCommitted, nil
	}
	return 0, status.Errorf(codes.InvalidArgument, "isolation_level must be 0 or 1, got %d", level)
}

func (s *Server) readAll(req *logv1.FetchRequest, parts []*partition.Partition, errs []*kerr.Error) (*logv1.FetchResponse, int, bool) {
	iso, _ := isolation(req.GetIsolationLevel()) // checked by Fetch
	budget := int(req.GetMaxBytes())
	if budget == 0 {
		budget = int(^uint32(0) >> 1)
	}
	total, anyErr, minOne := 0, false, true
	resp := &logv1.FetchResponse{Partitions: make([]*logv1.FetchPartitionResult, len(parts))}
	for i, fp := range req.GetPartitions() {
		r := &logv1.FetchPartitionResult{Topic: fp.GetTopic(), Partition: fp.GetPartition(), HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1, LeaderEpoch: -1}
		resp.Partitions[i] = r
		if errs[i] != nil {
			r.ErrorCode, anyErr = code(errs[i]), true
			continue
		}
		p := parts[i]
		limit := int(fp.GetPartitionMaxBytes())
		if rem := budget - total; rem < limit {
			limit = rem
		}
		if limit < 0 {
			limit = 0
		}
		rr := p.ReadIsolated(fp.GetFetchOffset(), limit, minOne, iso)
		r.ErrorCode, r.ErrorMessage = code(rr.Err), rr.Message
		r.HighWatermark, r.LastStableOffset, r.LogStartOffset = rr.HighWatermark, rr.LastStableOffset, rr.LogStartOffset
		r.LeaderEpoch = p.LeaderEpoch()
		r.Records = rr.Records
		for _, a := range rr.AbortedTransactions {
			r.AbortedTransactions = append(r.AbortedTransactions, &logv1.AbortedTransaction{ProducerId: a.ProducerID, FirstOffset: a.FirstOffset})
		}
		if rr.Err != nil {
			anyErr = true
		}
		if len(rr.Records) > 0 {
			total += len(rr.Records)
			minOne = false
		}
	}
	return resp, total, anyErr
}

// waitAny waits until one channel closes (true), or the timeout or ctx ends (false).
func waitAny(ctx context.Context, chans []<-chan struct{}, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	if len(chans) == 1 {
		select {
		case <-chans[0]:
			return true
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	cases := make([]reflect.SelectCase, 0, len(chans)+2)
	cases = append(cases,
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)})
	for _, c := range chans {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
	}
	i, _, _ := reflect.Select(cases)
	return i >= 2
}

// ListOffsets implements LogService.ListOffsets; read_committed
// (isolation_level 1) answers latest with the last stable offset.
func (s *Server) ListOffsets(ctx context.Context, req *logv1.ListOffsetsRequest) (*logv1.ListOffsetsResponse, error) {
	iso, err := isolation(req.GetIsolationLevel())
	if err != nil {
		return nil, err
	}
	resp := &logv1.ListOffsetsResponse{}
	for _, lp := range req.GetPartitions() {
		r := &logv1.ListOffsetsPartitionResult{Topic: lp.GetTopic(), Partition: lp.GetPartition(), Timestamp: -1, Offset: -1, LeaderEpoch: -1}
		resp.Partitions = append(resp.Partitions, r)
		p, kerrCode := s.parts.Lookup(lp.GetTopic(), lp.GetTopicId(), lp.GetPartition())
		if kerrCode == nil {
			kerrCode = checkEpoch(p, lp.GetCurrentLeaderEpoch())
		}
		if kerrCode != nil {
			r.ErrorCode, r.ErrorMessage = code(kerrCode), lookupMessage(kerrCode, lp.GetTopic(), lp.GetPartition())
			continue
		}
		off, ts, e, msg := p.ListOffsetIsolated(lp.GetTimestamp(), iso)
		r.Offset, r.Timestamp, r.ErrorCode, r.ErrorMessage, r.LeaderEpoch = off, ts, code(e), msg, p.LeaderEpoch()
	}
	return resp, nil
}

// topicIDMatches reports whether a request's topic id (empty = not given)
// names topic t.
func TopicIDMatches(id []byte, t meta.Topic) bool {
	if len(id) == 0 {
		return true
	}
	return len(id) == 16 && meta.TopicID(id) == t.ID
}

// lookupMessage explains a Partitions.Lookup refusal to the client.
func lookupMessage(e *kerr.Error, topic string, partition int32) string {
	switch e {
	case kerr.NotLeaderForPartition:
		return fmt.Sprintf("this log-service node does not lead %s-%d now (leadership moved, or the node is rejoining)", topic, partition)
	case kerr.UnknownTopicOrPartition:
		return fmt.Sprintf("unknown topic or partition %s-%d", topic, partition)
	case kerr.UnknownTopicID:
		return fmt.Sprintf("topic id does not match topic %s", topic)
	}
	return ""
}
