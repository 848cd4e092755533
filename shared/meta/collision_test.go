package meta_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Kafka's '.'/'_' collision rule, enforced in etcd: of concurrent creators
// of colliding names exactly one wins, the others get ErrTopicCollision
// naming the winner; delete frees the name for either spelling.
func TestTopicNameCollision(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nodes := []meta.LogNode{{ID: "a", Addr: "127.0.0.1:1"}}

	// Several stores (separate clients, as separate gateways) race on
	// colliding names, many rounds so the race is really exercised.
	const creators = 4
	stores := make([]*meta.Store, creators)
	for i := range stores {
		stores[i] = meta.NewStore(e.NewClient(t), "/test/")
	}
	spellings := []string{"r%d.a.b", "r%d_a.b", "r%d.a_b", "r%d_a_b"}
	for round := range 10 {
		var wg sync.WaitGroup
		errs := make([]error, creators)
		names := make([]string, creators)
		for i := range creators {
			names[i] = fmt.Sprintf(spellings[i], round)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = stores[i].CreateTopic(ctx, &meta.Topic{Name: names[i], Partitions: 2}, nodes)
			}()
		}
		wg.Wait()
		winner := ""
		for i, err := range errs {
			switch {
			case err == nil:
				if winner != "" {
					t.Fatalf("round %d: both %s and %s were created", round, winner, names[i])
				}
				winner = names[i]
			case !errors.Is(err, meta.ErrTopicCollision):
				t.Fatalf("round %d: %s: %v, want ErrTopicCollision", round, names[i], err)
			}
		}
		if winner == "" {
			t.Fatalf("round %d: nobody won: %v", round, errs)
		}
		for i, err := range errs {
			if err != nil && err.Error() != fmt.Sprintf("Topic '%s' collides with existing topic: %s", names[i], winner) {
				t.Fatalf("round %d: message %q does not name the winner %s", round, err, winner)
			}
		}
	}

	store := stores[0]
	if _, err := store.CreateTopic(ctx, &meta.Topic{Name: "col.x", Partitions: 1}, nodes); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateTopic(ctx, &meta.Topic{Name: "col.x", Partitions: 1}, nodes); !errors.Is(err, meta.ErrTopicExists) {
		t.Fatalf("same name again: %v, want ErrTopicExists", err)
	}
	if _, err := store.DeleteTopic(ctx, "col.x"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateTopic(ctx, &meta.Topic{Name: "col_x", Partitions: 1}, nodes); err != nil {
		t.Fatalf("other spelling after delete: %v", err)
	}
	if _, err := store.CreateTopic(ctx, &meta.Topic{Name: "col.x", Partitions: 1}, nodes); !errors.Is(err, meta.ErrTopicCollision) {
		t.Fatalf("first spelling while the other exists: %v", err)
	}
}

// Clusters from before collision keys: a topic without its key still
// blocks a colliding name, a legacy colliding pair can both be deleted
// without touching each other's state, and a stale key (its topic deleted
// by a build that did not know the keys) does not block the name forever.
func TestTopicNameCollisionLegacyKeys(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := meta.NewStore(e.Client, "/test/")
	nodes := []meta.LogNode{{ID: "a", Addr: "127.0.0.1:1"}}
	dropKey := func(name string) {
		t.Helper()
		if _, err := e.Client.Delete(ctx, "/test/topic-collisions/"+meta.TopicCollisionName(name)); err != nil {
			t.Fatal(err)
		}
	}

	// A legacy topic: created, then its key removed as if it never had one.
	if _, err := store.CreateTopic(ctx, &meta.Topic{Name: "old.t", Partitions: 1}, nodes); err != nil {
		t.Fatal(err)
	}
	dropKey("old.t")
	if _, err := store.CreateTopic(ctx, &meta.Topic{Name: "old_t", Partitions: 1}, nodes); !errors.Is(err, meta.ErrTopicCollision) {
		t.Fatalf("collision with a key-less topic: %v", err)
	}
	if _, err := store.DeleteTopic(ctx, "old.t"); err != nil {
		t.Fatalf("delete of a key-less topic: %v", err)
	}
	if _, err := store.CreateTopic(ctx, &meta.Topic{Name: "old_t", Partitions: 1}, nodes); err != nil {
		t.Fatalf("create after the legacy topic's delete: %v", err)
	}

	// A stale key: its topic deleted by an older build (key left behind).
	if _, err := store.CreateTopic(ctx, &meta.Topic{Name: "stale.t", Partitions: 1}, nodes); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Delete(ctx, "/test/topics/stale.t"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Delete(ctx, "/test/partitions/stale.t/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"stale_t", "stale.t"} {
		_, err := store.CreateTopic(ctx, &meta.Topic{Name: name, Partitions: 1}, nodes)
		if name == "stale_t" && err != nil {
			t.Fatalf("create over a stale key: %v", err)
		}
		if name == "stale.t" && !errors.Is(err, meta.ErrTopicCollision) {
			t.Fatalf("the new key must hold: %v", err)
		}
	}

	if _, err := store.DeleteTopic(ctx, "stale_t"); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(ctx, t, e.Client, "/test/topic-collisions/stale_t"); n != 0 {
		t.Fatalf("collision key left after its topic's delete")
	}

	// A legacy colliding pair (both created before the rule): deleting
	// one leaves the other's key, so the rule still holds afterwards.
	if _, err := store.CreateTopic(ctx, &meta.Topic{Name: "p.q", Partitions: 1}, nodes); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Put(ctx, "/test/topics/p_q", `{"name":"p_q","partitions":1}`); err != nil {
		t.Fatal(err)
	}
	if _, err := store.DeleteTopic(ctx, "p_q"); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(ctx, t, e.Client, "/test/topic-collisions/p_q"); n != 1 {
		t.Fatalf("deleting p_q removed p.q's collision key")
	}
	if _, err := store.CreateTopic(ctx, &meta.Topic{Name: "p_q", Partitions: 1}, nodes); !errors.Is(err, meta.ErrTopicCollision) {
		t.Fatalf("p_q while p.q exists: %v", err)
	}
}

func countKeys(ctx context.Context, t *testing.T, cli *clientv3.Client, key string) int64 {
	t.Helper()
	resp, err := cli.Get(ctx, key, clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}
