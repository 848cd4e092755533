package uploader_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	uploadv1 "github.com/streamline-dev/streamline/proto/gen/streamline/upload/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
	"github.com/streamline-dev/streamline/shared/rpc"
	"github.com/streamline-dev/streamline/uploader"
	"github.com/streamline-dev/streamline/uploader/gc"
)

// signalBucket reports every deleted key.
type signalBucket struct {
	*objstorefs.Bucket
	deleted chan string
}

func (b signalBucket) Delete(ctx context.Context, key string) error {
	err := b.Bucket.Delete(ctx, key)
	if err == nil {
		b.deleted <- key
	}
	return err
}

// TestUploaderRunsTheCollector: an uploader with a listable bucket campaigns
// for garbage collection, collects once elected, refuses commits of objects
// the collector may delete, and resigns on Close.
func TestUploaderRunsTheCollector(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fs, err := objstorefs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bucket := signalBucket{Bucket: fs, deleted: make(chan string, 16)}
	// An orphan written in 1970 by its key: unreferenced and far past any
	// grace period.
	ancient := "abcd/n1/0000000000001-00000000000000000001-0123456789ab.slo"
	if err := bucket.Put(ctx, ancient, []byte("orphan")); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	up, err := uploader.New(uploader.Config{Etcd: e.Client, Objects: bucket, GCInterval: 10 * time.Millisecond, GCLinger: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer up.Close()

	select {
	case k := <-bucket.deleted:
		if k != ancient {
			t.Fatalf("deleted %q", k)
		}
	case <-ctx.Done():
		t.Fatal("the orphan was never collected")
	}
	if !up.IsGCLeader() {
		t.Fatal("collected without being the elected collector")
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		n, err := testutil.GatherAndCount(reg, "streamline_uploader_gc_passes_total")
		deleted := 0.0
		if mfs, gerr := reg.Gather(); gerr == nil {
			for _, mf := range mfs {
				for _, m := range mf.GetMetric() {
					if mf.GetName() == "streamline_uploader_gc_objects_total" && m.GetLabel()[0].GetValue() == "deleted" {
						deleted = m.GetCounter().GetValue()
					}
				}
			}
		}
		if err == nil && n > 0 && deleted == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gc metrics: %d pass series (%v), %v deleted, want a pass and 1 deleted", n, err, deleted)
		}
		time.Sleep(20 * time.Millisecond)
	}
	election := gc.ElectionKey(meta.NewStore(e.Client, "")) + "/"
	resp, err := e.Client.Get(ctx, election, clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != up.ID() {
		t.Fatalf("election: %v %v", resp, err)
	}

	// Committing coordinates of that (collectable) object is refused
	// before etcd is asked: the answer is FAILED, not FENCED.
	conn, err := grpc.NewClient(up.Addr(), rpc.DialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cr, err := uploadv1.NewUploadServiceClient(conn).Commit(ctx, &uploadv1.CommitRequest{Partitions: []*uploadv1.PartitionCommit{{
		Topic: "t", TopicId: make([]byte, 16), Partition: 0, LeaderRevision: 1,
		Coords: &uploadv1.Coords{ObjectKey: ancient, Position: 8, Length: 6, BaseOffset: 0, LastOffset: 0},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := cr.GetPartitions()[0]; r.GetStatus() != uploadv1.CommitStatus_COMMIT_STATUS_FAILED || !strings.Contains(r.GetMessage(), "garbage-collected") {
		t.Fatalf("commit of a collectable object: %v", r)
	}

	if err := up.Close(); err != nil {
		t.Fatal(err)
	}
	if up.IsGCLeader() {
		t.Fatal("still the collector after Close")
	}
	resp, err = e.Client.Get(ctx, election, clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("election after Close: %v %v", resp.Kvs, err)
	}
}
