// Package rpc holds the gRPC options every Streamline service uses, so that
// message limits and keepalives agree on both sides of each connection.
package rpc

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// MaxMessageBytes bounds one gRPC message. A produce or fetch carries at
// most Kafka's request limit (100 MiB, socket.request.max.bytes), plus framing.
const MaxMessageBytes = 128 << 20

// Flow-control windows and socket buffers of every connection between
// Streamline services. gRPC's defaults (64 KiB windows grown by a
// bandwidth-delay estimate, 32 KiB buffers) suit the internet; between
// services on one network the estimate stays near 64 KiB, so a 1 MiB
// message (a fetch response, a diskless flush, a hybrid segment piece)
// stalls on a window update every 64 KiB and takes several wakeups and
// syscalls on both sides. Fixed large windows let a message flow in one go;
// the cost is memory a slow reader can leave buffered, bounded per stream
// and per connection.
const (
	streamWindow = 4 << 20
	connWindow   = 16 << 20
	socketBuffer = 256 << 10
)

// ServerOptions are the options for every Streamline gRPC server.
func ServerOptions(extra ...grpc.ServerOption) []grpc.ServerOption {
	return append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
		grpc.InitialWindowSize(streamWindow), grpc.InitialConnWindowSize(connWindow),
		grpc.WriteBufferSize(socketBuffer), grpc.ReadBufferSize(socketBuffer),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	}, extra...)
}

// DialOptions are the options for every Streamline gRPC client. Traffic
// between services is plaintext on a private network for now.
func DialOptions(extra ...grpc.DialOption) []grpc.DialOption {
	return append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(streamWindow), grpc.WithInitialConnWindowSize(connWindow),
		grpc.WithWriteBufferSize(socketBuffer), grpc.WithReadBufferSize(socketBuffer),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
	}, extra...)
}
