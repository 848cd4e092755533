package e2e

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/grpc"

	"github.com/streamline-dev/streamline/logsvc"
	"github.com/streamline-dev/streamline/logsvc/buffer"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
	"github.com/streamline-dev/streamline/shared/rpc"
	"github.com/streamline-dev/streamline/uploader"
)

// TestDisklessLateCommitIsFenced forces the interleaving DESIGN invariant 2
// is about: a leader uploads a flush, its leadership moves (new epoch)
// before the commit, and then the commit arrives. The etcd transaction's
// compare on the partition's leader revision must refuse it: nothing is
// committed and the producer is told NOT_LEADER_OR_FOLLOWER, never acked.
// The commit is held back by a gRPC interceptor in front of the real
// uploader (fault injection), everything else is real.
func TestDisklessLateCommitIsFenced(t *testing.T) {
	e := metatest.Start(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	bucket, err := objstorefs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	node, err := logsvc.New(logsvc.Config{DataDir: t.TempDir(), Etcd: e.Client, Objects: bucket, Logger: quiet,
		Diskless: buffer.Config{MaxDelay: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })

	entered, release := make(chan struct{}, 1), make(chan struct{})
	var held atomic.Bool
	holdCommits := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if strings.HasSuffix(info.FullMethod, "/Commit") {
			held.Store(true)
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		}
		return h(ctx, req)
	})
	up, err := uploader.New(uploader.Config{Etcd: e.Client, Objects: bucket, Logger: quiet, GRPCOptions: []grpc.ServerOption{holdCommits}})
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })

	store := meta.NewStore(e.Client, "")
	cache := meta.NewCache(store, quiet)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	topic := &meta.Topic{Name: "late", Partitions: 1, StorageMode: meta.StorageDiskless}
	rev, err := store.CreateTopic(ctx, topic, []meta.LogNode{{ID: node.ID(), Addr: node.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	_ = cache.WaitRevision(ctx, rev)

	conn, err := grpc.NewClient(node.Addr(), rpc.DialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	logs := logv1.NewLogServiceClient(conn)
	result := make(chan *logv1.ProducePartitionResult, 1)
	go func() {
		for ctx.Err() == nil {
			resp, err := logs.Produce(ctx, &logv1.ProduceRequest{Acks: -1, TimeoutMs: 30000, Partitions: []*logv1.ProducePartition{
				{Topic: "late", TopicId: topic.ID[:], Partition: 0, Records: recbatchtest.Build(recbatchtest.Values(1, "late"))},
			}})
			if err != nil {
				t.Error(err)
				return
			}
			r := resp.Partitions[0]
			// The only commit ever made is the held one, so a call that
			// returns after it was held is the call whose flush it carried.
			if held.Load() || (r.ErrorCode != int32(kerr.NotLeaderForPartition.Code) && r.ErrorCode != int32(kerr.UnknownTopicOrPartition.Code)) {
				result <- r
				return
			}
			time.Sleep(20 * time.Millisecond) // not led yet: retry
		}
	}()

	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("no commit reached the uploader")
	}
	// The flush is uploaded and its commit is on its way: move the
	// leadership (what a controller does when it believes the node dead).
	old, _ := cache.Partition("late", 0)
	moved := old
	moved.Leader, moved.LeaderEpoch = "another-node", old.LeaderEpoch+1
	if n, err := store.UpdatePartitions(ctx, []meta.PartitionUpdate{{Old: old, New: moved}}); n != 1 || err != nil {
		t.Fatalf("move leadership: %d %v", n, err)
	}
	close(release)

	select {
	case r := <-result:
		if r.ErrorCode == 0 {
			t.Fatalf("a deposed leader's late commit was acknowledged at offset %d", r.BaseOffset)
		}
		if r.ErrorCode != int32(kerr.NotLeaderForPartition.Code) {
			t.Fatalf("late commit answered %d %q, want NOT_LEADER_OR_FOLLOWER", r.ErrorCode, r.ErrorMessage)
		}
	case <-ctx.Done():
		t.Fatal("no answer to the produce")
	}
	if end, _, err := store.CommittedEnd(ctx, topic.ID, 0); err != nil || end != 0 {
		t.Fatalf("committed end %d (%v): the fenced commit went through", end, err)
	}
	objects := 0
	_ = bucket.Iter(ctx, "", func(string) error { objects++; return nil })
	if objects != 1 {
		t.Fatalf("%d objects; the uploaded-but-fenced flush should be one orphan", objects)
	}
}
