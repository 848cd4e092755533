package handlers_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/gateway"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AlterConfigs, IncrementalAlterConfigs and DeleteRecords against real
// etcd and two real gateways. The log-service node is registered but not
// running: DeleteRecords' forwarding is covered end to end in services/e2e
// (admin_configs_test.go); here its own checks and routing errors are.
func TestAlterConfigsAndDeleteRecords(t *testing.T) {
	c := startCluster(t)
	t.Run("IncrementalAlterConfigs", c.testIncrementalAlterConfigs)
	t.Run("IncrementalAlterConfigsErrors", c.testIncrementalAlterConfigsErrors)
	t.Run("AlterConfigsReplacesTheSet", c.testAlterConfigs)
	t.Run("ConcurrentChangesAllLand", c.testConcurrentAlters)
	t.Run("FranzGoAdminClient", c.testKadmAlterConfigs)
	t.Run("DeleteRecordsErrors", c.testDeleteRecordsErrors)
}

// op builds an IncrementalAlterConfigs config; value "<nil>" is null.
func op(name string, o kmsg.IncrementalAlterConfigOp, value string) kmsg.IncrementalAlterConfigsRequestResourceConfig {
	cf := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	cf.Name, cf.Op = name, o
	if value != "<nil>" {
		cf.Value = kmsg.StringPtr(value)
	}
	return cf
}

func topicRes(name string, cfgs ...kmsg.IncrementalAlterConfigsRequestResourceConfig) kmsg.IncrementalAlterConfigsRequestResource {
	r := kmsg.NewIncrementalAlterConfigsRequestResource()
	r.ResourceType, r.ResourceName, r.Configs = kmsg.ConfigResourceTypeTopic, name, cfgs
	return r
}

func (c *cluster) incremental(g *gateway.Gateway, version int16, validateOnly bool, res ...kmsg.IncrementalAlterConfigsRequestResource) []kmsg.IncrementalAlterConfigsResponseResource {
	c.t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.Version, req.ValidateOnly, req.Resources = version, validateOnly, res
	resp := c.raw(g, req).(*kmsg.IncrementalAlterConfigsResponse)
	if len(resp.Resources) != len(res) {
		c.t.Fatalf("%d resources answered for %d", len(resp.Resources), len(res))
	}
	for i, r := range resp.Resources {
		if r.ResourceName != res[i].ResourceName || r.ResourceType != res[i].ResourceType {
			c.t.Fatalf("resource %d answered as %v %s", i, r.ResourceType, r.ResourceName)
		}
	}
	return resp.Resources
}

// described returns topic's configs as g describes them.
func (c *cluster) described(g *gateway.Gateway, topic string) map[string]kmsg.DescribeConfigsResponseResourceConfig {
	c.t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.Version = 4
	req.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: topic}}
	resp := c.raw(g, req).(*kmsg.DescribeConfigsResponse)
	wantCode(c.t, "describe "+topic, resp.Resources[0].ErrorCode, nil)
	out := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
	for _, cf := range resp.Resources[0].Configs {
		out[cf.Name] = cf
	}
	return out
}

func (c *cluster) wantDescribed(t *testing.T, g *gateway.Gateway, topic, name, value string, src kmsg.ConfigSource) {
	t.Helper()
	cf := c.described(g, topic)[name]
	if deref(cf.Value) != value || cf.Source != src {
		t.Fatalf("%s.%s = %q from %v, want %q from %v", topic, name, deref(cf.Value), cf.Source, value, src)
	}
}

