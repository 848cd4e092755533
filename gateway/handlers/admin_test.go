package handlers_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/streamline-dev/streamline/gateway"
	"github.com/streamline-dev/streamline/gateway/internal/kafkatest"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The admin and metadata APIs against real etcd, two real gateways and
// real TCP. Subtests share the cluster and use their own topic names.
func TestAdminAPIs(t *testing.T) {
	c := startCluster(t)
	t.Run("ApiVersionsListsRegisteredKeys", c.testApiVersions)
	t.Run("ApiVersionsUnsupportedVersion", c.testApiVersionsUnsupported)
	t.Run("MetadataAllTopicsAndBrokers", c.testMetadataAll)
	t.Run("MetadataAutoCreate", c.testMetadataAutoCreate)
	t.Run("MetadataInvalidTopicName", c.testMetadataInvalidName)
	t.Run("MetadataLeaderNotAvailable", c.testMetadataLeaderNotAvailable)
	t.Run("MetadataByTopicID", c.testMetadataByID)
	t.Run("CreateTopics", c.testCreateTopics)
	t.Run("CreateTopicsNameCollision", c.testCreateTopicsCollision)
	t.Run("DeleteTopics", c.testDeleteTopics)
	t.Run("CreatePartitions", c.testCreatePartitions)
	t.Run("DescribeConfigs", c.testDescribeConfigs)
	t.Run("InitProducerIDUniqueAcrossGateways", c.testInitProducerID)
	t.Run("DescribeCluster", c.testDescribeCluster)
	t.Run("FranzGoAdminClient", c.testKadm)
}

