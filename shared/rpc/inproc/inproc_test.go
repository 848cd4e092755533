package inproc

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// metadataHealth answers Check with the status named by the caller's
// "want" metadata, to show metadata crosses the channel.
type metadataHealth struct {
	*health.Server
}

func (h metadataHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("want"); len(v) == 1 && v[0] == "serving" {
		// The handler may modify its request: the caller's is a copy.
		req.Service = "changed by the handler"
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	}
	return h.Server.Check(ctx, req)
}

func TestServerCallsAndStop(t *testing.T) {
	s := New("test service", nil)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, metadataHealth{hs})
	var _ grpc.ClientConnInterface = s
	cl := healthpb.NewHealthClient(s)
	ctx := t.Context()

	req := &healthpb.HealthCheckRequest{Service: "x"}
	resp, err := cl.Check(metadata.AppendToOutgoingContext(ctx, "want", "serving"), req)
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check: %v, %v; want SERVING through the metadata", resp, err)
	}
	if req.Service != "x" {
		t.Fatalf("the handler changed the caller's request: %q", req.Service)
	}
	if _, err := cl.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"}); status.Code(err) != codes.NotFound {
		t.Fatalf("Check of an unknown service: %v; want the handler's NotFound", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := cl.Check(canceled, req); status.Code(err) != codes.Canceled {
		t.Fatalf("Check with a canceled context: %v; want Canceled", err)
	}

	// A stream in flight when the server stops ends with Unavailable, and
	// so does every later call.
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	w, err := cl.Watch(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch: %v, %v", m, err)
	}
	s.Stop()
	done := make(chan error, 1)
	go func() {
		_, err := w.Recv()
		done <- err
	}()
	select {
	case err := <-done:
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("Watch after Stop: %v; want Unavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stream in flight was not ended by Stop")
	}
	if _, err := cl.Check(ctx, req); status.Code(err) != codes.Unavailable {
		t.Fatalf("Check after Stop: %v; want Unavailable", err)
	}
	if _, err := cl.Watch(ctx, req); status.Code(err) != codes.Unavailable {
		t.Fatalf("Watch after Stop: %v; want Unavailable", err)
	}
}

// echo answers each FullDuplexCall request with its payload and the sizes
// it asked for, as received.
type echo struct {
	testgrpc.UnimplementedTestServiceServer
}

func (echo) FullDuplexCall(stream testgrpc.TestService_FullDuplexCallServer) error {
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil
		}
		var sizes []int32
		for _, p := range req.ResponseParameters {
			sizes = append(sizes, p.Size)
		}
		body := req.Payload.GetBody()
		// The handler may change what it received (as the log service
		// patches offsets into record batches) without the sender seeing it.
		resp := &testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: bytes.Clone(body)}}
		for i := range body {
			body[i] = 'h'
		}
		for _, n := range sizes {
			resp.Payload.Body = append(resp.Payload.Body, byte(n))
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// sendEcho sends message i to echo, calls afterSend (which may change the
// sent request), checks echo's answer and returns the sent body.
func sendEcho(t *testing.T, stream testgrpc.TestService_FullDuplexCallClient, i int, afterSend func(*testgrpc.StreamingOutputCallRequest)) []byte {
	t.Helper()
	body := []byte(fmt.Sprintf("message %d", i))
	req := &testgrpc.StreamingOutputCallRequest{
		Payload:            &testgrpc.Payload{Body: body},
		ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}, {Size: int32(i)}},
	}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	afterSend(req)
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte(fmt.Sprintf("message %d", i)), 1, byte(i))
	if !bytes.Equal(resp.Payload.GetBody(), want) {
		t.Fatalf("message %d: the handler saw %q, want %q", i, resp.Payload.GetBody(), want)
	}
	return body
}

// Stream messages cross whole (bytes, nested and repeated fields), and each
// side's changes after a Send or a Recv stay on its side: a stream message
// is copied once, not shared.
func TestStreamMessagesAreCopied(t *testing.T) {
	s := New("test service", nil)
	testgrpc.RegisterTestServiceServer(s, echo{})
	stream, err := testgrpc.NewTestServiceClient(s).FullDuplexCall(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		body := sendEcho(t, stream, i, func(req *testgrpc.StreamingOutputCallRequest) {
			for j := range req.Payload.Body { // the sender reuses its buffer at once
				req.Payload.Body[j] = 's'
			}
			req.ResponseParameters[1].Size = 99
		})
		if bytes.ContainsRune(body, 'h') {
			t.Fatalf("message %d: the handler's change reached the sender's buffer: %q", i, body)
		}
	}
	stream.CloseSend()
}

