package routing

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/telemetry"
)

// ErrStreamBroken is wrapped by the error of every produce in flight on a
// stream that failed (node restarted, connection lost). The produce may or
// may not have been appended; the client retries, and idempotent producers
// are deduplicated by the node.
var ErrStreamBroken = errors.New("routing: produce stream to log service broke")

// ProduceStream multiplexes produce requests to one log-service node over a
// single gRPC LogService.ProduceStream. Submit sends in call order, and the
// node appends in stream order, so a caller that submits a connection's
// produces one after another keeps them in order while their durability is
// awaited concurrently. A broken stream fails its in-flight requests and is
// reopened by the next Submit.
type ProduceStream struct {
	addr   string
	client logv1.LogServiceClient

	sendMu sync.Mutex // serializes Send and (re)opening
	cur    atomic.Pointer[streamConn]
}

type streamConn struct {
	s      logv1.LogService_ProduceStreamClient
	cancel context.CancelFunc

	mu      sync.Mutex
	nextID  uint64
	waiters map[uint64]chan produceResult
	err     error // set once the stream failed
}

type produceResult struct {
	resp *logv1.ProduceResponse
	err  error
}

// Submit sends req on the stream and returns a function that waits for its
// response. If ctx carries a recording span (the Kafka request's), the
// message gets a client span of its own whose trace context travels in the
// message, so the node's spans join the request's trace.
//
// req, and the record batches it refers to, belong to the stream once
// sent: the caller must neither modify nor read them again. A log service
// in the same process receives them without a copy
// (inproc.Server.MoveRequests), patches offsets into the batches and may
// keep them.
func (p *ProduceStream) Submit(ctx context.Context, req *logv1.ProduceRequest) (wait func(context.Context) (*logv1.ProduceResponse, error), err error) {
	var span trace.Span
	if parent := trace.SpanFromContext(ctx); parent.IsRecording() {
		ctx, span = parent.TracerProvider().Tracer(tracerName).Start(ctx, produceStreamMethod,
			trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
				attribute.String("rpc.system.name", "grpc"), attribute.String("rpc.method", produceStreamMethod),
				attribute.String("server.address", p.addr), attribute.Int("streamline.partitions", len(req.GetPartitions()))))
		defer func() {
			if err != nil {
				endSpan(span, err)
			}
		}()
	}
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	sc := p.cur.Load()
	if sc == nil || sc.failed() {
		if sc, err = p.open(); err != nil {
			return nil, err
		}
		p.cur.Store(sc)
	}
	sc.mu.Lock()
	if sc.err != nil {
		sc.mu.Unlock()
		return nil, sc.err
	}
	sc.nextID++
	id := sc.nextID
	ch := make(chan produceResult, 1)
	sc.waiters[id] = ch
	sc.mu.Unlock()
	msg := &logv1.ProduceStreamRequest{Id: id, Request: req}
	if span != nil {
		msg.TraceContext = telemetry.InjectMap(ctx)
	}
	if err := sc.s.Send(msg); err != nil {
		// The real cause arrives through Recv; fail everything in flight.
		sc.fail(fmt.Errorf("%w: %s: send: %v", ErrStreamBroken, p.addr, err))
		return nil, sc.errOr(err)
	}
	return func(ctx context.Context) (*logv1.ProduceResponse, error) {
		select {
		case r := <-ch:
			endSpan(span, r.err)
			return r.resp, r.err
		case <-ctx.Done():
			sc.mu.Lock()
			delete(sc.waiters, id)
			sc.mu.Unlock()
			endSpan(span, ctx.Err())
			return nil, ctx.Err()
		}
	}, nil
}

const (
	tracerName          = "github.com/streamline-dev/streamline/gateway/routing"
	produceStreamMethod = "streamline.log.v1.LogService/ProduceStream"
)

// endSpan ends a produce message's span (nil: not traced).
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

func (p *ProduceStream) open() (*streamConn, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := p.client.ProduceStream(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%w: %s: %v", ErrStreamBroken, p.addr, err)
	}
	sc := &streamConn{s: s, cancel: cancel, waiters: map[uint64]chan produceResult{}}
	go sc.recvLoop(p.addr)
	return sc, nil
}

func (sc *streamConn) recvLoop(addr string) {
	for {
		msg, err := sc.s.Recv()
		if err != nil {
			sc.fail(fmt.Errorf("%w: %s: %v", ErrStreamBroken, addr, err))
			return
		}
		sc.mu.Lock()
		ch, ok := sc.waiters[msg.GetId()]
		delete(sc.waiters, msg.GetId())
		sc.mu.Unlock()
		if ok {
			ch <- produceResult{resp: msg.GetResponse()}
		}
	}
}

func (sc *streamConn) fail(err error) {
	sc.mu.Lock()
	if sc.err == nil {
		sc.err = err
	}
	waiters := sc.waiters
	sc.waiters = map[uint64]chan produceResult{}
	sc.mu.Unlock()
	for _, ch := range waiters {
		ch <- produceResult{err: err}
	}
	sc.cancel()
}

func (sc *streamConn) failed() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.err != nil
}

func (sc *streamConn) errOr(err error) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.err != nil {
		return sc.err
	}
	return err
}

func (sc *streamConn) close() {
	sc.fail(fmt.Errorf("%w: closed", ErrStreamBroken))
}

// close fails the current stream, unblocking a Send stuck on flow control.
func (p *ProduceStream) close() {
	if sc := p.cur.Load(); sc != nil {
		sc.close()
	}
}