func (c *cluster) testCreateTopics(t *testing.T) {
	ctx := context.Background()
	ok := c.createTopic(c.auto, "ct-default", -1, map[string]string{"retention.ms": "1000"})
	wantCode(t, "create", ok.ErrorCode, nil)
	stored, err := c.store.GetTopic(ctx, "ct-default")
	if err != nil {
		t.Fatal(err)
	}
	if ok.NumPartitions != 3 || stored.Partitions != 3 || ok.TopicID != stored.ID || stored.Configs["retention.ms"] != "1000" {
		t.Fatalf("answered %d partitions id %x, stored %+v", ok.NumPartitions, ok.TopicID, stored)
	}
	cfgs := map[string]string{}
	for _, cf := range ok.Configs {
		cfgs[cf.Name] = deref(cf.Value)
	}
	if cfgs["storage.mode"] != "local" || cfgs["retention.ms"] != "1000" {
		t.Fatalf("v7 configs %v", cfgs)
	}

	wantCode(t, "duplicate", c.createTopic(c.manual, "ct-default", 1, nil).ErrorCode, kerr.TopicAlreadyExists)
	bad := c.createTopic(c.manual, "ct-bad", 1, map[string]string{"retention.ms": "soon"})
	wantCode(t, "bad config", bad.ErrorCode, kerr.InvalidConfig)
	wantCode(t, "unknown config", c.createTopic(c.manual, "ct-bad", 1, map[string]string{"no.such": "1"}).ErrorCode, kerr.InvalidConfig)
	wantCode(t, "bad storage mode", c.createTopic(c.manual, "ct-bad", 1, map[string]string{"storage.mode": "cloud"}).ErrorCode, kerr.InvalidConfig)
	hybrid := c.createTopic(c.manual, "ct-bad", 1, map[string]string{"storage.mode": "hybrid"})
	wantCode(t, "hybrid", hybrid.ErrorCode, kerr.InvalidConfig)
	if msg := deref(hybrid.ErrorMessage); !strings.HasPrefix(msg, "storage.mode=hybrid needs an object store: ") || !strings.Contains(msg, "--object-store") {
		t.Fatalf("hybrid message %q does not say what is missing", msg)
	}
	// Local retention: -3 is below the minimum -2; a local limit above the
	// total limit is refused as Kafka refuses it.
	for cfgs, want := range map[[2]string]string{
		{"local.retention.ms", "-3"}:        "local.retention.ms",
		{"local.retention.bytes", "-3"}:     "local.retention.bytes",
		{"local.retention.ms", "604800001"}: "local.retention.ms must not be more than retention.ms",
	} {
		st := c.createTopic(c.manual, "ct-bad", 1, map[string]string{cfgs[0]: cfgs[1]})
		wantCode(t, cfgs[0]+"="+cfgs[1], st.ErrorCode, kerr.InvalidConfig)
		if !strings.Contains(deref(st.ErrorMessage), want) {
			t.Fatalf("%s=%s: message %q does not mention %q", cfgs[0], cfgs[1], deref(st.ErrorMessage), want)
		}
	}
	// ... judged against the server default (retention.bytes=1048576 on
	// the auto gateway), and accepted at -2, -1 and within the limit.
	wantCode(t, "local bytes over the server default", c.createTopic(c.auto, "ct-bad", 1, map[string]string{"local.retention.bytes": "1048577"}).ErrorCode, kerr.InvalidConfig)
	lr := c.createTopic(c.auto, "ct-local-retention", 1, map[string]string{"local.retention.ms": "-1", "local.retention.bytes": "1048576"})
	wantCode(t, "local retention", lr.ErrorCode, nil)
	diskless := c.createTopic(c.manual, "ct-bad", 1, map[string]string{"storage.mode": "diskless"})
	wantCode(t, "diskless", diskless.ErrorCode, kerr.InvalidConfig)
	// No log-service node or uploader here has an object store.
	if msg := deref(diskless.ErrorMessage); !strings.Contains(msg, "needs an object store") || !strings.Contains(msg, "--object-store") {
		t.Fatalf("diskless message %q does not say what is missing", msg)
	}
	wantCode(t, "zero partitions", c.createTopic(c.manual, "ct-bad", 0, nil).ErrorCode, kerr.InvalidPartitions)
	wantCode(t, "bad name", c.createTopic(c.manual, "ct bad", 1, nil).ErrorCode, kerr.InvalidTopicException)

	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version, req.TimeoutMillis = 7, 10000
	rf3 := kmsg.NewCreateTopicsRequestTopic()
	rf3.Topic, rf3.NumPartitions, rf3.ReplicationFactor = "ct-rf3", 1, 3
	rf1 := kmsg.NewCreateTopicsRequestTopic()
	rf1.Topic, rf1.NumPartitions, rf1.ReplicationFactor = "ct-validate", 2, 1
	req.Topics = []kmsg.CreateTopicsRequestTopic{rf3, rf1}
	req.ValidateOnly = true
	resp := c.raw(c.manual, req).(*kmsg.CreateTopicsResponse)
	wantCode(t, "replication factor 3", resp.Topics[0].ErrorCode, kerr.InvalidReplicationFactor)
	if !strings.Contains(deref(resp.Topics[0].ErrorMessage), "replicat") {
		t.Fatalf("replication factor message %q", deref(resp.Topics[0].ErrorMessage))
	}
	wantCode(t, "validate only", resp.Topics[1].ErrorCode, nil)
	if resp.Topics[1].NumPartitions != 2 {
		t.Fatalf("validate_only answered %d partitions", resp.Topics[1].NumPartitions)
	}
	if _, err := c.store.GetTopic(ctx, "ct-validate"); !errors.Is(err, meta.ErrTopicNotFound) {
		t.Fatalf("validate_only created the topic: %v", err)
	}
	if len(c.metadata(c.manual, []string{"ct-rf3"}).Topics[0].Partitions) != 0 {
		t.Fatal("refused topic exists")
	}

	// The same name twice in one request is refused for both.
	req.ValidateOnly = false
	req.Topics = []kmsg.CreateTopicsRequestTopic{rf1, rf1}
	for _, st := range c.raw(c.manual, req).(*kmsg.CreateTopicsResponse).Topics {
		wantCode(t, "name twice", st.ErrorCode, kerr.InvalidRequest)
	}
}

