package meta_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
)

// keysReadKV records how many keys each Get answered, by the key asked for.
type keysReadKV struct {
	clientv3.KV
	mu   sync.Mutex
	read map[string]int
}

func (k *keysReadKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := k.KV.Get(ctx, key, opts...)
	if err == nil {
		k.mu.Lock()
		k.read[key] += len(resp.Kvs)
		k.mu.Unlock()
	}
	return resp, err
}

// The cache's start (and every re-list) reads only what it holds: a
// diskless topic's manifest keys (one per partition per flush until
// merged) and group offsets are not read, however many there are, and
// what it holds is the same as before.
func TestCacheLoadReadsOnlyWhatItHolds(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, cache := startStoreCache(t, e)
	topic, manifestKeys := bigManifest(t, store, cache, "big", 2, 300)
	sess, err := concurrency.NewSession(e.NewClient(t), concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := store.RegisterLogNode(ctx, sess, meta.LogNode{ID: "n1", Addr: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := e.Client.Put(ctx, fmt.Sprintf("/streamline/groupoffsets/g/big/%05d", i), `{"offset":1}`); err != nil {
			t.Fatal(err)
		}
	}

	cli := e.NewClient(t)
	kv := &keysReadKV{KV: cli.KV, read: map[string]int{}}
	cli.KV = kv
	fresh := meta.NewCache(meta.NewStore(cli, ""), nil)
	if err := fresh.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	total := 0
	for key, n := range kv.read {
		total += n
		if !strings.HasPrefix(key, "/streamline/") || key == "/streamline/" || strings.HasPrefix(key, "/streamline/manifests/") || strings.HasPrefix(key, "/streamline/groupoffsets/") {
			t.Errorf("the cache's load read %d keys under %q", n, key)
		}
	}
	if total >= int(manifestKeys) {
		t.Errorf("the cache's load read %d keys; the manifest alone has %d", total, manifestKeys)
	}
	got, ok := fresh.Topic("big")
	if !ok || got.ID != topic.ID || len(fresh.Partitions("big")) != 2 {
		t.Fatalf("fresh cache: topic %+v %v, %d partitions", got, ok, len(fresh.Partitions("big")))
	}
	if n, ok := fresh.LogNode("n1"); !ok || n.Addr != "127.0.0.1:1" {
		t.Fatalf("fresh cache: log node %+v %v", n, ok)
	}
	if fresh.Revision() < cache.Revision() {
		t.Fatalf("fresh cache at revision %d, behind %d", fresh.Revision(), cache.Revision())
	}
}
