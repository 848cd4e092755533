package routing_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/gateway/routing"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"go.etcd.io/etcd/client/v3/concurrency"
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
	pool := routing.New(cache, nil)
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
