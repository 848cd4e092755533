package adminapi

import (
	"context"

	adminv1 "github.com/streamline-dev/streamline/proto/gen/streamline/admin/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Calls that only a group's coordinator can make are forwarded to that
// gateway's admin API, at the address it registered (meta.Gateway
// AdminAddr, from --advertised-admin-addr). A forwarded call carries
// forwardedKey, and is never forwarded again: if the coordinator moved
// meanwhile the caller gets Unavailable and retries.

const forwardedKey = "streamline-forwarded-from"

// forwarded reports whether ctx is a call another gateway forwarded.
func forwarded(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(forwardedKey)) > 0
}

// coordinatorConn dials the admin API of the gateway coordinating group.
func (s *Server) coordinatorConn(ctx context.Context, group string) (*grpc.ClientConn, string, error) {
	if forwarded(ctx) {
		return nil, "", status.Errorf(codes.Unavailable, "group %q moved to another coordinator while the call was forwarded; retry", group)
	}
	gw, ok, e := s.ops.Coordinator(ctx, group)
	switch {
	case e != nil:
		return nil, "", opsStatus(e)
	case !ok:
		return nil, "", status.Errorf(codes.Unavailable, "no live gateway coordinates group %q right now (a gateway stopped; its groups move within the session TTL); retry", group)
	case gw.ID == s.cfg.Self.ID:
		return nil, "", status.Errorf(codes.Unavailable, "this gateway is taking over group %q; retry", group)
	case gw.AdminAddr == "":
		return nil, "", status.Errorf(codes.FailedPrecondition, "group %q is coordinated by gateway %s, which serves no admin API (start it with --admin-addr)", group, gw.ID)
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, s.cfg.DialOptions...)
	conn, err := grpc.NewClient(gw.AdminAddr, opts...)
	if err != nil {
		return nil, "", status.Errorf(codes.Unavailable, "dialing gateway %s's admin API at %s: %v", gw.ID, gw.AdminAddr, err)
	}
	return conn, gw.ID, nil
}

// forwardReset runs a ResetGroupOffsets on the group's coordinator.
func (s *Server) forwardReset(ctx context.Context, req *adminv1.ResetGroupOffsetsRequest) (*adminv1.ResetGroupOffsetsResponse, error) {
	conn, id, err := s.coordinatorConn(ctx, req.GetGroup())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx = metadata.AppendToOutgoingContext(ctx, forwardedKey, s.cfg.Self.ID)
	resp, err := adminv1.NewAdminServiceClient(conn).ResetGroupOffsets(ctx, req)
	if err != nil {
		st := status.Convert(err)
		s.log.Debug("forwarded reset failed", "group", req.GetGroup(), "coordinator", id, "err", err)
		return nil, status.Errorf(st.Code(), "%s (on gateway %s, which coordinates group %q)", st.Message(), id, req.GetGroup())
	}
	return resp, nil
}
