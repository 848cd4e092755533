package e2e

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/gateway"
	"github.com/streamline-dev/streamline/logsvc"
	"github.com/streamline-dev/streamline/logsvc/buffer"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
	"github.com/streamline-dev/streamline/uploader"
)

// TestDisklessRetentionDeletesCoordinates: records of a diskless topic
// with retention.ms=1000, timestamped an hour ago, have their manifest
// entries deleted by the partition leader's retention pass: the log start
// moves to the end, the end stays, and a fetch at 0 is OFFSET_OUT_OF_RANGE.
// (The objects become unreferenced; uploader/gc tests cover their removal.)
func TestDisklessRetentionDeletesCoordinates(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	etcd := metatest.Start(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	bucket, err := objstorefs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	node, err := logsvc.New(logsvc.Config{DataDir: t.TempDir(), Etcd: etcd.Client, Objects: bucket, Logger: quiet,
		RetentionCheckInterval: 200 * time.Millisecond, Diskless: buffer.Config{MaxDelay: 10 * time.Millisecond}})
	if err == nil {
		err = node.Start(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	up, err := uploader.New(uploader.Config{Etcd: etcd.Client, Objects: bucket, Logger: quiet})
	if err == nil {
		err = up.Start(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	gw, err := gateway.New(gateway.Config{NodeID: 1, ListenAddr: "127.0.0.1:0", Etcd: etcd.Client, Logger: quiet})
	if err == nil {
		err = gw.Start(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	addr := gw.Addr().String()

	adm := kadm.NewClient(newClient(t, addr))
	var resp kadm.CreateTopicResponse
	for i := 0; ; i++ { // the uploader's registration may not be visible to the gateway yet
		resp, err = adm.CreateTopic(ctx, 1, 1, map[string]*string{"storage.mode": kmsg.StringPtr("diskless"), "retention.ms": kmsg.StringPtr("1000")}, "old-news")
		if err == nil && resp.Err == nil {
			break
		}
		if i == 50 {
			t.Fatalf("create: %v %v", err, resp.Err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	prod := newClient(t, addr, kgo.DefaultProduceTopic("old-news"))
	for i := 0; i < 20; i++ {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("stale"), Timestamp: time.Now().Add(-time.Hour)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	store := meta.NewStore(etcd.Client, "")
	deadline := time.Now().Add(30 * time.Second)
	for {
		starts, err := adm.ListStartOffsets(ctx, "old-news")
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := starts.Lookup("old-news", 0); o.Offset == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log start never moved past the expired records: %+v", starts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ends, _ := adm.ListEndOffsets(ctx, "old-news")
	if o, _ := ends.Lookup("old-news", 0); o.Offset != 20 {
		t.Fatalf("end offset %d, want 20", o.Offset)
	}
	rs, err := store.RangesFrom(ctx, meta.TopicID(resp.ID), 0, 0, 10)
	if err != nil || len(rs) != 0 {
		t.Fatalf("manifest entries left after retention: %d %v", len(rs), err)
	}
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.MaxWaitMillis, req.MaxBytes = 100, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = "old-news", resp.ID // the client may send a version that names topics by id
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = 1<<20, -1
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	fresp, err := req.RequestWith(ctx, prod)
	if err != nil {
		t.Fatal(err)
	}
	if code := fresp.Topics[0].Partitions[0].ErrorCode; code != 1 {
		t.Fatalf("fetch at 0 after retention: error %d, want OFFSET_OUT_OF_RANGE", code)
	}
}