func (c *cluster) storedConfigs(t *testing.T, topic string) map[string]string {
	t.Helper()
	st, err := c.store.GetTopic(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return st.Configs
}

func (c *cluster) testIncrementalAlterConfigs(t *testing.T) {
	c.mustCreate(c.manual, "iac", 1)
	for _, v := range []int16{0, 1} {
		retention := fmt.Sprint(60000 + int(v))
		res := c.incremental(c.manual, v, false, topicRes("iac",
			op("retention.ms", kmsg.IncrementalAlterConfigOpSet, retention),
			op("segment.bytes", kmsg.IncrementalAlterConfigOpSet, "1048576")))
		wantCode(t, fmt.Sprintf("v%d set", v), res[0].ErrorCode, nil)
		// Read-your-writes on the gateway that wrote.
		c.wantDescribed(t, c.manual, "iac", "retention.ms", retention, kmsg.ConfigSourceDynamicTopicConfig)
	}
	if got := c.storedConfigs(t, "iac"); got["retention.ms"] != "60001" || got["segment.bytes"] != "1048576" {
		t.Fatalf("stored %v", got)
	}
	// The other gateway follows through its watch.
	waitFor(t, func() bool { return deref(c.described(c.auto, "iac")["retention.ms"].Value) == "60001" })

	// DELETE returns to the default: the server default where the gateway
	// has one (retention.bytes on the auto gateway), else the built-in.
	wantCode(t, "set retention.bytes", c.incremental(c.auto, 1, false, topicRes("iac", op("retention.bytes", kmsg.IncrementalAlterConfigOpSet, "99")))[0].ErrorCode, nil)
	res := c.incremental(c.auto, 1, false, topicRes("iac",
		op("retention.ms", kmsg.IncrementalAlterConfigOpDelete, "<nil>"),
		op("retention.bytes", kmsg.IncrementalAlterConfigOpDelete, "<nil>")))
	wantCode(t, "delete", res[0].ErrorCode, nil)
	c.wantDescribed(t, c.auto, "iac", "retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig)
	c.wantDescribed(t, c.auto, "iac", "retention.bytes", "1048576", kmsg.ConfigSourceStaticBrokerConfig)
	c.wantDescribed(t, c.auto, "iac", "segment.bytes", "1048576", kmsg.ConfigSourceDynamicTopicConfig)
	// Deleting what is not set is fine.
	wantCode(t, "delete unset", c.incremental(c.auto, 1, false, topicRes("iac", op("segment.ms", kmsg.IncrementalAlterConfigOpDelete, "<nil>")))[0].ErrorCode, nil)

	// APPEND of a list item already there changes nothing; SET of the
	// topic's own storage mode and DELETE of it (the default is local
	// here) are accepted as no-ops.
	res = c.incremental(c.auto, 1, false, topicRes("iac",
		op("cleanup.policy", kmsg.IncrementalAlterConfigOpAppend, "delete"),
		op("storage.mode", kmsg.IncrementalAlterConfigOpSet, "local")))
	wantCode(t, "no-op append", res[0].ErrorCode, nil)
	wantCode(t, "delete storage.mode", c.incremental(c.auto, 1, false, topicRes("iac", op("storage.mode", kmsg.IncrementalAlterConfigOpDelete, "<nil>")))[0].ErrorCode, nil)
	c.wantDescribed(t, c.auto, "iac", "cleanup.policy", "delete", kmsg.ConfigSourceDynamicTopicConfig)
	c.wantDescribed(t, c.auto, "iac", "storage.mode", "local", kmsg.ConfigSourceDynamicTopicConfig)

	// ValidateOnly checks and writes nothing.
	before := c.storedConfigs(t, "iac")
	wantCode(t, "validate only", c.incremental(c.auto, 1, true, topicRes("iac", op("retention.ms", kmsg.IncrementalAlterConfigOpSet, "5")))[0].ErrorCode, nil)
	wantCode(t, "validate only, bad", c.incremental(c.auto, 1, true, topicRes("iac", op("retention.ms", kmsg.IncrementalAlterConfigOpSet, "-5")))[0].ErrorCode, kerr.InvalidConfig)
	if after := c.storedConfigs(t, "iac"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("validate only wrote: %v -> %v", before, after)
	}
}

func (c *cluster) testIncrementalAlterConfigsErrors(t *testing.T) {
	c.mustCreate(c.manual, "iac-err", 1)
	set := kmsg.IncrementalAlterConfigOpSet
	before := c.storedConfigs(t, "iac-err")
	for _, tc := range []struct {
		name string
		cfgs []kmsg.IncrementalAlterConfigsRequestResourceConfig
		want *kerr.Error
		msg  string
	}{
		{"unknown key", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("retention.ms", set, "1"), op("no.such.config", set, "1")}, kerr.InvalidConfig, `"no.such.config"`},
		{"unknown key delete", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("no.such.config", kmsg.IncrementalAlterConfigOpDelete, "<nil>")}, kerr.InvalidConfig, "no.such.config"},
		{"bad value", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("retention.ms", set, "soon")}, kerr.InvalidConfig, "retention.ms"},
		{"below minimum", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("segment.bytes", set, "10")}, kerr.InvalidConfig, "segment.bytes"},
		{"null value", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("retention.ms", set, "<nil>")}, kerr.InvalidRequest, "null"},
		{"twice", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("retention.ms", set, "1"), op("retention.ms", set, "2")}, kerr.InvalidRequest, "more than once"},
		{"unknown op", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("retention.ms", 7, "1")}, kerr.InvalidRequest, "operation"},
		{"append non-list", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("retention.ms", kmsg.IncrementalAlterConfigOpAppend, "1")}, kerr.InvalidRequest, "not a list"},
		{"subtract non-list", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("storage.mode", kmsg.IncrementalAlterConfigOpSubtract, "local")}, kerr.InvalidRequest, "not a list"},
		{"append compact", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("cleanup.policy", kmsg.IncrementalAlterConfigOpAppend, "compact")}, kerr.InvalidConfig, "delete,compact"},
		{"subtract delete", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("cleanup.policy", kmsg.IncrementalAlterConfigOpSubtract, "delete")}, kerr.InvalidConfig, "cleanup.policy"},
		{"storage mode", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("retention.ms", set, "1"), op("storage.mode", set, "diskless")}, kerr.InvalidConfig,
			"a local or hybrid topic cannot become diskless"},
		{"hybrid without object store", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("storage.mode", set, "hybrid")}, kerr.InvalidConfig,
			"storage.mode=hybrid needs an object store: "},
		{"local retention below -2", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("local.retention.ms", set, "-3")}, kerr.InvalidConfig, "local.retention.ms"},
		{"local retention over total", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("retention.ms", set, "1000"), op("local.retention.ms", set, "1001")}, kerr.InvalidConfig,
			"local.retention.ms must not be more than retention.ms"},
		{"bad storage mode", []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("storage.mode", set, "cloud")}, kerr.InvalidConfig, "storage.mode"},
	} {
		for _, v := range []int16{0, 1} {
			res := c.incremental(c.auto, v, false, topicRes("iac-err", tc.cfgs...))[0]
			wantCode(t, fmt.Sprintf("%s v%d", tc.name, v), res.ErrorCode, tc.want)
			if !strings.Contains(deref(res.ErrorMessage), tc.msg) {
				t.Fatalf("%s: message %q does not mention %q", tc.name, deref(res.ErrorMessage), tc.msg)
			}
		}
	}
	if after := c.storedConfigs(t, "iac-err"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a refused change was written: %v -> %v", before, after)
	}

	// Resources: missing and misnamed topics, brokers, other types, a
	// resource named twice; a valid one next to them is applied.
	broker := kmsg.NewIncrementalAlterConfigsRequestResource()
	broker.ResourceType, broker.ResourceName = kmsg.ConfigResourceTypeBroker, "1"
	broker.Configs = []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("num.partitions", set, "4")}
	group := broker
	group.ResourceType, group.ResourceName = kmsg.ConfigResourceTypeGroupConfig, "g"
	res := c.incremental(c.auto, 1, false,
		topicRes("iac-missing", op("retention.ms", set, "1")),
		topicRes("iac bad", op("retention.ms", set, "1")),
		broker, group,
		topicRes("iac-err", op("retention.ms", set, "123")),
		topicRes("iac-twice", op("retention.ms", set, "1")),
		topicRes("iac-twice", op("retention.ms", set, "2")),
	)
	wantCode(t, "missing topic", res[0].ErrorCode, kerr.UnknownTopicOrPartition)
	wantCode(t, "bad name", res[1].ErrorCode, kerr.InvalidTopicException)
	wantCode(t, "broker", res[2].ErrorCode, kerr.InvalidRequest)
	if !strings.Contains(deref(res[2].ErrorMessage), "static") {
		t.Fatalf("broker message %q", deref(res[2].ErrorMessage))
	}
	wantCode(t, "group", res[3].ErrorCode, kerr.InvalidRequest)
	wantCode(t, "valid next to errors", res[4].ErrorCode, nil)
	wantCode(t, "twice (1)", res[5].ErrorCode, kerr.InvalidRequest)
	wantCode(t, "twice (2)", res[6].ErrorCode, kerr.InvalidRequest)
	if got := c.storedConfigs(t, "iac-err"); got["retention.ms"] != "123" {
		t.Fatalf("valid resource not applied: %v", got)
	}
}

