package etcdembed_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/etcdembed"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// TestHistoryIsCompacted runs a real embedded etcd with Apply and a short
// history, rewrites a key, and waits until etcd itself has compacted the
// old revisions away (a read at the first revision is ErrCompacted).
func TestHistoryIsCompacted(t *testing.T) {
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	client, peer := url.URL{Scheme: "http", Host: "127.0.0.1:0"}, url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	etcdembed.Apply(cfg, time.Second)
	if cfg.AutoCompactionMode != "periodic" || cfg.AutoCompactionRetention != "1s" {
		t.Fatalf("compaction %q %q", cfg.AutoCompactionMode, cfg.AutoCompactionRetention)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	<-e.Server.ReadyNotify()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Clients[0].Addr().String()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
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
