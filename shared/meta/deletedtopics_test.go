package meta_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
)

// bigManifest creates diskless topic name with parts partitions and
// commits ranges one-offset ranges to each, returning the topic and how
// many manifest keys it has (ranges + the committed end, per partition).
func bigManifest(t *testing.T, store *meta.Store, cache *meta.Cache, name string, parts int32, ranges int) (*meta.Topic, int64) {
	t.Helper()
	ctx := context.Background()
	topic := &meta.Topic{Name: name, Partitions: parts, StorageMode: meta.StorageDiskless}
	rev, err := store.CreateTopic(ctx, topic, []meta.LogNode{{ID: "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	for _, p := range cache.Partitions(name) {
		for base := 0; base < ranges; base += 100 { // 100 ranges per transaction
			var rs []meta.Coords
			for off := base; off < min(base+100, ranges); off++ {
				rs = append(rs, meta.Coords{Object: "o-" + name, Length: 10, BaseOffset: int64(off), LastOffset: int64(off)})
			}
			c := meta.PartitionCommit{Topic: name, TopicID: topic.ID, Partition: p.Partition, LeaderRevision: p.ModRevision, Ranges: rs}
			if err := store.Commit(ctx, []meta.PartitionCommit{c})[0]; err != nil {
				t.Fatal(err)
			}
		}
	}
	return topic, int64(parts) * int64(ranges+1)
}

func manifestKeys(t *testing.T, cli *clientv3.Client, id meta.TopicID) int64 {
	t.Helper()
	resp, err := cli.Get(context.Background(), "/streamline/manifests/"+id.String()+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// A topic whose manifest is larger than one chunk is deleted at once (its
// name, partitions and collision key, in one transaction) but its
// manifest is deleted afterwards by ReapDeletedTopics, at most
// ReapChunkKeys keys per transaction: no single etcd transaction stalls
// the cluster for the size of the topic. A topic created again under the
// same name is not touched.
func TestLargeManifestIsDeletedAChunkAtATimeAfterItsTopic(t *testing.T) {
	e := metatest.Start(t)
	ctx := context.Background()
	store, cache := startStoreCache(t, e)
	old, keys := bigManifest(t, store, cache, "big", 3, 400)
	if keys <= meta.ReapChunkKeys {
		t.Fatalf("test needs more than %d keys, has %d", meta.ReapChunkKeys, keys)
	}
	if got := manifestKeys(t, e.Client, old.ID); got != keys {
		t.Fatalf("manifest has %d keys, want %d", got, keys)
	}
	// Every deletion under the old manifest, grouped by the revision
	// (the transaction) that made it.
	head, err := e.Client.Get(ctx, "/streamline/topics/big")
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	wch := e.Client.Watch(wctx, "/streamline/manifests/"+old.ID.String()+"/", clientv3.WithPrefix(), clientv3.WithRev(head.Header.Revision+1))

	if _, err := store.DeleteTopic(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.GetTopic(ctx, "big"); !errors.Is(err, meta.ErrTopicNotFound) {
		t.Fatalf("topic after delete: %v", err)
	}
	if got := manifestKeys(t, e.Client, old.ID); got != keys {
		t.Fatalf("the delete took %d of %d manifest keys with it", keys-got, keys)
	}
	dead, err := store.DeletedTopics(ctx)
	if err != nil || len(dead) != 1 || dead[0].ID != old.ID || dead[0].Name != "big" || dead[0].DeletedAt.IsZero() {
		t.Fatalf("tombstones %+v, %v; want one for big (%s)", dead, err, old.ID)
	}

	// The name is free again: its new manifest is not the reaper's.
	again, againKeys := bigManifest(t, store, cache, "big", 1, 10)
	st, err := store.ReapDeletedTopics(ctx, meta.Pause(0))
	if err != nil || st.Keys != int(keys) || st.Topics != 1 {
		t.Fatalf("reap: %+v, %v; want %d keys of 1 topic", st, err, keys)
	}
	if got := manifestKeys(t, e.Client, old.ID); got != 0 {
		t.Fatalf("%d keys of the deleted manifest left", got)
	}
	if got := manifestKeys(t, e.Client, again.ID); got != againKeys {
		t.Fatalf("the new topic's manifest has %d keys, want %d", got, againKeys)
	}
	if dead, err := store.DeletedTopics(ctx); err != nil || len(dead) != 0 {
		t.Fatalf("tombstones after the reap: %+v, %v", dead, err)
	}

	perTxn := map[int64]int{}
	deleted := 0
	for deleted < int(keys) {
		select {
		case wr := <-wch:
			for _, ev := range wr.Events {
				if ev.Type != mvccpb.DELETE {
					t.Fatalf("write under the deleted manifest: %s", ev.Kv.Key)
				}
				perTxn[ev.Kv.ModRevision]++
				deleted++
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("watch saw %d of %d deletions", deleted, keys)
		}
	}
	for rev, n := range perTxn {
		if n > meta.ReapChunkKeys {
			t.Errorf("revision %d deleted %d manifest keys, more than %d", rev, n, meta.ReapChunkKeys)
		}
	}
	if want := (int(keys) + meta.ReapChunkKeys - 1) / meta.ReapChunkKeys; len(perTxn) != want {
		t.Errorf("deleted in %d transactions, want %d", len(perTxn), want)
	}
}

// A reap cut short (the collector's process killed between two chunks:
// each chunk is one transaction) leaves the tombstone and the rest of the manifest;
// the next reap finishes it. A tombstone whose manifest is already gone
// (a crash after the last chunk) is removed, and one that does not decode
// is named in the error without stopping the others.
func TestInterruptedReapResumes(t *testing.T) {
	e := metatest.Start(t)
	ctx := context.Background()
	store, cache := startStoreCache(t, e)
	topic, keys := bigManifest(t, store, cache, "big", 2, 600)
	if _, err := store.DeleteTopic(ctx, "big"); err != nil {
		t.Fatal(err)
	}

	// One chunk, then the collector dies.
	killed := errors.New("killed")
	first, err := store.ReapDeletedTopics(ctx, func(context.Context) error { return killed })
	if !errors.Is(err, killed) {
		t.Fatalf("cut reap: %v", err)
	}
	if first.Keys != meta.ReapChunkKeys || first.Topics != 0 {
		t.Fatalf("cut reap did %+v, want one chunk of %d keys", first, meta.ReapChunkKeys)
	}
	if got := manifestKeys(t, e.Client, topic.ID); got != keys-meta.ReapChunkKeys {
		t.Fatalf("%d keys left after one chunk, want %d", got, keys-meta.ReapChunkKeys)
	}
	if dead, _ := store.DeletedTopics(ctx); len(dead) != 1 {
		t.Fatalf("tombstone gone before the manifest: %+v", dead)
	}

	// A tombstone of a manifest already gone, and one not Streamline's.
	var ghost meta.TopicID
	ghost[0] = 0xAB
	if _, err := e.Client.Put(ctx, "/streamline/deleted-topics/"+ghost.String(), `{"name":"ghost","deleted_at":"2026-01-01T00:00:00Z"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Put(ctx, "/streamline/deleted-topics/not-an-id", `{}`); err != nil {
		t.Fatal(err)
	}
	st, err := store.ReapDeletedTopics(ctx, meta.Pause(0))
	if err == nil || st.Keys != int(keys)-meta.ReapChunkKeys || st.Topics != 2 {
		t.Fatalf("resumed reap: %+v, %v; want the other %d keys, 2 topics and an error naming the bad tombstone", st, err, keys-meta.ReapChunkKeys)
	}
	if got := manifestKeys(t, e.Client, topic.ID); got != 0 {
		t.Fatalf("%d keys left after the resumed reap", got)
	}
	resp, _ := e.Client.Get(ctx, "/streamline/deleted-topics/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Key) != "/streamline/deleted-topics/not-an-id" {
		t.Fatalf("tombstones left: %v; want only the bad one", resp.Kvs)
	}
}

// A manifest of at most one chunk goes in the topic's own transaction, as
// before: no tombstone, nothing left for the reaper.
func TestSmallManifestIsDeletedWithItsTopic(t *testing.T) {
	e := metatest.Start(t)
	ctx := context.Background()
	store, cache := startStoreCache(t, e)
	topic, keys := bigManifest(t, store, cache, "small", 2, meta.ReapChunkKeys/2-1)
	if keys > meta.ReapChunkKeys {
		t.Fatalf("test needs at most %d keys, has %d", meta.ReapChunkKeys, keys)
	}
	if _, err := store.DeleteTopic(ctx, "small"); err != nil {
		t.Fatal(err)
	}
	if got := manifestKeys(t, e.Client, topic.ID); got != 0 {
		t.Fatalf("%d manifest keys left after the delete", got)
	}
	if dead, err := store.DeletedTopics(ctx); err != nil || len(dead) != 0 {
		t.Fatalf("tombstones: %+v, %v", dead, err)
	}
}

// BenchmarkDeleteLargeTopic measures what deleting a diskless topic with
// a 50,000-key manifest costs the rest of the cluster: the longest a
// linearizable read (what every acknowledgement waits for) took while the
// topic was deleted and while its manifest was then reaped with the
// collector's pause (25 ms). Run with -benchtime=1x; etcd fsyncs here.
func BenchmarkDeleteLargeTopic(b *testing.B) {
	e := metatest.StartWith(b, func(c *embed.Config) { c.UnsafeNoFsync = false })
	ctx := context.Background()
	store := meta.NewStore(e.Client, "")
	const keys = 50_000
	var deleteStall, reapStall, reapTook time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		topic := &meta.Topic{Name: fmt.Sprintf("big-%d", i), Partitions: 1, StorageMode: meta.StorageDiskless}
		if _, err := store.CreateTopic(ctx, topic, []meta.LogNode{{ID: "n1"}}); err != nil {
			b.Fatal(err)
		}
		val := strings.Repeat("x", 350) // about a range entry's JSON
		for k := 0; k < keys; k += 128 {
			var ops []clientv3.Op
			for j := k; j < min(k+128, keys); j++ {
				ops = append(ops, clientv3.OpPut(fmt.Sprintf("/streamline/manifests/%s/00000/r/%020d", topic.ID, j), val))
			}
			if _, err := e.Client.Txn(ctx).Then(ops...).Commit(); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		deleteStall = max(deleteStall, maxReadDuring(b, e.Client, func() {
			if _, err := store.DeleteTopic(ctx, topic.Name); err != nil {
				b.Fatal(err)
			}
		}))
		start := time.Now()
		reapStall = max(reapStall, maxReadDuring(b, e.Client, func() {
			if st, err := store.ReapDeletedTopics(ctx, meta.Pause(25*time.Millisecond)); err != nil || st.Keys != keys {
				b.Fatal(st, err)
			}
		}))
		reapTook = max(reapTook, time.Since(start))
	}
	b.ReportMetric(float64(deleteStall)/1e6, "delete-max-read-ms")
	b.ReportMetric(float64(reapStall)/1e6, "reap-max-read-ms")
	b.ReportMetric(reapTook.Seconds(), "reap-s")
}

// maxReadDuring runs linearizable reads back to back while fn runs and
// returns the longest one.
func maxReadDuring(b *testing.B, cli *clientv3.Client, fn func()) time.Duration {
	stop := make(chan struct{})
	longest := make(chan time.Duration)
	go func() {
		var m time.Duration
		for {
			select {
			case <-stop:
				longest <- m
				return
			default:
			}
			start := time.Now()
			if _, err := cli.Get(context.Background(), "/streamline/fence"); err != nil {
				b.Error(err)
			}
			m = max(m, time.Since(start))
		}
	}()
	fn()
	close(stop)
	return <-longest
}
