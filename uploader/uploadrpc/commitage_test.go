package uploadrpc

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	uploadv1 "github.com/streamline-dev/streamline/proto/gen/streamline/upload/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
	"github.com/streamline-dev/streamline/uploader/objectfmt"
)

// TestCommitRefusesObjectsTheCollectorMayDelete: once an object is older
// than the maximum commit age by its key, its commit is refused before
// etcd is touched, so the garbage collector can never delete an object
// that becomes referenced later.
func TestCommitRefusesObjectsTheCollectorMayDelete(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store := meta.NewStore(e.Client, "")
	cache := meta.NewCache(store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	topic := &meta.Topic{Name: "d", Partitions: 2, StorageMode: meta.StorageDiskless}
	rev, err := store.CreateTopic(ctx, topic, []meta.LogNode{{ID: "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	bucket, err := objstorefs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(bucket, store)
	const maxAge = 5 * time.Minute
	srv.RefuseCommitsOlderThan(maxAge)

	batch := func(base int64) []byte {
		b := recbatchtest.Build(recbatchtest.Values(1, "x"))
		recbatch.SetBaseOffset(b, base)
		return b
	}
	up, err := srv.Upload(ctx, &uploadv1.UploadRequest{NodeId: "n1", FlushSeq: 1, Partitions: []*uploadv1.UploadPartition{
		{Topic: "d", TopicId: topic.ID[:], Partition: 0, Batches: [][]byte{batch(0)}},
		{Topic: "d", TopicId: topic.ID[:], Partition: 1, Batches: [][]byte{batch(0)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	born, ok := objectfmt.KeyTime(up.GetObjectKey())
	if !ok {
		t.Fatalf("key %q has no time", up.GetObjectKey())
	}
	commitReq := func(p int32, c *uploadv1.Coords) *uploadv1.PartitionCommit {
		part, _ := cache.Partition("d", p)
		return &uploadv1.PartitionCommit{Topic: "d", TopicId: topic.ID[:], Partition: p, LeaderRevision: part.ModRevision, Coords: c}
	}

	// Too old: partition 0 is refused, and etcd is untouched. In the same
	// call, partition 1 names an object without a key time (not ours to
	// judge): committed.
	srv.now = func() time.Time { return born.Add(maxAge + time.Millisecond) }
	foreign := CoordsToProto(meta.Coords{Object: "legacy/object", Position: 8, Length: 1, BaseOffset: 0, LastOffset: 0})
	resp, err := srv.Commit(ctx, &uploadv1.CommitRequest{Partitions: []*uploadv1.PartitionCommit{
		commitReq(0, up.GetPartitions()[0]), commitReq(1, foreign)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetPartitions(); len(got) != 2 ||
		got[0].GetStatus() != uploadv1.CommitStatus_COMMIT_STATUS_FAILED || got[0].GetPartition() != 0 ||
		got[1].GetStatus() != uploadv1.CommitStatus_COMMIT_STATUS_COMMITTED || got[1].GetPartition() != 1 {
		t.Fatalf("commit of an old object: %v", got)
	}
	if end, _, err := store.CommittedEnd(ctx, topic.ID, 0); err != nil || end != 0 {
		t.Fatalf("refused commit reached etcd: end %d, %v", end, err)
	}

	// Exactly the maximum age: still committed.
	srv.now = func() time.Time { return born.Add(maxAge) }
	resp, err = srv.Commit(ctx, &uploadv1.CommitRequest{Partitions: []*uploadv1.PartitionCommit{commitReq(0, up.GetPartitions()[0])}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetPartitions()[0]; got.GetStatus() != uploadv1.CommitStatus_COMMIT_STATUS_COMMITTED || got.GetCommittedEndOffset() != 1 {
		t.Fatalf("commit within the maximum age: %v", got)
	}
}
