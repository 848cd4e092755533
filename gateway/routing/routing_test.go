package routing_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/streamline-dev/streamline/gateway/routing"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/rpc/inproc"
)

func TestPoolClosesConnectionsOfDepartedNodes(t *testing.T) {
	e := metatest.Start(t)
	store := meta.NewStore(e.Client, "")
	cache := meta.NewCache(store, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	pool := routing.New(cache, nil, nil)
	t.Cleanup(func() { pool.Close() })

	sess, err := concurrency.NewSession(e.Client, concurrency.WithTTL(30))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.RegisterLogNode(ctx, sess, meta.LogNode{ID: "n1", Addr: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(cache.LogNodes()) == 1 })

	a, err := pool.Client("127.0.0.1:1")
	if err != nil || a == nil {
		t.Fatalf("client: %v", err)
	}
	if _, err := pool.Client("127.0.0.1:1"); err != nil || pool.Len() != 1 {
		t.Fatalf("second client for the same address: %v, %d connections", err, pool.Len())
	}

	sess.Close() // revokes the lease: the node leaves
	waitFor(t, func() bool { return pool.Len() == 0 })

	pool.Close()
	pool.Close()
	if _, err := pool.Client("127.0.0.1:1"); !errors.Is(err, routing.ErrClosed) {
		t.Fatalf("client after close: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sizes answers DescribeSizes with one partition, so a test can tell that a
// call reached it.
type sizes struct {
	logv1.UnimplementedLogServiceServer
}

func (sizes) DescribeSizes(context.Context, *logv1.DescribeSizesRequest) (*logv1.DescribeSizesResponse, error) {
	return &logv1.DescribeSizesResponse{Partitions: []*logv1.DescribeSizesPartitionResult{{Topic: "in-process", Partition: 7}}}, nil
}

// A node given as local is called through its in-process connection: no
// gRPC connection is dialed, and its produce stream runs over it too.
func TestPoolCallsLocalNodesInProcess(t *testing.T) {
	e := metatest.Start(t)
	cache := meta.NewCache(meta.NewStore(e.Client, ""), slog.New(slog.DiscardHandler))
	if err := cache.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	local := inproc.New("log service", nil)
	logv1.RegisterLogServiceServer(local, sizes{})
	// The address has no listener: a network call would fail.
	const addr = "127.0.0.1:1"
	pool := routing.New(cache, nil, map[string]grpc.ClientConnInterface{addr: local})
	t.Cleanup(func() { pool.Close() })

	cl, err := pool.Client(addr)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cl.DescribeSizes(t.Context(), &logv1.DescribeSizesRequest{})
	if err != nil || len(resp.Partitions) != 1 || resp.Partitions[0].Topic != "in-process" {
		t.Fatalf("DescribeSizes: %v, %v; want the in-process server's answer", resp, err)
	}
	if _, err := pool.Producer(addr); err != nil {
		t.Fatal(err)
	}
	if n := pool.Len(); n != 0 {
		t.Fatalf("%d network connections for an in-process node", n)
	}
	local.Stop()
	if _, err := cl.DescribeSizes(t.Context(), &logv1.DescribeSizesRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("DescribeSizes after the node stopped: %v; want Unavailable", err)
	}
}
