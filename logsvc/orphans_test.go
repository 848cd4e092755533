package logsvc

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

// TestRemoveOrphansAtStart: a topic deleted while the node was down has its
// directory removed at the next start, through the same crash-safe path as
// a live deletion (renamed, then purged in the background); the leftover of
// a purge a crash interrupted is removed too; the other topic keeps its
// data and takes produce.
func TestRemoveOrphansAtStart(t *testing.T) {
	e := metatest.Start(t)
	dir := t.TempDir()
	n := startNode(t, e, dir)
	store := meta.NewStore(e.Client, "")
	nodes := []meta.LogNode{{ID: n.ID(), Addr: n.Addr()}}
	gone, kept := &meta.Topic{Name: "gone", Partitions: 1}, &meta.Topic{Name: "kept", Partitions: 1}
	for _, tp := range []*meta.Topic{gone, kept} {
		if _, err := store.CreateTopic(context.Background(), tp, nodes); err != nil {
			t.Fatal(err)
		}
		if r := produceUntilLed(t, dial(t, n.Addr()), *tp, recbatchtest.Build(recbatchtest.Values(1, "a", "b"))); r.ErrorCode != 0 {
			t.Fatalf("produce to %s: %+v", tp.Name, r)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := store.DeleteTopic(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	parts := filepath.Join(dir, "partitions")
	goneDir := filepath.Join(parts, storage.StreamName(gone.ID, 0))
	keptDir := filepath.Join(parts, storage.StreamName(kept.ID, 0))
	if _, err := os.Stat(goneDir); err != nil {
		t.Fatalf("the deleted topic's directory should still be there while the node is down: %v", err)
	}
	leftover := filepath.Join(parts, storage.StreamName(meta.NewTopicID(), 0)+".deleted-1")
	if err := os.MkdirAll(leftover, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(leftover, "00000000000000000007.log"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}

	n = startNode(t, e, dir)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, goneErr := os.Stat(goneDir)
		marked, _ := filepath.Glob(filepath.Join(parts, "*.deleted-*"))
		if os.IsNotExist(goneErr) && len(marked) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not removed after 30s: deleted topic dir: %v, marked dirs: %v", goneErr, marked)
		}
		time.Sleep(25 * time.Millisecond)
	}
	if _, err := os.Stat(keptDir); err != nil {
		t.Fatalf("the live topic's directory: %v", err)
	}
	// The live topic kept its two records: the next one lands at offset 2
	// or, when an earlier attempt was appended and then refused (the
	// rejoined node's partition fenced at its old leader epoch, seen under
	// the parallel load of make test), above it; never below.
	if r := produceUntilLed(t, dial(t, n.Addr()), *kept, recbatchtest.Build(recbatchtest.Values(1, "c"))); r.ErrorCode != 0 || r.BaseOffset < 2 {
		t.Fatalf("produce to the live topic after the restart (its records 0 and 1 must be kept): %+v", r)
	}
}
