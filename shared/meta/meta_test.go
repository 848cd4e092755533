package meta_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

func TestTopicLifecycleThroughCache(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := meta.NewStore(e.Client, "/test/")
	cache := meta.NewCache(store, nil)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()

	nodes := []meta.LogNode{{ID: "a", Addr: "127.0.0.1:1"}, {ID: "b", Addr: "127.0.0.1:2"}}
	top := &meta.Topic{Name: "orders", Partitions: 4, StorageMode: meta.StorageLocal, Configs: map[string]string{meta.ConfigRetentionMs: "1000"}}
	rev, err := store.CreateTopic(ctx, top, nodes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	got, ok := cache.Topic("orders")
	if !ok || got.ID != top.ID || got.Partitions != 4 {
		t.Fatalf("cache topic %+v ok=%v", got, ok)
	}
	if byID, ok := cache.TopicByID(top.ID); !ok || byID.Name != "orders" {
		t.Fatalf("by id: %+v %v", byID, ok)
	}
	parts := cache.Partitions("orders")
	perNode := map[string]int{}
	for i, p := range parts {
		if p.Partition != int32(i) || p.TopicID != top.ID {
			t.Fatalf("partition %d: %+v", i, p)
		}
		perNode[p.Leader]++
	}
	if perNode["a"] != 2 || perNode["b"] != 2 {
		t.Fatalf("placement not spread: %v", perNode)
	}
	if got.Int64(meta.ConfigRetentionMs, nil) != 1000 || got.Int64(meta.ConfigRetentionBytes, nil) != -1 {
		t.Fatal("effective configs wrong")
	}

	if _, err := store.CreateTopic(ctx, &meta.Topic{Name: "orders", Partitions: 1}, nodes); !errors.Is(err, meta.ErrTopicExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := store.CreateTopic(ctx, &meta.Topic{Name: "bad/name", Partitions: 1}, nodes); !errors.Is(err, meta.ErrInvalidTopicName) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := store.CreateTopic(ctx, &meta.Topic{Name: "x", Partitions: 1}, nil); !errors.Is(err, meta.ErrNoLogNodes) {
		t.Fatalf("no nodes: %v", err)
	}

	rev, err = store.AddPartitions(ctx, "orders", 6, nodes)
	if err != nil {
		t.Fatal(err)
	}
	_ = cache.WaitRevision(ctx, rev)
	if n := len(cache.Partitions("orders")); n != 6 {
		t.Fatalf("after add: %d partitions", n)
	}
	if _, err := store.AddPartitions(ctx, "orders", 3, nodes); !errors.Is(err, meta.ErrInvalidPartitions) {
		t.Fatalf("shrink: %v", err)
	}

	rev, err = store.DeleteTopic(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	_ = cache.WaitRevision(ctx, rev)
	if _, ok := cache.Topic("orders"); ok || len(cache.Partitions("orders")) != 0 {
		t.Fatal("deleted topic still cached")
	}
	if _, err := store.DeleteTopic(ctx, "orders"); !errors.Is(err, meta.ErrTopicNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestRegistrationFollowsLease(t *testing.T) {
	e := metatest.Start(t)
	ctx := context.Background()
	store := meta.NewStore(e.Client, "")
	cache := meta.NewCache(store, nil)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()

	sess, err := concurrency.NewSession(e.NewClient(t), concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.RegisterGateway(ctx, sess, meta.Gateway{ID: "g1", NodeID: 1, Host: "h", Port: 9092}); err != nil {
		t.Fatal(err)
	}
	sess2, err := concurrency.NewSession(e.NewClient(t), concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	// Another process claiming the same id at another address is refused
	// once the old registration fails to expire in time.
	defer func(old time.Duration) { meta.RegistrationWait = old }(meta.RegistrationWait)
	meta.RegistrationWait = 300 * time.Millisecond
	if err := store.RegisterGateway(ctx, sess2, meta.Gateway{ID: "g1", NodeID: 1, Host: "other", Port: 1}); !errors.Is(err, meta.ErrIDInUse) {
		t.Fatalf("duplicate gateway id: %v", err)
	}

	waitFor(t, cache, func() bool { return len(cache.Gateways()) == 1 })
	// Ending the lease removes the registration.
	if err := sess.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, cache, func() bool { return len(cache.Gateways()) == 0 })
}

func TestProducerIDsUniqueUnderContention(t *testing.T) {
	e := metatest.Start(t)
	stores := []*meta.Store{meta.NewStore(e.Client, ""), meta.NewStore(e.NewClient(t), "")}
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(s *meta.Store) {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				id, err := s.NextProducerID(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[id] {
					t.Errorf("producer id %d handed out twice", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		}(stores[i%2])
	}
	wg.Wait()
	if len(seen) != 80 {
		t.Fatalf("got %d ids", len(seen))
	}
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []struct {
		name, value string
		ok          bool
	}{
		{"retention.ms", "-1", true},
		{"retention.ms", "-2", false},
		{"retention.ms", "abc", false},
		{"storage.mode", "diskless", true},
		{"storage.mode", "hybrid", true},
		{"storage.mode", "tape", false},
		{"local.retention.ms", "-2", true},
		{"local.retention.ms", "-1", true},
		{"local.retention.ms", "0", true},
		{"local.retention.ms", "-3", false},
		{"local.retention.bytes", "-2", true},
		{"local.retention.bytes", "-1", true},
		{"local.retention.bytes", "-3", false},
		{"local.retention.bytes", "1k", false},
		{"cleanup.policy", "compact", false},
		{"no.such.config", "1", false},
	} {
		err := meta.ValidateTopicConfig(c.name, c.value)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, meta.ErrInvalidConfig)) {
			t.Errorf("%s=%s: %v", c.name, c.value, err)
		}
	}
	for _, m := range []meta.StorageMode{meta.StorageLocal, meta.StorageHybrid, meta.StorageDiskless} {
		if err := m.Supported(); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	if err := meta.StorageMode("tape").Supported(); !errors.Is(err, meta.ErrUnsupportedStorageMode) {
		t.Fatalf("tape: %v", err)
	}
}

func waitFor(t *testing.T, c *meta.Cache, cond func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		ch := c.Changed() // take the channel before checking, or a change in between is missed
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("condition not reached")
		}
	}
}

func TestRestartedProcessWaitsForItsOldRegistration(t *testing.T) {
	e := metatest.Start(t)
	ctx := context.Background()
	store := meta.NewStore(e.Client, "")
	newSess := func() *concurrency.Session {
		s, err := concurrency.NewSession(e.NewClient(t), concurrency.WithTTL(30))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	old, restarted := newSess(), newSess()
	if err := store.RegisterUploader(ctx, old, meta.Uploader{ID: "u1", Addr: "old:1"}, false); err != nil {
		t.Fatal(err)
	}
	registered := make(chan error, 1)
	go func() {
		registered <- store.RegisterUploader(ctx, restarted, meta.Uploader{ID: "u1", Addr: "new:1"}, false)
	}()
	select {
	case err := <-registered:
		t.Fatalf("registered while the old holder was alive: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	old.Close() // the old lease ends
	select {
	case err := <-registered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("registration did not follow the old lease's end")
	}
	resp, err := e.Client.Get(ctx, "/streamline/nodes/uploader/u1")
	if err != nil || len(resp.Kvs) != 1 || clientv3.LeaseID(resp.Kvs[0].Lease) != restarted.Lease() {
		t.Fatalf("registration not under the new lease: %v %v", err, resp.Kvs)
	}
	// takeover replaces a live registration at once.
	third := newSess()
	if err := store.RegisterUploader(ctx, third, meta.Uploader{ID: "u1", Addr: "third:1"}, true); err != nil {
		t.Fatal(err)
	}
}

// A producer id counter deleted or overwritten by hand must not hand out
// an id again: counting resumes above every id handed out so far.
func TestProducerIDCounterLostOrCorrupt(t *testing.T) {
	e := metatest.Start(t)
	ctx := context.Background()
	s := meta.NewStore(e.Client, "")
	var last int64 = -1
	next := func(what string) {
		t.Helper()
		id, err := s.NextProducerID(ctx)
		if err != nil || id <= last {
			t.Fatalf("%s: id %d (%v) not above %d", what, id, err, last)
		}
		last = id
	}
	for range 20 {
		next("counting")
	}
	if _, err := e.Client.Delete(ctx, "/streamline/counters/producer-id"); err != nil {
		t.Fatal(err)
	}
	next("after the counter was deleted")
	if _, err := e.Client.Put(ctx, "/streamline/counters/producer-id", "garbage"); err != nil {
		t.Fatal(err)
	}
	next("after the counter was overwritten")
	next("counting again")
}
