package inproc

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
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
	w2, err := cl.Watch(ctx, req)
	if err == nil {
		_, err = w2.Recv() // a stream reports its handler's refusal here
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Watch after Stop: %v; want Unavailable", err)
	}
}