func (c *cluster) alterConfigs(g *gateway.Gateway, version int16, validateOnly bool, topic string, cfgs map[string]*string) kmsg.AlterConfigsResponseResource {
	c.t.Helper()
	req := kmsg.NewPtrAlterConfigsRequest()
	req.Version, req.ValidateOnly = version, validateOnly
	r := kmsg.NewAlterConfigsRequestResource()
	r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	for k, v := range cfgs {
		r.Configs = append(r.Configs, kmsg.AlterConfigsRequestResourceConfig{Name: k, Value: v})
	}
	req.Resources = []kmsg.AlterConfigsRequestResource{r}
	return c.raw(g, req).(*kmsg.AlterConfigsResponse).Resources[0]
}

func (c *cluster) testAlterConfigs(t *testing.T) {
	st := c.createTopic(c.manual, "ac", 1, map[string]string{"retention.ms": "1000", "segment.bytes": "4096"})
	wantCode(t, "create", st.ErrorCode, nil)
	for _, v := range []int16{0, 1, 2} {
		mmb := fmt.Sprint(2000 + int(v))
		res := c.alterConfigs(c.manual, v, false, "ac", map[string]*string{"max.message.bytes": kmsg.StringPtr(mmb), "storage.mode": kmsg.StringPtr("local")})
		wantCode(t, fmt.Sprintf("v%d", v), res.ErrorCode, nil)
		if res.ResourceName != "ac" || res.ResourceType != kmsg.ConfigResourceTypeTopic {
			t.Fatalf("answered %v %s", res.ResourceType, res.ResourceName)
		}
		// The whole set is replaced: what was not named is back to default.
		if got := c.storedConfigs(t, "ac"); len(got) != 1 || got["max.message.bytes"] != mmb {
			t.Fatalf("v%d stored %v", v, got)
		}
		c.wantDescribed(t, c.manual, "ac", "retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig)
		c.wantDescribed(t, c.manual, "ac", "max.message.bytes", mmb, kmsg.ConfigSourceDynamicTopicConfig)
	}
	for name, tc := range map[string]struct {
		cfgs map[string]*string
		want *kerr.Error
	}{
		"storage mode": {map[string]*string{"storage.mode": kmsg.StringPtr("diskless")}, kerr.InvalidConfig},
		"unknown key":  {map[string]*string{"retention.ms": kmsg.StringPtr("1"), "nope": kmsg.StringPtr("1")}, kerr.InvalidConfig},
		"bad value":    {map[string]*string{"retention.bytes": kmsg.StringPtr("-7")}, kerr.InvalidConfig},
		"null value":   {map[string]*string{"retention.bytes": nil}, kerr.InvalidRequest},
	} {
		res := c.alterConfigs(c.manual, 2, false, "ac", tc.cfgs)
		wantCode(t, name, res.ErrorCode, tc.want)
		if name == "storage mode" && deref(res.ErrorMessage) != "a local or hybrid topic cannot become diskless" {
			t.Fatalf("storage mode message %q", deref(res.ErrorMessage))
		}
	}
	wantCode(t, "missing", c.alterConfigs(c.manual, 2, false, "ac-missing", nil).ErrorCode, kerr.UnknownTopicOrPartition)
	// ValidateOnly: accepted, nothing written.
	wantCode(t, "validate only", c.alterConfigs(c.manual, 2, true, "ac", map[string]*string{"retention.ms": kmsg.StringPtr("9")}).ErrorCode, nil)
	// An empty set clears every dynamic config.
	wantCode(t, "empty", c.alterConfigs(c.manual, 2, false, "ac", nil).ErrorCode, nil)
	if got := c.storedConfigs(t, "ac"); len(got) != 0 {
		t.Fatalf("after an empty AlterConfigs: %v", got)
	}
	// Brokers are refused.
	req := kmsg.NewPtrAlterConfigsRequest()
	req.Version = 2
	req.Resources = []kmsg.AlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "2",
		Configs: []kmsg.AlterConfigsRequestResourceConfig{{Name: "num.partitions", Value: kmsg.StringPtr("2")}}}}
	wantCode(t, "broker", c.raw(c.manual, req).(*kmsg.AlterConfigsResponse).Resources[0].ErrorCode, kerr.InvalidRequest)
}

