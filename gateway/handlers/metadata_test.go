package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/streamline-dev/streamline/gateway/handlers"
	"github.com/streamline-dev/streamline/gateway/internal/kafkatest"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (c *cluster) testApiVersions(t *testing.T) {
	want := map[int16][2]int16{
		0: {3, 12}, 1: {4, 16}, 2: {1, 6}, 3: {0, 12}, 8: {0, 8}, 9: {0, 8}, 10: {0, 4},
		11: {0, 9}, 12: {0, 4}, 13: {0, 5}, 14: {0, 5}, 15: {0, 5}, 16: {0, 5}, 18: {0, 4},
		19: {0, 7}, 20: {0, 6}, 21: {0, 2}, 22: {0, 4}, 23: {0, 4}, 24: {0, 3}, 25: {0, 3}, 26: {0, 5}, 28: {0, 5}, 32: {0, 4}, 33: {0, 2}, 35: {0, 4}, 37: {0, 3},
		42: {0, 2}, 43: {0, 2}, 44: {0, 1}, 45: {0, 1}, 46: {0, 0}, 47: {0, 0}, 60: {0, 1}, 65: {0, 0}, 66: {0, 1},
	}
	for _, v := range []int16{0, 3, 4} {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		resp := kafkatest.Dial(t, c.auto.Addr().String()).RoundTrip(req).(*kmsg.ApiVersionsResponse)
		wantCode(t, "ApiVersions", resp.ErrorCode, nil)
		if !sameKeys(resp.ApiKeys, handlers.SupportedVersions()) {
			t.Fatalf("v%d advertises %v, registry has %v", v, resp.ApiKeys, handlers.SupportedVersions())
		}
		got := map[int16][2]int16{}
		for _, k := range resp.ApiKeys {
			got[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
		}
		if len(got) != len(want) {
			t.Fatalf("advertised %v, want %v", got, want)
		}
		for k, w := range want {
			if got[k] != w {
				t.Fatalf("%s: advertised %v, want %v", kmsg.NameForKey(k), got[k], w)
			}
		}
		// Features are v3+: transaction.version finalized at 2 (the
		// default), so KIP-890 part 2 clients use it.
		var finalized []string
		for _, f := range resp.FinalizedFeatures {
			finalized = append(finalized, fmt.Sprintf("%s=%d..%d", f.Name, f.MinVersionLevel, f.MaxVersionLevel))
		}
		wantFinal := []string(nil)
		if v >= 3 {
			wantFinal = []string{"transaction.version=2..2"}
			if resp.FinalizedFeaturesEpoch < 0 || len(resp.SupportedFeatures) != 1 || resp.SupportedFeatures[0].MaxVersion != 2 {
				t.Fatalf("v%d: features epoch %d, supported %+v", v, resp.FinalizedFeaturesEpoch, resp.SupportedFeatures)
			}
		}
		if !slices.Equal(finalized, wantFinal) {
			t.Fatalf("v%d: finalized features %v, want %v", v, finalized, wantFinal)
		}
	}
}

func sameKeys(a, b []kmsg.ApiVersionsResponseApiKey) bool {
	return slices.EqualFunc(a, b, func(x, y kmsg.ApiVersionsResponseApiKey) bool {
		return x.ApiKey == y.ApiKey && x.MinVersion == y.MinVersion && x.MaxVersion == y.MaxVersion
	})
}

func (c *cluster) testApiVersionsUnsupported(t *testing.T) {
	for _, v := range []int16{5, 99} {
		conn := kafkatest.Dial(t, c.manual.Addr().String())
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = v
		id := conn.Send(req)[0]
		corr, resp := conn.ReadAs(req, 0)
		av := resp.(*kmsg.ApiVersionsResponse)
		if corr != id {
			t.Fatalf("v%d: correlation id %d, want %d", v, corr, id)
		}
		wantCode(t, "ApiVersions v"+strconv.Itoa(int(v)), av.ErrorCode, kerr.UnsupportedVersion)
		// KIP-511: only ApiVersions' own range, which clients retry with
		// (franz-go takes a full list as the answer itself, without the
		// v3+ features).
		if len(av.ApiKeys) != 1 || av.ApiKeys[0].ApiKey != 18 || av.ApiKeys[0].MinVersion != 0 || av.ApiKeys[0].MaxVersion != 4 {
			t.Fatalf("v%d: error response lists %v, want only ApiVersions 0-4", v, av.ApiKeys)
		}
		// The connection stays usable at a supported version.
		req.Version = 4
		conn.Send(req)
		if _, resp := conn.Read(req); resp.(*kmsg.ApiVersionsResponse).ErrorCode != 0 {
			t.Fatal("retry at v4 failed")
		}
	}
}

func (c *cluster) testMetadataAll(t *testing.T) {
	c.mustCreate(c.manual, "all-a", 2)
	c.mustCreate(c.manual, "all-b", 1)
	// The creating gateway sees its writes at once, the other one soon.
	var resp *kmsg.MetadataResponse
	names := func() map[string]int {
		m := map[string]int{}
		for _, tp := range resp.Topics {
			m[*tp.Topic] = len(tp.Partitions)
		}
		return m
	}
	resp = c.metadata(c.manual, nil)
	if n := names(); n["all-a"] != 2 || n["all-b"] != 1 {
		t.Fatalf("all-topics metadata: %v", n)
	}
	waitFor(t, func() bool {
		resp = c.metadata(c.auto, nil)
		n := names()
		return n["all-a"] == 2 && n["all-b"] == 1
	})
	if resp.ControllerID != 1 || deref(resp.ClusterID) != "test-cluster" {
		t.Fatalf("controller %d cluster %q", resp.ControllerID, deref(resp.ClusterID))
	}
	for i, g := range c.gateways() {
		b := resp.Brokers[i]
		if b.NodeID != g.NodeID || b.Host != g.Host || b.Port != g.Port {
			t.Fatalf("broker %d is %+v, want %+v", i, b, g)
		}
	}
	// v0: an empty list means all topics; v1+: an empty list means none.
	v0 := kmsg.NewPtrMetadataRequest()
	v0.Topics = []kmsg.MetadataRequestTopic{}
	if got := len(c.raw(c.auto, v0).(*kmsg.MetadataResponse).Topics); got < 2 {
		t.Fatalf("v0 empty list returned %d topics", got)
	}
	if got := len(c.metadata(c.auto, []string{}).Topics); got != 0 {
		t.Fatalf("v12 empty list returned %d topics", got)
	}
}

func (c *cluster) gateways() []meta.Gateway {
	return []meta.Gateway{c.auto.Advertised(), c.manual.Advertised()}
}

func (c *cluster) testMetadataAutoCreate(t *testing.T) {
	ctx := context.Background()
	md := func(version int16, allow bool, name string) kmsg.MetadataResponseTopic {
		req := kmsg.NewPtrMetadataRequest()
		req.Version, req.AllowAutoTopicCreation = version, allow
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr(name)}}
		return c.raw(c.auto, req).(*kmsg.MetadataResponse).Topics[0]
	}
	tp := md(12, true, "auto-v12")
	wantCode(t, "auto-create v12", tp.ErrorCode, nil)
	if len(tp.Partitions) != 3 || tp.TopicID == [16]byte{} {
		t.Fatalf("auto-created topic has %d partitions, id %x; want the default 3 and an id", len(tp.Partitions), tp.TopicID)
	}
	if st, err := c.store.GetTopic(ctx, "auto-v12"); err != nil || st.StorageMode != meta.StorageLocal {
		t.Fatalf("stored topic %+v, %v", st, err)
	}
	// Before v4 auto-creation is implied.
	wantCode(t, "auto-create v3", md(3, false, "auto-v3").ErrorCode, nil)
	// From v4 the client must ask for it.
	wantCode(t, "no auto-create flag", md(12, false, "auto-not-asked").ErrorCode, kerr.UnknownTopicOrPartition)
	// A gateway without auto-creation never creates.
	req := kmsg.NewPtrMetadataRequest()
	req.Version, req.AllowAutoTopicCreation = 12, true
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("auto-disabled")}}
	wantCode(t, "auto-create disabled", c.raw(c.manual, req).(*kmsg.MetadataResponse).Topics[0].ErrorCode, kerr.UnknownTopicOrPartition)
	for _, name := range []string{"auto-not-asked", "auto-disabled"} {
		if _, err := c.store.GetTopic(ctx, name); !errors.Is(err, meta.ErrTopicNotFound) {
			t.Fatalf("%s was created: %v", name, err)
		}
	}
}

