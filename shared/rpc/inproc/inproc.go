// Package inproc serves gRPC services to callers in the same process
// without a socket: the all-in-one's gateway calls its log service, and
// the log service its uploader, through a Server here instead of gRPC over
// loopback. The callers keep their generated clients and the services
// their generated handlers, interceptors and tracing; what goes away is
// the serialization, HTTP/2 framing, flow control and the two system calls
// per message, which in a saturated all-in-one were a quarter of its CPU.
//
// The channel is grpchan's inprocgrpc (github.com/fullstorydev/grpchan,
// the authors of grpcurl): it runs each call's handler on its own
// goroutine with the caller's deadline and cancellation, carries metadata
// across, and copies each message (proto.Clone) instead of sharing it, so
// a handler may keep or modify its request (a log service patches
// offsets into the record batches it was sent) exactly as with a real
// connection. Server adds what a grpc.Server gives a process that stops
// its service: Stop refuses new calls and ends those in flight with
// Unavailable, which callers already treat as a node gone.
package inproc

import (
	"context"
	"sync"

	"github.com/fullstorydev/grpchan/inprocgrpc"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/streamline-dev/streamline/shared/telemetry"
)

// Server is an in-process gRPC server and the client connection to it.
// It implements grpc.ServiceRegistrar (register services before the first
// call) and grpc.ClientConnInterface (pass it to a generated NewXClient).
type Server struct {
	ch   inprocgrpc.Channel
	name string // for errors: "log service", "uploader"

	// moved are the unary methods whose responses the caller receives
	// without a copy (MoveResponses), movedSends the streaming methods
	// whose handlers receive the caller's messages without a copy
	// (MoveRequests). Set before the first call.
	moved      map[string]bool
	movedSends map[string]bool
	// shared are the unary methods whose handlers read the caller's
	// request itself (ShareRequests). Set before the first call.
	shared map[string]bool

	mu      sync.Mutex
	stopped bool
	calls   map[*call]struct{}
}

type call struct{ cancel context.CancelFunc }

// New returns a Server whose errors after Stop name the service (name),
// traced with tp as gRPC servers and clients are (nil or a no-op
// provider: not traced).
func New(name string, tp trace.TracerProvider) *Server {
	s := &Server{name: name, calls: map[*call]struct{}{}}
	s.ch.WithServerUnaryInterceptor(s.unary).WithServerStreamInterceptor(s.stream).WithCloner(onceCloner{})
	if h := telemetry.GRPCServerHandler(tp); h != nil {
		s.ch.WithServerStatsHandler(h)
	}
	if h := telemetry.GRPCClientHandler(tp); h != nil {
		s.ch.WithClientStatsHandler(h)
	}
	return s
}

// MoveResponses hands the responses of the unary methods (full names,
// e.g. "/streamline.log.v1.LogService/Fetch") to their callers without
// copying them: the caller's message gets the response's fields, byte
// slices and nested messages included. Only for handlers that build a new
// response for every call, keep no reference to it, and fill it with
// bytes nobody modifies afterwards; the caller must not modify them
// either. A log service's fetch responses are all three (records read
// into new buffers per call) and are the largest messages the gateway
// receives, which it only encodes. Call it before the first call.
func (s *Server) MoveResponses(methods ...string) { s.moved = with(s.moved, methods) }

// MoveRequests hands the messages a caller sends on the streams of the
// named streaming methods (full names) to the handler without copying
// them, as MoveResponses does for responses. Only for callers that build
// a new message for every send and never touch it, or anything it refers
// to, once sent: the handler may keep and modify it. The gateway's
// produce requests are such messages (built per Kafka request around the
// record batches of the request's own frame), and the log service patches
// offsets into those batches and may keep them (the diskless buffer):
// without the copy, every produced byte is copied once less in the
// all-in-one. Call it before the first call.
func (s *Server) MoveRequests(methods ...string) { s.movedSends = with(s.movedSends, methods) }

// ShareRequests hands the requests of the named unary methods (full
// names) to their handlers without copying them: the handler's message
// gets the caller's fields, byte slices and nested messages included, and
// both sides only read them. Only for handlers that neither modify nor
// keep their request, and callers that modify theirs neither during the
// call nor after it (they may send it again: retries, hedges). A log
// service's uploads are such requests (a flush's record batches, which the
// uploader only reads into the object it writes): up to a flush's size
// (1 MiB by default) copied once less per upload in the all-in-one. Call
// it before the first call.
func (s *Server) ShareRequests(methods ...string) { s.shared = with(s.shared, methods) }

// with adds methods to the set (a nil set is empty) and returns it.
func with(set map[string]bool, methods []string) map[string]bool {
	if set == nil {
		set = map[string]bool{}
	}
	for _, m := range methods {
		set[m] = true
	}
	return set
}

// RegisterService implements grpc.ServiceRegistrar.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.ch.RegisterService(desc, impl)
}

// Invoke implements grpc.ClientConnInterface.
func (s *Server) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if s.isStopped() {
		return s.unavailable()
	}
	if m, ok := args.(proto.Message); ok && s.shared[method] {
		// The cloner's Copy hands a private message's fields to the
		// handler's message instead of copying them (see onceCloner).
		args = private{m}
	}
	return contextError(ctx, s.ch.Invoke(ctx, method, args, reply, opts...))
}

