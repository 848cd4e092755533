package gateway

import (
	"fmt"
	"net"
	"time"

	"github.com/streamline-dev/streamline/gateway/adminapi"
	adminv1 "github.com/streamline-dev/streamline/proto/gen/streamline/admin/v1"
	"github.com/streamline-dev/streamline/shared/rpc"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
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
	kafka  *kgo.Client
	done   chan struct{}
}

// startAdmin serves the admin API on cfg.AdminAddr; kafkaAddr is this
// gateway's own Kafka listener, which the API's changes go through.
func (g *Gateway) startAdmin(kafkaAddr string) (*adminServer, error) {
	kafka, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.ClientID("streamline-admin-api"))
	if err != nil {
		return nil, fmt.Errorf("gateway: admin API Kafka client: %w", err)
	}
	api, err := adminapi.New(adminapi.Config{
		Store: g.store, Cache: g.cache, Kafka: kadm.NewClient(kafka),
		TopicDefaults: g.cfg.TopicDefaults, ClusterID: g.cfg.ClusterID, Logger: g.log,
	})
	if err != nil {
		kafka.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", g.cfg.AdminAddr)
	if err != nil {
		kafka.Close()
		return nil, fmt.Errorf("gateway: admin listen %s: %w", g.cfg.AdminAddr, err)
	}
	a := &adminServer{ln: ln, srv: grpc.NewServer(rpc.ServerOptions()...), health: health.NewServer(), kafka: kafka, done: make(chan struct{})}
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
	g.log.Info("admin API ready", "admin_addr", ln.Addr().String())
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
	a.kafka.Close()
}