func (c *cluster) testMetadataInvalidName(t *testing.T) {
	req := kmsg.NewPtrMetadataRequest()
	req.Version, req.AllowAutoTopicCreation = 12, true
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("bad name!")}, {Topic: kmsg.StringPtr(strings.Repeat("x", 250))}}
	for _, tp := range c.raw(c.auto, req).(*kmsg.MetadataResponse).Topics {
		wantCode(t, "invalid name", tp.ErrorCode, kerr.InvalidTopicException)
	}
}

func (c *cluster) testMetadataLeaderNotAvailable(t *testing.T) {
	// Partitions placed on a log-service node that is not registered.
	orphan := &meta.Topic{Name: "orphan", Partitions: 2}
	if _, err := c.store.CreateTopic(context.Background(), orphan, []meta.LogNode{{ID: "ghost", Addr: "127.0.0.1:9"}}); err != nil {
		t.Fatal(err)
	}
	c.mustCreate(c.manual, "spread", 12)
	waitFor(t, func() bool {
		return len(c.metadata(c.auto, []string{"orphan"}).Topics[0].Partitions) == 2 &&
			len(c.metadata(c.auto, []string{"spread"}).Topics[0].Partitions) == 12
	})
	tp := c.metadata(c.auto, []string{"orphan"}).Topics[0]
	wantCode(t, "orphan topic", tp.ErrorCode, nil)
	for _, p := range tp.Partitions {
		wantCode(t, "orphan partition", p.ErrorCode, kerr.LeaderNotAvailable)
		if p.Leader != -1 {
			t.Fatalf("partition without a live leader reports leader %d", p.Leader)
		}
	}
	fromAuto := c.metadata(c.auto, []string{"spread"}).Topics[0]
	fromManual := c.metadata(c.manual, []string{"spread"}).Topics[0]
	leaders := map[int32]int{}
	for i, p := range fromAuto.Partitions {
		wantCode(t, "live partition", p.ErrorCode, nil)
		if p.Leader != fromManual.Partitions[i].Leader {
			t.Fatalf("gateways disagree on partition %d's leader: %d vs %d", p.Partition, p.Leader, fromManual.Partitions[i].Leader)
		}
		// One replica, on the log-service node: its broker id, not a gateway's.
		if len(p.Replicas) != 1 || p.Replicas[0] < meta.FirstLogBrokerID || !slices.Equal(p.ISR, p.Replicas) || len(p.OfflineReplicas) != 0 {
			t.Fatalf("partition %d: replicas %v isr %v offline %v", p.Partition, p.Replicas, p.ISR, p.OfflineReplicas)
		}
		leaders[p.Leader]++
	}
	if leaders[1] == 0 || leaders[2] == 0 {
		t.Fatalf("12 partitions not spread over both gateways: %v", leaders)
	}
}

func (c *cluster) testMetadataByID(t *testing.T) {
	created := c.createTopic(c.manual, "by-id", 1, nil)
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	req.Topics = []kmsg.MetadataRequestTopic{{TopicID: created.TopicID}, {TopicID: [16]byte{0xde, 0xad}}}
	resp := c.raw(c.manual, req).(*kmsg.MetadataResponse)
	if deref(resp.Topics[0].Topic) != "by-id" || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("lookup by id: %q %v", deref(resp.Topics[0].Topic), kerr.ErrorForCode(resp.Topics[0].ErrorCode))
	}
	wantCode(t, "unknown id", resp.Topics[1].ErrorCode, kerr.UnknownTopicID)
}
