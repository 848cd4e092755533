package handlers_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/gateway"
	"github.com/streamline-dev/streamline/gateway/internal/kafkatest"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// cluster is a real etcd, two gateways and one log-service node record.
// The log-service record points at a port nobody listens on: the handlers
// under test only read metadata, and the data path's failure handling is
// what a dead node exercises.
type cluster struct {
	t     *testing.T
	store *meta.Store
	// auto creates topics on Metadata (node 1, 3 default partitions,
	// retention.bytes server default); manual does not (node 2).
	auto, manual *gateway.Gateway
	deadLogAddr  string
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	e := metatest.Start(t)
	store := meta.NewStore(e.Client, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	sess, err := concurrency.NewSession(e.Client, concurrency.WithTTL(30))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	dead := deadAddr(t)
	if err := store.RegisterLogNode(ctx, sess, meta.LogNode{ID: "log-1", Addr: dead}); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, store: store, deadLogAddr: dead}
	c.auto = startGateway(t, gateway.Config{
		NodeID: 1, AutoCreateTopics: true, DefaultPartitions: 3,
		TopicDefaults: meta.Defaults{meta.ConfigRetentionBytes: "1048576"},
		Etcd:          e.NewClient(t), ClusterID: "test-cluster",
	})
	c.manual = startGateway(t, gateway.Config{NodeID: 2, Etcd: e.NewClient(t), ClusterID: "test-cluster"})
	// Both gateways see each other before tests look at broker lists.
	waitFor(t, func() bool {
		return len(c.metadata(c.auto, nil).Brokers) == 2 && len(c.metadata(c.manual, nil).Brokers) == 2
	})
	// ...and the group shards are split between them: tests look a
	// group's coordinator up and expect it to stay.
	waitFor(t, func() bool { return c.auto.GroupShardsSettled() && c.manual.GroupShardsSettled() })
	return c
}

func startGateway(t *testing.T, cfg gateway.Config) *gateway.Gateway {
	t.Helper()
	cfg.ListenAddr = "127.0.0.1:0"
	// Short group session timeouts let the timer tests run in a second.
	cfg.GroupMinSessionTimeout = 100 * time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// deadAddr is a loopback address with nothing listening.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

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

// raw sends req to gateway g at exactly req's version.
func (c *cluster) raw(g *gateway.Gateway, req kmsg.Request) kmsg.Response {
	c.t.Helper()
	return kafkatest.Dial(c.t, g.Addr().String()).RoundTrip(req)
}

// metadata asks g about topics (nil for all) at v12.
func (c *cluster) metadata(g *gateway.Gateway, topics []string) *kmsg.MetadataResponse {
	c.t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	if topics != nil {
		req.Topics = []kmsg.MetadataRequestTopic{}
	}
	for _, name := range topics {
		req.Topics = append(req.Topics, kmsg.MetadataRequestTopic{Topic: kmsg.StringPtr(name)})
	}
	return c.raw(g, req).(*kmsg.MetadataResponse)
}

// createTopic creates a topic through g with CreateTopics v7.
func (c *cluster) createTopic(g *gateway.Gateway, name string, partitions int32, configs map[string]string) kmsg.CreateTopicsResponseTopic {
	c.t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version, req.TimeoutMillis = 7, 10000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, -1
	for k, v := range configs {
		rt.Configs = append(rt.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: k, Value: kmsg.StringPtr(v)})
	}
	req.Topics = []kmsg.CreateTopicsRequestTopic{rt}
	return c.raw(g, req).(*kmsg.CreateTopicsResponse).Topics[0]
}

func (c *cluster) mustCreate(g *gateway.Gateway, name string, partitions int32) {
	c.t.Helper()
	if st := c.createTopic(g, name, partitions, nil); st.ErrorCode != 0 {
		c.t.Fatalf("create %s: %v (%v)", name, kerr.ErrorForCode(st.ErrorCode), deref(st.ErrorMessage))
	}
}

// admin is a franz-go admin client bootstrapped from g.
func (c *cluster) admin(g *gateway.Gateway) *kadm.Client {
	c.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(g.Addr().String()))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func wantCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	var wantCode int16
	if want != nil {
		wantCode = want.Code
	}
	if got != wantCode {
		t.Fatalf("%s: error %v, want %v", what, kerr.ErrorForCode(got), kerr.ErrorForCode(wantCode))
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