// testConcurrentAlters changes different configs of one topic at once
// through both gateways: every change lands (compare-and-swap, retried on
// the latest definition), none overwrites another.
func (c *cluster) testConcurrentAlters(t *testing.T) {
	c.mustCreate(c.manual, "iac-race", 1)
	names := []string{"retention.ms", "retention.bytes", "segment.bytes", "segment.ms", "max.message.bytes",
		"remote.storage.batch.size.bytes", "remote.storage.batch.timeout.ms", "remote.storage.upload.parallelism"}
	var wg sync.WaitGroup
	codes := make([]int16, len(names))
	for i, name := range names {
		g := c.auto
		if i%2 == 1 {
			g = c.manual
		}
		wg.Go(func() {
			codes[i] = c.incremental(g, 1, false, topicRes("iac-race", op(name, kmsg.IncrementalAlterConfigOpSet, "4096")))[0].ErrorCode
		})
	}
	wg.Wait()
	got := c.storedConfigs(t, "iac-race")
	for i, name := range names {
		switch {
		case codes[i] == 0 && got[name] != "4096":
			t.Fatalf("%s acknowledged but lost: %v", name, got)
		case codes[i] != 0 && codes[i] != kerr.RequestTimedOut.Code:
			t.Fatalf("%s: %v", name, kerr.ErrorForCode(codes[i]))
		}
	}
}

