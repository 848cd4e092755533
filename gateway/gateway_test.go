package gateway_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/gateway"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestConfigValidate(t *testing.T) {
	cli := &clientv3.Client{} // never dialled: Validate only checks presence
	for _, tc := range []struct {
		name    string
		cfg     gateway.Config
		wantErr string
	}{
		{"defaults", gateway.Config{Etcd: cli}, ""},
		{"no etcd", gateway.Config{}, "Etcd"},
		{"negative node id", gateway.Config{Etcd: cli, NodeID: -1}, "NodeID"},
		{"bad listen addr", gateway.Config{Etcd: cli, ListenAddr: "9092"}, "ListenAddr"},
		{"advertised without port", gateway.Config{Etcd: cli, AdvertisedAddr: "kafka"}, "AdvertisedAddr"},
		{"advertised without host", gateway.Config{Etcd: cli, AdvertisedAddr: ":9092"}, "host is required"},
		{"too many partitions", gateway.Config{Etcd: cli, DefaultPartitions: meta.MaxPartitions + 1}, "DefaultPartitions"},
		{"unknown storage mode", gateway.Config{Etcd: cli, DefaultStorageMode: "tape"}, "DefaultStorageMode"},
		{"hybrid default", gateway.Config{Etcd: cli, DefaultStorageMode: meta.StorageHybrid}, ""},
		{"diskless default", gateway.Config{Etcd: cli, DefaultStorageMode: meta.StorageDiskless}, ""},
		{"local retention default over the total", gateway.Config{Etcd: cli, TopicDefaults: meta.Defaults{"retention.ms": "1000", "local.retention.ms": "2000"}}, "local.retention.ms must not be more than retention.ms"},
		{"local retention defaults", gateway.Config{Etcd: cli, TopicDefaults: meta.Defaults{"local.retention.ms": "1000", "local.retention.bytes": "-1"}}, ""},
		{"bad topic default", gateway.Config{Etcd: cli, TopicDefaults: meta.Defaults{"retention.ms": "x"}}, "TopicDefaults"},
		{"storage mode in topic defaults", gateway.Config{Etcd: cli, TopicDefaults: meta.Defaults{"storage.mode": "local"}}, "DefaultStorageMode"},
		{"huge requests", gateway.Config{Etcd: cli, MaxRequestBytes: 1 << 30}, "MaxRequestBytes"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.wantErr)
		}
	}
}

func newGateway(t *testing.T, e *metatest.Etcd, cfg gateway.Config) *gateway.Gateway {
	t.Helper()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.Etcd = e.NewClient(t)
	cfg.Logger = slog.New(slog.DiscardHandler)
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestRegistersAndDeregisters(t *testing.T) {
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cache := meta.NewCache(meta.NewStore(e.Client, ""), slog.New(slog.DiscardHandler))
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)

	g := newGateway(t, e, gateway.Config{NodeID: 7, AdvertisedAddr: "kafka-7.example:19092", Rack: "r1"})
	select {
	case <-g.Ready():
		t.Fatal("ready before Start")
	default:
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	<-g.Ready()
	if g.Addr() == nil {
		t.Fatal("no listener address after Start")
	}
	if err := g.Start(ctx); err == nil {
		t.Fatal("second Start succeeded")
	}
	waitFor(t, func() bool { return len(cache.Gateways()) == 1 })
	want := meta.Gateway{ID: "gateway-7", NodeID: 7, Host: "kafka-7.example", Port: 19092, Rack: "r1"}
	if got := cache.Gateways()[0]; got != want {
		t.Fatalf("registered %+v, want %+v", got, want)
	}

	// Another gateway may not take the same Kafka node id.
	dup := newGateway(t, e, gateway.Config{ID: "other", NodeID: 7})
	if err := dup.Start(ctx); err == nil || !strings.Contains(err.Error(), "node id 7") {
		t.Fatalf("duplicate node id: %v", err)
	}

	// Close revokes the lease: the record goes at once, not after the TTL.
	g.Close()
	g.Close()
	waitFor(t, func() bool { return len(cache.Gateways()) == 0 })
}

func TestAdvertisesBoundPort(t *testing.T) {
	e := metatest.Start(t)
	g := newGateway(t, e, gateway.Config{NodeID: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	adv := g.Advertised()
	if adv.Host != "127.0.0.1" || adv.Port == 0 || !strings.HasSuffix(g.Addr().String(), ":"+itoa(adv.Port)) {
		t.Fatalf("advertised %s:%d for listener %s", adv.Host, adv.Port, g.Addr())
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
