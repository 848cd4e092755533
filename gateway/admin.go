package gateway

import (
	"net"
	"time"

	"github.com/streamline-dev/streamline/gateway/adminapi"
	adminv1 "github.com/streamline-dev/streamline/proto/gen/streamline/admin/v1"
	"github.com/streamline-dev/streamline/shared/rpc"
	"github.com/streamline-dev/streamline/shared/telemetry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// adminServer is the admin gRPC API of a gateway: AdminService, server
// reflection (grpcurl needs no .proto files) and the gRPC health service.
type adminServer struct {
	ln     net.Listener
	srv    *grpc.Server
	health *health.Server
	done   chan struct{}
}

// startAdmin serves the admin API on ln. Its operations are the gateway's
// own (package ops), so it needs no route to any Kafka listener.
func (g *Gateway) startAdmin(ln net.Listener) (*adminServer, error) {
	api, err := adminapi.New(adminapi.Config{
		Store: g.store, Cache: g.cache, Ops: g.ops, Self: g.self, ClusterID: g.cfg.ClusterID,
		DialOptions: telemetry.GRPCDialOptions(g.cfg.TracerProvider), Logger: g.log,
	})
	if err != nil {
		return nil, err
	}
	a := &adminServer{ln: ln, srv: grpc.NewServer(rpc.ServerOptions()...), health: health.NewServer(), done: make(chan struct{})}
	adminv1.RegisterAdminServiceServer(a.srv, api)
	healthpb.RegisterHealthServer(a.srv, a.health)
	reflection.Register(a.srv)
	a.health.SetServingStatus(adminv1.AdminService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); err != nil {
			g.log.Error("admin API stopped", "err", err)
		}
	}()
	g.log.Info("admin API ready", "admin_addr", ln.Addr().String(), "advertised_admin_addr", g.self.AdminAddr)
	return a, nil
}

// close stops serving: in-flight calls get a few seconds to finish.
func (a *adminServer) close() {
	a.health.Shutdown()
	stopped := make(chan struct{})
	go func() { a.srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		a.srv.Stop()
	}
	<-a.done
}
