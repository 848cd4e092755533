package handlers

import (
	"context"
	"fmt"
	"strconv"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/ops"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeConfigs: v0-4
//
// Behaviour:
// * TOPIC resources: every known topic config (meta.TopicConfigDefs), or
//   the requested subset (unknown names are left out, as in Kafka), with
//   the value from Topic.Effective. Source: DYNAMIC_TOPIC_CONFIG when set
//   on the topic (storage.mode always is: it is the topic's mode, read-only
//   for diskless topics, whose mode is fixed at creation),
//   STATIC_BROKER_CONFIG when set by a gateway flag,
//   DEFAULT_CONFIG otherwise. Synonyms (v1+, when asked) list the layers
//   that have a value, most specific first. Types and documentation from v3.
//   A missing topic is UNKNOWN_TOPIC_OR_PARTITION, a bad name
//   INVALID_TOPIC_EXCEPTION.
// * BROKER resources: this gateway (name "" or its node id) answers its
//   own read-only settings; another node id is INVALID_REQUEST, because
//   broker configs are described on the broker itself (clients route there).
// * Other resource types are INVALID_REQUEST.
//
// Version notes:
// * v1: Source, IncludeSynonyms; v3: ConfigType, Documentation; v4: flexible.

func init() { register(32, 0, 4, false, (*Handlers).handleDescribeConfigs) }

func (h *Handlers) handleDescribeConfigs(_ context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range req.Resources {
		res := kmsg.NewDescribeConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			h.describeTopicConfigs(req, rr, &res)
		case kmsg.ConfigResourceTypeBroker:
			h.describeBrokerConfigs(req, rr, &res)
		default:
			res.ErrorCode = kerr.InvalidRequest.Code
			res.ErrorMessage = strp(fmt.Sprintf("describing %s configs is not supported", rr.ResourceType))
		}
		resp.Resources = append(resp.Resources, res)
	}
	return resp, nil
}

func (h *Handlers) describeTopicConfigs(req *kmsg.DescribeConfigsRequest, rr kmsg.DescribeConfigsRequestResource, res *kmsg.DescribeConfigsResponseResource) {
	if ke, msg := topicNameError(rr.ResourceName); ke != nil {
		res.ErrorCode, res.ErrorMessage = ke.Code, strp(msg)
		return
	}
	t, ok := h.cache.Topic(rr.ResourceName)
	if !ok {
		res.ErrorCode = kerr.UnknownTopicOrPartition.Code
		res.ErrorMessage = strp("topic " + rr.ResourceName + " does not exist")
		return
	}
	for _, tc := range h.ops.TopicConfigs(&t, wanted(rr.ConfigNames)) {
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name, c.Value = tc.Definition.Name, strp(tc.Value)
		c.Source = configSource(tc.ConfigValue)
		c.IsDefault = c.Source == kmsg.ConfigSourceDefaultConfig
		c.ReadOnly = tc.ReadOnly
		c.ConfigType = kmsg.ConfigType(tc.Definition.Type)
		if req.IncludeDocumentation {
			c.Documentation = strp(tc.Definition.Doc)
		}
		if req.IncludeSynonyms {
			for _, syn := range tc.Synonyms {
				s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
				s.Name, s.Value, s.Source = tc.Definition.Name, strp(syn.Value), layerSource[syn.Layer]
				c.ConfigSynonyms = append(c.ConfigSynonyms, s)
			}
		}
		res.Configs = append(res.Configs, c)
	}
}

// layerSource is Kafka's name for each layer of a config's value.
var layerSource = map[ops.ConfigLayer]kmsg.ConfigSource{
	ops.LayerTopic:   kmsg.ConfigSourceDynamicTopicConfig,
	ops.LayerServer:  kmsg.ConfigSourceStaticBrokerConfig,
	ops.LayerDefault: kmsg.ConfigSourceDefaultConfig,
}

// configSource is Kafka's name for where a topic config's value comes from.
func configSource(cv meta.ConfigValue) kmsg.ConfigSource { return layerSource[ops.Layer(cv)] }

func (h *Handlers) describeBrokerConfigs(req *kmsg.DescribeConfigsRequest, rr kmsg.DescribeConfigsRequestResource, res *kmsg.DescribeConfigsResponseResource) {
	self := strconv.Itoa(int(h.cfg.Self.NodeID))
	if rr.ResourceName != "" && rr.ResourceName != self {
		res.ErrorCode = kerr.InvalidRequest.Code
		res.ErrorMessage = strp(fmt.Sprintf("this is broker %s; describe broker %s's configs on that broker", self, rr.ResourceName))
		return
	}
	want := wanted(rr.ConfigNames)
	for _, bc := range h.brokerConfigs() {
		if want != nil && !want[bc.name] {
			continue
		}
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name, c.Value, c.ReadOnly = bc.name, strp(bc.value), true
		c.Source = kmsg.ConfigSourceStaticBrokerConfig
		c.ConfigType = bc.typ
		if req.IncludeDocumentation {
			c.Documentation = strp(bc.doc)
		}
		res.Configs = append(res.Configs, c)
	}
}

type brokerConfig struct {
	name, value, doc string
	typ              kmsg.ConfigType
}

// brokerConfigs are the gateway settings a Kafka admin tool may look for,
// under Kafka's broker config names where Kafka has one.
func (h *Handlers) brokerConfigs() []brokerConfig {
	c := h.cfg
	return []brokerConfig{
		{"auto.create.topics.enable", strconv.FormatBool(c.AutoCreateTopics), "Metadata requests create missing topics", kmsg.ConfigTypeBoolean},
		{"broker.rack", c.Self.Rack, "rack advertised for this gateway", kmsg.ConfigTypeString},
		{"default.replication.factor", "1", "log-service nodes do not replicate yet", kmsg.ConfigTypeShort},
		{"default.storage.mode", string(c.DefaultStorageMode), "storage.mode of topics that do not set one", kmsg.ConfigTypeString},
		{"node.id", strconv.Itoa(int(c.Self.NodeID)), "this gateway's Kafka node id", kmsg.ConfigTypeInt},
		{"num.partitions", strconv.Itoa(int(c.DefaultPartitions)), "partitions of topics created without a count", kmsg.ConfigTypeInt},
		{"socket.request.max.bytes", strconv.Itoa(int(c.MaxRequestBytes)), "largest request frame accepted", kmsg.ConfigTypeInt},
	}
}

// wanted returns the requested config names, or nil for all.
func wanted(names []string) map[string]bool {
	if names == nil {
		return nil
	}
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