func (c *cluster) testDeleteTopics(t *testing.T) {
	c.mustCreate(c.manual, "del-name", 1)
	byID := c.createTopic(c.auto, "del-id", 1, nil) // the deleting gateway knows the id at once

	v5 := kmsg.NewPtrDeleteTopicsRequest()
	v5.Version, v5.TimeoutMillis = 5, 10000
	v5.TopicNames = []string{"del-name", "del-missing", "bad name"}
	resp := c.raw(c.auto, v5).(*kmsg.DeleteTopicsResponse)
	wantCode(t, "delete by name", resp.Topics[0].ErrorCode, nil)
	wantCode(t, "delete missing", resp.Topics[1].ErrorCode, kerr.UnknownTopicOrPartition)
	wantCode(t, "delete bad name", resp.Topics[2].ErrorCode, kerr.InvalidTopicException)
	if _, err := c.store.GetTopic(context.Background(), "del-name"); !errors.Is(err, meta.ErrTopicNotFound) {
		t.Fatalf("topic still stored: %v", err)
	}
	// The deleting gateway answers from a cache that already saw it.
	wantCode(t, "metadata after delete", c.metadata(c.auto, []string{"del-name"}).Topics[0].ErrorCode, kerr.UnknownTopicOrPartition)

	v6 := kmsg.NewPtrDeleteTopicsRequest()
	v6.Version, v6.TimeoutMillis = 6, 10000
	v6.Topics = []kmsg.DeleteTopicsRequestTopic{{TopicID: byID.TopicID}, {TopicID: [16]byte{1, 2, 3}}}
	resp = c.raw(c.auto, v6).(*kmsg.DeleteTopicsResponse)
	wantCode(t, "delete by id", resp.Topics[0].ErrorCode, nil)
	if deref(resp.Topics[0].Topic) != "del-id" {
		t.Fatalf("delete by id answered name %q", deref(resp.Topics[0].Topic))
	}
	wantCode(t, "delete unknown id", resp.Topics[1].ErrorCode, kerr.UnknownTopicID)
}

func (c *cluster) testCreatePartitions(t *testing.T) {
	c.mustCreate(c.manual, "grow", 1)
	send := func(count int32, validateOnly bool, topic string) kmsg.CreatePartitionsResponseTopic {
		req := kmsg.NewPtrCreatePartitionsRequest()
		req.Version, req.TimeoutMillis, req.ValidateOnly = 3, 10000, validateOnly
		req.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: topic, Count: count}}
		return c.raw(c.manual, req).(*kmsg.CreatePartitionsResponse).Topics[0]
	}
	wantCode(t, "validate only", send(5, true, "grow").ErrorCode, nil)
	if n := len(c.metadata(c.manual, []string{"grow"}).Topics[0].Partitions); n != 1 {
		t.Fatalf("validate_only changed the topic to %d partitions", n)
	}
	wantCode(t, "grow", send(3, false, "grow").ErrorCode, nil)
	if n := len(c.metadata(c.manual, []string{"grow"}).Topics[0].Partitions); n != 3 {
		t.Fatalf("after growing: %d partitions", n)
	}
	shrink := send(2, false, "grow")
	wantCode(t, "shrink", shrink.ErrorCode, kerr.InvalidPartitions)
	if shrink.ErrorMessage == nil {
		t.Fatal("shrink error has no message")
	}
	wantCode(t, "missing topic", send(2, false, "grow-missing").ErrorCode, kerr.UnknownTopicOrPartition)
	wantCode(t, "too many", send(meta.MaxPartitions+1, false, "grow").ErrorCode, kerr.InvalidPartitions)
}

func (c *cluster) testDescribeConfigs(t *testing.T) {
	st := c.createTopic(c.auto, "cfg", 1, map[string]string{"storage.mode": "local", "retention.ms": "5000"})
	wantCode(t, "create", st.ErrorCode, nil)
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.Version, req.IncludeDocumentation, req.IncludeSynonyms = 4, true, true
	req.Resources = []kmsg.DescribeConfigsRequestResource{
		{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "cfg"},
		{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "cfg-missing"},
		{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "1"},
		{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "cfg", ConfigNames: []string{"storage.mode"}},
	}
	resp := c.raw(c.auto, req).(*kmsg.DescribeConfigsResponse)
	wantCode(t, "topic", resp.Resources[0].ErrorCode, nil)
	got := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
	for _, cf := range resp.Resources[0].Configs {
		got[cf.Name] = cf
	}
	if len(got) != len(meta.TopicConfigDefs()) {
		t.Fatalf("%d configs described, %d known", len(got), len(meta.TopicConfigDefs()))
	}
	for name, want := range map[string]struct {
		value  string
		source kmsg.ConfigSource
	}{
		"storage.mode":    {"local", kmsg.ConfigSourceDynamicTopicConfig},
		"retention.ms":    {"5000", kmsg.ConfigSourceDynamicTopicConfig},
		"retention.bytes": {"1048576", kmsg.ConfigSourceStaticBrokerConfig},
		"segment.bytes":   {"1073741824", kmsg.ConfigSourceDefaultConfig},
	} {
		cf := got[name]
		if deref(cf.Value) != want.value || cf.Source != want.source {
			t.Fatalf("%s = %q from %v, want %q from %v", name, deref(cf.Value), cf.Source, want.value, want.source)
		}
	}
	// A local topic's mode may become hybrid: not read-only.
	if sm := got["storage.mode"]; sm.ReadOnly || sm.ConfigType != kmsg.ConfigTypeString || sm.Documentation == nil || len(sm.ConfigSynonyms) == 0 {
		t.Fatalf("storage.mode details: %+v", sm)
	}
	// The KIP-405 local retention configs, at their default -2.
	for _, name := range []string{"local.retention.ms", "local.retention.bytes"} {
		if cf := got[name]; deref(cf.Value) != "-2" || cf.Source != kmsg.ConfigSourceDefaultConfig || cf.ConfigType != kmsg.ConfigTypeLong || cf.ReadOnly {
			t.Fatalf("%s: %+v", name, cf)
		}
	}
	wantCode(t, "missing topic", resp.Resources[1].ErrorCode, kerr.UnknownTopicOrPartition)
	wantCode(t, "broker", resp.Resources[2].ErrorCode, nil)
	if !slices.ContainsFunc(resp.Resources[2].Configs, func(cf kmsg.DescribeConfigsResponseResourceConfig) bool {
		return cf.Name == "auto.create.topics.enable" && deref(cf.Value) == "true"
	}) {
		t.Fatalf("broker configs %+v", resp.Resources[2].Configs)
	}
	if cs := resp.Resources[3].Configs; len(cs) != 1 || cs[0].Name != "storage.mode" {
		t.Fatalf("subset: %+v", cs)
	}
}