// unaryBody answers UnaryCall with a payload it keeps, so a test can tell
// whether the caller got that payload's bytes or a copy.
type unaryBody struct {
	testgrpc.UnimplementedTestServiceServer
	body []byte
}

func (u *unaryBody) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: u.body}, Username: "u"}, nil
}

// The responses of methods named to MoveResponses reach the caller whole
// and without a copy; other methods' responses are still copied.
func TestMoveResponses(t *testing.T) {
	for _, moved := range []bool{false, true} {
		h := &unaryBody{body: []byte("fetched records")}
		s := New("test service", nil)
		if moved {
			s.MoveResponses(testgrpc.TestService_UnaryCall_FullMethodName)
		}
		s.MoveResponses(testgrpc.TestService_EmptyCall_FullMethodName) // another method: no effect
		testgrpc.RegisterTestServiceServer(s, h)
		resp, err := testgrpc.NewTestServiceClient(s).UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
		if err != nil {
			t.Fatal(err)
		}
		got := resp.GetPayload().GetBody()
		if string(got) != "fetched records" || resp.GetUsername() != "u" {
			t.Fatalf("moved=%v: response %v", moved, resp)
		}
		if shared := &got[0] == &h.body[0]; shared != moved {
			t.Errorf("moved=%v: caller shares the handler's bytes: %v", moved, shared)
		}
	}
}

// On a MoveRequests method's stream the handler receives the sender's
// message itself, whole: its changes show in the sender's bytes (the
// sender promised never to look again; the test does, to tell a move from
// a copy). Other methods' streams still copy.
func TestMoveRequests(t *testing.T) {
	for _, moved := range []bool{false, true} {
		s := New("test service", nil)
		if moved {
			s.MoveRequests(testgrpc.TestService_FullDuplexCall_FullMethodName)
		}
		s.MoveRequests(testgrpc.TestService_StreamingInputCall_FullMethodName) // another method: no effect
		testgrpc.RegisterTestServiceServer(s, echo{})
		stream, err := testgrpc.NewTestServiceClient(s).FullDuplexCall(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			body := sendEcho(t, stream, i, func(*testgrpc.StreamingOutputCallRequest) {})
			if patched := bytes.Equal(body, bytes.Repeat([]byte("h"), len(body))); patched != moved {
				t.Fatalf("moved=%v, message %d: the handler's change reached the sender's buffer: %v (%q)", moved, i, patched, body)
			}
		}
		stream.CloseSend()
	}
}

// echoRequest answers UnaryCall with the caller's payload bytes as it
// received them, so a test can tell whether it got the caller's bytes or
// a copy.
type echoRequest struct {
	testgrpc.UnimplementedTestServiceServer
	got [][]byte
}

func (e *echoRequest) UnaryCall(_ context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	e.got = append(e.got, req.GetPayload().GetBody())
	return &testgrpc.SimpleResponse{Username: fmt.Sprint(req.GetFillUsername()), Payload: &testgrpc.Payload{Body: []byte("ok")}}, nil
}

// The requests of methods named to ShareRequests reach the handler whole
// and without a copy, as often as they are sent; other methods' requests
// are still copied, and the caller's request is left as it was.
func TestShareRequests(t *testing.T) {
	for _, shared := range []bool{false, true} {
		h := &echoRequest{}
		s := New("test service", nil)
		if shared {
			s.ShareRequests(testgrpc.TestService_UnaryCall_FullMethodName)
		}
		s.ShareRequests(testgrpc.TestService_EmptyCall_FullMethodName) // another method: no effect
		testgrpc.RegisterTestServiceServer(s, h)
		req := &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("flush bytes")}, FillUsername: true}
		for range 2 { // sent again, as a retry or a hedge would
			resp, err := testgrpc.NewTestServiceClient(s).UnaryCall(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetUsername() != "true" || string(resp.GetPayload().GetBody()) != "ok" {
				t.Fatalf("shared=%v: response %v", shared, resp)
			}
		}
		if string(req.GetPayload().GetBody()) != "flush bytes" || !req.GetFillUsername() {
			t.Fatalf("shared=%v: the caller's request changed: %v", shared, req)
		}
		for i, got := range h.got {
			if string(got) != "flush bytes" {
				t.Fatalf("shared=%v, call %d: handler got %q", shared, i, got)
			}
			if same := &got[0] == &req.Payload.Body[0]; same != shared {
				t.Errorf("shared=%v, call %d: handler reads the caller's bytes: %v", shared, i, same)
			}
		}
	}
}
