package logsvc

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
)

// TestRackIsRegistered: --rack reaches the node's etcd registration, where
// replica placement reads it.
func TestRackIsRegistered(t *testing.T) {
	e := metatest.Start(t)
	n, err := New(Config{DataDir: t.TempDir(), Etcd: e.Client, Rack: "zone-b", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	cache := meta.NewCache(meta.NewStore(e.Client, ""), nil)
	if err := cache.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		nodes := cache.LogNodes()
		if len(nodes) == 1 && nodes[0].Rack == "zone-b" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("registered nodes %+v, want one on rack zone-b", nodes)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
