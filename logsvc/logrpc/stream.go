package logrpc

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamline-dev/streamline/logsvc/partition"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/telemetry"
)

// ProduceStream implements LogService.ProduceStream. Requests are submitted
// to their partitions strictly in stream order (this goroutine does it, one
// request after the other), which is what keeps a Kafka client's pipelined
// produces in order; their durability is awaited concurrently and each is
// answered as soon as it is known.
func (s *Server) ProduceStream(stream logv1.LogService_ProduceStreamServer) error {
	var (
		sendMu  sync.Mutex
		sendErr error
		wg      sync.WaitGroup
	)
	defer wg.Wait()
	send := func(resp *logv1.ProduceStreamResponse) {
		sendMu.Lock()
		defer sendMu.Unlock()
		if sendErr == nil {
			sendErr = stream.Send(resp)
		}
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		req := msg.GetRequest()
		id := msg.GetId()
		ctx, span := s.messageSpan(stream.Context(), msg)
		results, pending := s.submit(ctx, req)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if span != nil {
				defer span.End()
			}
			if t := req.GetTimeoutMs(); t > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Millisecond)
				defer cancel()
			}
			for i, res := range partition.WaitAll(ctx, pending) {
				if pending[i] != nil {
					fill(results[i], res)
				}
			}
			send(&logv1.ProduceStreamResponse{Id: id, Response: &logv1.ProduceResponse{Partitions: results}})
		}()
	}
}

// messageSpan starts the server span of one stream message whose sender
// traced it (nil span otherwise): the long-lived stream itself has none.
func (s *Server) messageSpan(ctx context.Context, msg *logv1.ProduceStreamRequest) (context.Context, trace.Span) {
	if s.tracer == nil || len(msg.GetTraceContext()) == 0 {
		return ctx, nil
	}
	ctx = telemetry.ExtractMap(ctx, msg.GetTraceContext())
	return s.tracer.Start(ctx, produceStreamMethod, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("rpc.system.name", "grpc"), attribute.String("rpc.method", produceStreamMethod),
		attribute.Int64("streamline.stream_message_id", int64(msg.GetId())),
		attribute.Int("streamline.partitions", len(msg.GetRequest().GetPartitions()))))
}

const produceStreamMethod = "streamline.log.v1.LogService/ProduceStream"

// submit hands every partition's batch to its partition, in request order,
// and returns the result slots and what is still pending. ctx carries the
// request's trace span to storage; it does not bound the append.
func (s *Server) submit(ctx context.Context, req *logv1.ProduceRequest) ([]*logv1.ProducePartitionResult, []*partition.Pending) {
	results := make([]*logv1.ProducePartitionResult, len(req.GetPartitions()))
	pending := make([]*partition.Pending, len(req.GetPartitions()))
	badAcks := req.GetAcks() != -1 && req.GetAcks() != 0 && req.GetAcks() != 1
	for i, pp := range req.GetPartitions() {
		r := &logv1.ProducePartitionResult{Topic: pp.GetTopic(), Partition: pp.GetPartition(), BaseOffset: -1, LogAppendTimeMs: -1, LogStartOffset: -1}
		results[i] = r
		if badAcks {
			r.ErrorCode, r.ErrorMessage = int32(kerr.InvalidRequiredAcks.Code), "acks must be -1, 0 or 1"
			continue
		}
		p, kerrCode := s.parts.Lookup(pp.GetTopic(), pp.GetTopicId(), pp.GetPartition())
		if kerrCode != nil {
			r.ErrorCode, r.ErrorMessage = code(kerrCode), lookupMessage(kerrCode, pp.GetTopic(), pp.GetPartition())
			continue
		}
		pending[i] = p.SubmitAcks(ctx, pp.GetRecords(), req.GetAcks())
	}
	return results, pending
}

func fill(r *logv1.ProducePartitionResult, res partition.ProduceResult) {
	r.ErrorCode, r.ErrorMessage = code(res.Err), res.Message
	r.BaseOffset, r.LogStartOffset = res.BaseOffset, res.LogStartOffset
}
