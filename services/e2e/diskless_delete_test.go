package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
)

// TestDeleteLargeDisklessTopicAcrossUploaderCrash deletes a diskless
// topic whose manifest is too large to delete in the topic's own etcd
// transaction (meta.ReapChunkKeys): the topic is gone for clients at once,
// its manifest is left under a tombstone for the uploaders' elected
// collector, which deletes it a chunk at a time and then its objects. The
// uploaders are down when the topic is deleted, and a collector is cut off
// after one chunk (the state a kill -9 between two chunks leaves: each
// chunk is one transaction); an uploader started afterwards finishes the
// job, and another diskless topic keeps every acknowledged record.
func TestDeleteLargeDisklessTopicAcrossUploaderCrash(t *testing.T) {
	c, dir := startDisklessClusterAt(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	store, cache := watchMeta(t, c)
	cli := c.Etcd(t)
	cl := bootstrapClient(t, c, kgo.RequiredAcks(kgo.AllISRAcks()))
	adm := kadm.NewClient(cl)
	diskless := map[string]*string{"storage.mode": kmsg.StringPtr("diskless")}
	for _, tp := range []struct {
		name  string
		parts int32
	}{{"kept", 2}, {"big", 12}} {
		if resp, err := adm.CreateTopic(ctx, tp.parts, 1, diskless, tp.name); err != nil || resp.Err != nil {
			t.Fatalf("create %s: %v %v", tp.name, err, resp.Err)
		}
	}
	await(t, cache, 10*time.Second, "partitions visible", func() bool {
		return len(cache.Partitions("kept")) == 2 && len(cache.Partitions("big")) == 12
	})
	kept := produceTo(ctx, t, cl, "kept", 200)
	big, _ := cache.Topic("big")
	manifest := "/streamline/manifests/" + big.ID.String() + "/"
	keys := func() int64 {
		t.Helper()
		resp, err := cli.Get(ctx, manifest, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return resp.Count
	}
	// Many small flushes (20 ms batches): one manifest entry per
	// partition per flush.
	for round := 0; keys() <= 3*meta.ReapChunkKeys; round++ {
		if round == 200 {
			t.Fatalf("the manifest has only %d keys after %d rounds", keys(), round)
		}
		produceAll(ctx, t, cl, 24, func(i int) *kgo.Record {
			return &kgo.Record{Topic: "big", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("r%d-%d", round, i))}
		})
	}
	before := keys()

	for _, up := range c.NamesOf("uploader") {
		c.Kill(up)
	}
	if _, err := adm.DeleteTopic(ctx, "big"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if topics.Has("big") {
		t.Fatal("the deleted topic is still listed")
	}
	if n := keys(); n != before {
		t.Fatalf("the delete removed %d of the manifest's %d keys itself", before-n, before)
	}
	if dead, err := store.DeletedTopics(ctx); err != nil || len(dead) != 1 || dead[0].ID != big.ID {
		t.Fatalf("tombstones %+v, %v; want big's", dead, err)
	}

	// A collector that deletes one chunk and dies.
	killed := errors.New("killed")
	st, err := store.ReapDeletedTopics(ctx, func(context.Context) error { return killed })
	if !errors.Is(err, killed) || st.Keys != meta.ReapChunkKeys || keys() != before-meta.ReapChunkKeys {
		t.Fatalf("the cut collector deleted %d keys (%d left of %d), %v; want one chunk", st.Keys, keys(), before, err)
	}

	c.Restart("uploader-2")
	deadline := time.Now().Add(30 * time.Second)
	for {
		dead, err := store.DeletedTopics(ctx)
		if err == nil && len(dead) == 0 && keys() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d manifest keys and tombstones %+v (%v)", keys(), dead, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	bucket, err := objstorefs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	awaitNoOrphans(ctx, t, store, bucket) // the deleted topic's objects are collected
	consumeAndCompare(ctx, t, c.Bootstrap()[0], "kept", kept)
}