// contextError is err, or the status of ctx's end when ctx has ended:
// inprocgrpc may report a call the caller canceled as io.EOF (its
// goroutines race the cancellation with the handler's answer), where gRPC
// says Canceled or DeadlineExceeded, which callers tell from failures.
func contextError(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	return err
}

// clientStream reports a stream its caller ended as gRPC does (see
// contextError), and marks its sent messages private on the streams of
// MoveRequests methods.
type clientStream struct {
	grpc.ClientStream
	ctx  context.Context
	move bool
}

func (c *clientStream) SendMsg(m any) error {
	if pm, ok := m.(proto.Message); ok && c.move {
		m = private{pm}
	}
	return contextError(c.ctx, c.ClientStream.SendMsg(m))
}
func (c *clientStream) RecvMsg(m any) error { return contextError(c.ctx, c.ClientStream.RecvMsg(m)) }

// NewStream implements grpc.ClientConnInterface. After Stop it fails at
// once, as a call to a stopped server's address does; a stream refused by
// the handler instead could fail its first Send with io.EOF.
func (s *Server) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if s.isStopped() {
		return nil, s.unavailable()
	}
	cs, err := s.ch.NewStream(ctx, desc, method, opts...)
	if err != nil {
		return nil, contextError(ctx, err)
	}
	return &clientStream{ClientStream: cs, ctx: ctx, move: s.movedSends[method]}, nil
}

func (s *Server) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// Stop refuses new calls and cancels those in flight; both fail with
// codes.Unavailable. It returns without waiting for the handlers.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for c := range s.calls {
		c.cancel()
	}
	clear(s.calls)
}

// begin registers a call; false once stopped.
func (s *Server) begin(ctx context.Context) (context.Context, *call, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return ctx, nil, false
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &call{cancel: cancel}
	s.calls[c] = struct{}{}
	return ctx, c, true
}

// end unregisters c and turns the error of a call cut by Stop into
// Unavailable.
func (s *Server) end(c *call, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.cancel()
	delete(s.calls, c)
	if err != nil && s.stopped {
		return s.unavailable()
	}
	return err
}

func (s *Server) unavailable() error {
	return status.Errorf(codes.Unavailable, "%s stopped", s.name)
}

func (s *Server) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, c, ok := s.begin(ctx)
	if !ok {
		return nil, s.unavailable()
	}
	resp, err := handler(ctx, req)
	if m, isMsg := resp.(proto.Message); isMsg && err == nil && s.moved[info.FullMethod] {
		// The cloner's Copy moves a private message's fields instead of
		// copying them (see onceCloner).
		resp = private{m}
	}
	return resp, s.end(c, err)
}

func (s *Server) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, c, ok := s.begin(ss.Context())
	if !ok {
		return s.unavailable()
	}
	return s.end(c, handler(srv, &serverStream{ServerStream: ss, ctx: ctx}))
}

// onceCloner copies each message once at most. inprocgrpc copies a stream
// message twice, with Clone when it is sent and with Copy into the
// receiver's message; the record batches of every produce go through a
// stream. Clone marks its copy as private, and Copy moves a private copy's
// fields into the receiver's message instead of copying them again:
// nothing else holds that copy. A message that is private already (sent
// on a MoveRequests stream) is not copied at all. Unary requests and
// responses are copied once, by Copy, as before, except the requests of
// methods named to ShareRequests, which Invoke marks private, and the
// responses of methods named to MoveResponses, which the unary
// interceptor marks private.
type onceCloner struct{}

// private is a message whose fields the receiving side may take as they
// are, without a copy: a Clone not yet received (only the channel holds
// it), a MoveRequests or MoveResponses message (its sender never touches
// it again), or a ShareRequests request (both sides only read it). It is
// a proto.Message itself, so stats handlers can size it.
type private struct{ proto.Message }

func (onceCloner) Clone(in any) (any, error) {
	if p, ok := in.(private); ok {
		return p, nil
	}
	m, ok := in.(proto.Message)
	if !ok {
		return inprocgrpc.ProtoCloner{}.Clone(in)
	}
	return private{proto.Clone(m)}, nil
}

func (onceCloner) Copy(out, in any) error {
	p, isPrivate := in.(private)
	m, isMsg := in.(proto.Message)
	o, outMsg := out.(proto.Message)
	switch {
	case isPrivate:
		m = p.Message
	case !isMsg || !outMsg:
		return inprocgrpc.ProtoCloner{}.Copy(out, in)
	}
	if !outMsg {
		return status.Errorf(codes.Internal, "inproc: cannot receive %T into %T", m, out)
	}
	dst := o.ProtoReflect()
	if dst.Descriptor().FullName() != m.ProtoReflect().Descriptor().FullName() {
		return status.Errorf(codes.Internal, "inproc: cannot receive %T into %T", m, out)
	}
	proto.Reset(o)
	if !isPrivate {
		// A message the caller keeps: a deep copy, with protobuf-go's
		// Merge (grpchan's own Copy goes through the older reflection
		// of jhump/protoreflect: 1.6% of the CPU samples at 10k records/s).
		proto.Merge(o, m)
		return nil
	}
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	return nil
}

// serverStream gives a handler the context Stop cancels.
type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }
