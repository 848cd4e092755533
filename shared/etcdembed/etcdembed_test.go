package etcdembed_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/etcdembed"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

// TestHistoryIsCompacted runs a real embedded etcd with Apply and a short
// history, rewrites a key, and waits until etcd itself has compacted the
// old revisions away (a read at the first revision is ErrCompacted).
func TestHistoryIsCompacted(t *testing.T) {
	var applied *embed.Config
	cli := metatest.StartWith(t, func(cfg *embed.Config) {
		etcdembed.Apply(cfg, time.Second)
		applied = cfg
	}).Client
	if applied.AutoCompactionMode != "periodic" || applied.AutoCompactionRetention != "1s" {
		t.Fatalf("compaction %q %q", applied.AutoCompactionMode, applied.AutoCompactionRetention)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err := cli.Put(ctx, "k", "0")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; ; i++ {
		if _, err := cli.Put(ctx, "k", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		_, err := cli.Get(ctx, "k", clientv3.WithRev(first.Header.Revision))
		if errors.Is(err, rpctypes.ErrCompacted) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("etcd never compacted its history")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func TestNegativeHistoryDisablesCompaction(t *testing.T) {
	cfg := embed.NewConfig()
	etcdembed.Apply(cfg, -1)
	if cfg.AutoCompactionRetention != "0" {
		t.Fatalf("compaction %q %q", cfg.AutoCompactionMode, cfg.AutoCompactionRetention)
	}
	etcdembed.Apply(cfg, 0)
	if cfg.AutoCompactionRetention != etcdembed.DefaultHistory.String() {
		t.Fatalf("default retention %q", cfg.AutoCompactionRetention)
	}
}