func (c *cluster) testKadmAlterConfigs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := c.admin(c.auto)
	c.mustCreate(c.auto, "kadm-alter", 1)
	resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: kmsg.StringPtr("3600000")}}, "kadm-alter")
	if err == nil {
		_, err = resp.On("kadm-alter", nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	rc, err := adm.DescribeTopicConfigs(ctx, "kadm-alter")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := rc.On("kadm-alter", nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, cf := range cfg.Configs {
		found = found || (cf.Key == "retention.ms" && cf.MaybeValue() == "3600000")
	}
	if !found {
		t.Fatalf("retention.ms not described as changed: %+v", cfg.Configs)
	}
	// kadm's non-incremental AlterTopicConfigsState uses AlterConfigs.
	resp, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "storage.mode", Value: kmsg.StringPtr("diskless")}}, "kadm-alter")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := resp.On("kadm-alter", nil); r.Err != kerr.InvalidConfig || r.ErrMessage != "a local or hybrid topic cannot become diskless" {
		t.Fatalf("storage.mode change through kadm: %v %q", r.Err, r.ErrMessage)
	}
	resp, err = adm.ValidateAlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "bogus", Value: kmsg.StringPtr("1")}}, "kadm-alter")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := resp.On("kadm-alter", nil); r.Err != kerr.InvalidConfig {
		t.Fatalf("validate unknown key through kadm: %v", r.Err)
	}
	if st, _ := c.store.GetTopic(ctx, "kadm-alter"); st.Configs["retention.ms"] != "3600000" || st.StorageMode != meta.StorageLocal {
		t.Fatalf("stored %+v", st)
	}
}

func (c *cluster) testDeleteRecordsErrors(t *testing.T) {
	c.mustCreate(c.auto, "dr", 2)
	for _, v := range []int16{0, 1, 2} {
		req := kmsg.NewPtrDeleteRecordsRequest()
		req.Version, req.TimeoutMillis = v, 5000
		part := func(p int32, off int64) kmsg.DeleteRecordsRequestTopicPartition {
			return kmsg.DeleteRecordsRequestTopicPartition{Partition: p, Offset: off}
		}
		req.Topics = []kmsg.DeleteRecordsRequestTopic{
			{Topic: "dr", Partitions: []kmsg.DeleteRecordsRequestTopicPartition{part(0, -2), part(1, 5), part(9, 0)}},
			{Topic: "dr-missing", Partitions: []kmsg.DeleteRecordsRequestTopicPartition{part(0, 0)}},
			{Topic: "d r", Partitions: []kmsg.DeleteRecordsRequestTopicPartition{part(0, 0)}},
		}
		start := time.Now()
		resp := c.raw(c.auto, req).(*kmsg.DeleteRecordsResponse) // the gateway that created "dr" has it in its cache
		if d := time.Since(start); d > 4*time.Second {
			t.Fatalf("v%d answered after %v; a refused connection should fail fast", v, d)
		}
		if len(resp.Topics) != 3 || len(resp.Topics[0].Partitions) != 3 {
			t.Fatalf("v%d answer shape %+v", v, resp.Topics)
		}
		dr := resp.Topics[0].Partitions
		wantCode(t, "offset -2", dr[0].ErrorCode, kerr.OffsetOutOfRange)
		// The leader is registered but not running: retriable.
		wantCode(t, "dead leader", dr[1].ErrorCode, kerr.NotLeaderForPartition)
		wantCode(t, "missing partition", dr[2].ErrorCode, kerr.UnknownTopicOrPartition)
		wantCode(t, "missing topic", resp.Topics[1].Partitions[0].ErrorCode, kerr.UnknownTopicOrPartition)
		wantCode(t, "bad name", resp.Topics[2].Partitions[0].ErrorCode, kerr.InvalidTopicException)
		for _, rt := range resp.Topics {
			for _, p := range rt.Partitions {
				if p.LowWatermark != -1 {
					t.Fatalf("v%d: %s/%d failed with low watermark %d, want -1", v, rt.Topic, p.Partition, p.LowWatermark)
				}
			}
		}
		if dr[0].Partition != 0 || dr[1].Partition != 1 || dr[2].Partition != 9 {
			t.Fatalf("v%d partitions answered out of order: %+v", v, dr)
		}
	}
}