func (c *cluster) testInitProducerID(t *testing.T) {
	const perGateway = 10
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for _, g := range c.gateways() {
		addr := g.Host + ":" + strconv.Itoa(int(g.Port))
		for range perGateway {
			wg.Go(func() {
				req := kmsg.NewPtrInitProducerIDRequest()
				req.Version = 4
				conn := kafkatest.Dial(t, addr)
				resp := conn.RoundTrip(req).(*kmsg.InitProducerIDResponse)
				mu.Lock()
				defer mu.Unlock()
				if resp.ErrorCode != 0 || resp.ProducerEpoch != 0 || seen[resp.ProducerID] {
					t.Errorf("producer id %d epoch %d error %v (duplicate: %v)", resp.ProducerID, resp.ProducerEpoch, kerr.ErrorForCode(resp.ErrorCode), seen[resp.ProducerID])
				}
				seen[resp.ProducerID] = true
			})
		}
	}
	wg.Wait()
	if len(seen) != 2*perGateway {
		t.Fatalf("%d distinct producer ids, want %d", len(seen), 2*perGateway)
	}
	// (Transactional ids: TestTransactionAPIs.)
}

func (c *cluster) testDescribeCluster(t *testing.T) {
	req := kmsg.NewPtrDescribeClusterRequest()
	req.Version = 1
	resp := c.raw(c.manual, req).(*kmsg.DescribeClusterResponse)
	wantCode(t, "describe cluster", resp.ErrorCode, nil)
	if resp.ClusterID != "test-cluster" || resp.ControllerID != 1 || len(resp.Brokers) != 2 || resp.Brokers[1].NodeID != 2 {
		t.Fatalf("describe cluster: %+v", resp)
	}
	req.EndpointType = 2
	wantCode(t, "controller endpoint", c.raw(c.manual, req).(*kmsg.DescribeClusterResponse).ErrorCode, kerr.MismatchedEndpointType)
}

// testKadm drives the gateways with franz-go's own admin client, which
// negotiates versions through ApiVersions like any real client.
func (c *cluster) testKadm(t *testing.T) {
	ctx := context.Background()
	adm := c.admin(c.manual)
	created, err := adm.CreateTopic(ctx, 2, -1, map[string]*string{"storage.mode": kmsg.StringPtr("local")}, "kadm-topic")
	if err != nil || created.Err != nil {
		t.Fatalf("create: %v %v", err, created.Err)
	}
	// kadm may ask either gateway next; wait until both know the topic.
	for _, g := range []*gateway.Gateway{c.auto, c.manual} {
		waitFor(t, func() bool { return c.metadata(g, []string{"kadm-topic"}).Topics[0].ErrorCode == 0 })
	}
	details, err := adm.ListTopics(ctx, "kadm-topic")
	if err != nil || details["kadm-topic"].Err != nil || len(details["kadm-topic"].Partitions) != 2 {
		t.Fatalf("list: %v %+v", err, details)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "kadm-topic")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("kadm-topic", nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe configs: %v %v", err, rc.Err)
	}
	if !slices.ContainsFunc(rc.Configs, func(cf kadm.Config) bool { return cf.Key == "storage.mode" && deref(cf.Value) == "local" }) {
		t.Fatalf("storage.mode not described: %+v", rc.Configs)
	}
	// Hybrid needs an object store, which no log-service node or uploader
	// here has: the answer says what is missing.
	bad, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"storage.mode": kmsg.StringPtr("hybrid")}, "kadm-hybrid")
	if !errors.Is(err, kerr.InvalidConfig) || !strings.HasPrefix(bad.ErrMessage, "storage.mode=hybrid needs an object store: ") ||
		!strings.Contains(bad.ErrMessage, "--object-store") {
		t.Fatalf("hybrid create: %v %q", err, bad.ErrMessage)
	}
	deleted, err := adm.DeleteTopics(ctx, "kadm-topic")
	if err != nil || deleted["kadm-topic"].Err != nil {
		t.Fatalf("delete: %v %+v", err, deleted)
	}
}

