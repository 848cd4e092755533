// Package metatest starts a real, embedded etcd server for tests. No test
// in Streamline talks to a fake of etcd.
package metatest

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/streamline-dev/streamline/shared/freeport"
)

// Etcd is a running embedded etcd and a client connected to it.
type Etcd struct {
	Server    *embed.Etcd
	Client    *clientv3.Client
	Endpoints []string
}

// Start runs an embedded etcd in t's temp dir on free loopback ports and
// stops it when the test ends. fsync is off: tests do not need etcd's
// durability and it makes startup several times faster.
func Start(t testing.TB) *Etcd {
	t.Helper()
	return StartWith(t, nil)
}

// StartWith is Start with configure, if not nil, applied to the server's
// configuration last (quotas, compaction).
func StartWith(t testing.TB, configure func(*embed.Config)) *Etcd {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.Logger = "zap"
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.UnsafeNoFsync = true
	urls := freeURLs(t, 2)
	client, peer := urls[0], urls[1]
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, peer.String())
	if configure != nil {
		configure(cfg)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcd failed: %v", err)
	case <-time.After(60 * time.Second):
		e.Close()
		t.Fatal("etcd did not become ready in 60s")
	}
	eps := []string{client.String()}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		e.Close()
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() {
		// Close clients before the server, or Close waits for them (~7 s).
		cli.Close()
		e.Close()
	})
	return &Etcd{Server: e, Client: cli, Endpoints: eps}
}

// NewClient returns another client of the same server, closed at test end
// (before the server).
func (e *Etcd) NewClient(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// freeURLs returns n distinct free loopback ports as URLs (package
// freeport: below the ephemeral range, so no outgoing connection takes one
// before etcd binds it).
func freeURLs(t testing.TB, n int) []url.URL {
	var out []url.URL
	for range n {
		addr, err := freeport.Addr()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, url.URL{Scheme: "http", Host: addr})
	}
	return out
}