// Kafka's '.'/'_' collision rule through a real Kafka client: CreateTopics
// (validate_only too) and Metadata auto-creation refuse the other spelling
// with INVALID_TOPIC_EXCEPTION naming the existing topic; after a delete
// the other spelling can be created.
func (c *cluster) testCreateTopicsCollision(t *testing.T) {
	ctx := context.Background()
	adm := c.admin(c.manual)
	if r, err := adm.CreateTopic(ctx, 1, -1, nil, "col.x"); err != nil || r.Err != nil {
		t.Fatalf("create col.x: %v %v", err, r.Err)
	}
	wantCollision := func(what string, r kadm.CreateTopicResponse, err error) {
		t.Helper()
		// kadm's CreateTopic also returns the topic's error as err.
		if err != nil && !errors.Is(err, kerr.InvalidTopicException) || !errors.Is(r.Err, kerr.InvalidTopicException) ||
			r.ErrMessage != "Topic 'col_x' collides with existing topic: col.x" {
			t.Fatalf("%s: err %v, topic err %v %q; want INVALID_TOPIC_EXCEPTION naming col.x", what, err, r.Err, r.ErrMessage)
		}
	}
	// Both gateways: the one that created it and the other.
	for _, g := range []*gateway.Gateway{c.manual, c.auto} {
		a := c.admin(g)
		r, err := a.CreateTopic(ctx, 1, -1, nil, "col_x")
		wantCollision("create col_x", r, err)
		rs, err := a.ValidateCreateTopics(ctx, 1, -1, nil, "col_x")
		if err == nil {
			r, err = rs.On("col_x", nil)
		}
		wantCollision("validate_only col_x", r, err)
	}
	// Auto-creation (the auto gateway creates missing topics on Metadata).
	md := kmsg.NewPtrMetadataRequest()
	md.Version, md.AllowAutoTopicCreation = 12, true
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("col_x")}}
	if code := c.raw(c.auto, md).(*kmsg.MetadataResponse).Topics[0].ErrorCode; code != kerr.InvalidTopicException.Code {
		t.Fatalf("metadata auto-create col_x: code %d, want INVALID_TOPIC_EXCEPTION", code)
	}
	if _, err := c.store.GetTopic(ctx, "col_x"); !errors.Is(err, meta.ErrTopicNotFound) {
		t.Fatalf("col_x was stored: %v", err)
	}

	if r, err := adm.DeleteTopic(ctx, "col.x"); err != nil || r.Err != nil {
		t.Fatalf("delete col.x: %v %v", err, r.Err)
	}
	for _, g := range []*gateway.Gateway{c.auto, c.manual} {
		waitFor(t, func() bool { return c.metadata(g, []string{"col.x"}).Topics[0].ErrorCode != 0 })
	}
	if r, err := adm.CreateTopic(ctx, 1, -1, nil, "col_x"); err != nil || r.Err != nil {
		t.Fatalf("create col_x after deleting col.x: %v %v", err, r.Err)
	}
	waitFor(t, func() bool { return c.metadata(c.auto, []string{"col_x"}).Topics[0].ErrorCode == 0 })
	r, err := adm.CreateTopic(ctx, 1, -1, nil, "col.x")
	if !errors.Is(r.Err, kerr.InvalidTopicException) || !strings.Contains(r.ErrMessage, "collides with existing topic: col_x") {
		t.Fatalf("create col.x while col_x exists: %v %v %q", err, r.Err, r.ErrMessage)
	}
}
