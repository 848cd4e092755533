package handlers

import (
	"context"
	"fmt"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/ops"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreateTopics: v0-7
//
// Behaviour (the rules are ops.CreateTopic's):
// * Names follow Kafka's rules (INVALID_TOPIC_EXCEPTION); a name given twice
//   in one request fails every occurrence with INVALID_REQUEST, as in Kafka.
// * NumPartitions -1 means the gateway default; 1..meta.MaxPartitions is
//   accepted, anything else is INVALID_PARTITIONS.
// * ReplicationFactor -1 or 1 is accepted (log-service nodes do not
//   replicate yet); others are INVALID_REPLICATION_FACTOR with a message.
//   Manual replica assignments are INVALID_REPLICA_ASSIGNMENT: placement
//   belongs to the log-service leadership in etcd.
// * Configs are checked with meta.ValidateTopicConfig (INVALID_CONFIG with
//   the reason), then together (meta.ValidateTopicConfigs:
//   local.retention.ms not more than retention.ms, local.retention.bytes
//   not more than retention.bytes); storage.mode picks the topic's storage
//   mode, and a mode this build cannot serve is INVALID_CONFIG with
//   StorageMode.Supported's message; hybrid and diskless need the
//   cluster's object store (INVALID_CONFIG "storage.mode=<mode> needs an
//   object store: <what is missing>"). Configs are stored only when set,
//   so server defaults keep applying to topics that did not override them.
// * validate_only runs every check, existence included, and writes nothing.
// * A name colliding with an existing topic's ('.' and '_' are the same:
//   col.x and col_x) is INVALID_TOPIC_EXCEPTION with Kafka's message,
//   validate_only included; the creating etcd transaction enforces it
//   against concurrent creators (meta/collision.go).
// * An existing topic is TOPIC_ALREADY_EXISTS; no live log-service node to
//   place partitions on is INVALID_REPLICATION_FACTOR (Kafka's answer when
//   there are fewer brokers than replicas).
// * After writing, the gateway waits (up to the request timeout) for its
//   cache to reflect the new topics, so the client's next Metadata here
//   sees them; if that wait times out the topic is REQUEST_TIMED_OUT
//   (it was created; a retry gets TOPIC_ALREADY_EXISTS).
//
// Version notes:
// * v1: ValidateOnly, ErrorMessage; v4: -1 defaults; v5: flexible, answers
//   carry partitions, replication factor and configs; v7: topic id.

func init() { register(19, 0, 7, false, (*Handlers).handleCreateTopics) }

func (h *Handlers) handleCreateTopics(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	count := map[string]int{}
	for _, rt := range req.Topics {
		count[rt.Topic]++
	}
	created := map[int]*meta.Topic{}
	var maxRev int64
	resp.Topics = make([]kmsg.CreateTopicsResponseTopic, len(req.Topics))
	for i, rt := range req.Topics {
		st := &resp.Topics[i]
		*st = kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		fail := func(ke *kerr.Error, msg string) { st.ErrorCode, st.ErrorMessage = ke.Code, msgp(msg) }
		if count[rt.Topic] > 1 {
			fail(kerr.InvalidRequest, fmt.Sprintf("topic %s appears more than once in the request", rt.Topic))
			continue
		}
		if len(rt.ReplicaAssignment) > 0 {
			fail(kerr.InvalidReplicaAssignment, "manual replica assignment is not supported: the cluster places partitions")
			continue
		}
		spec := ops.TopicSpec{Name: rt.Topic, Partitions: rt.NumPartitions, ReplicationFactor: rt.ReplicationFactor}
		for _, c := range rt.Configs {
			spec.Configs = append(spec.Configs, ops.ConfigEntry{Name: c.Name, Value: c.Value})
		}
		t, rev, e := h.ops.CreateTopic(ctx, spec, req.ValidateOnly)
		if e != nil {
			fail(e.Code, e.Msg)
			continue
		}
		maxRev = max(maxRev, rev)
		created[i] = t
	}
	if maxRev > 0 {
		if err := h.waitRevision(ctx, maxRev, req.TimeoutMillis); err != nil {
			for i := range created {
				st := &resp.Topics[i]
				st.ErrorCode = kerr.RequestTimedOut.Code
				st.ErrorMessage = strp("topic created, but this gateway has not seen it yet")
			}
			return resp, nil
		}
	}
	for i, t := range created {
		h.describeCreated(&resp.Topics[i], t)
	}
	return resp, nil
}

// describeCreated fills the v5+ details of a created (or validated) topic.
func (h *Handlers) describeCreated(st *kmsg.CreateTopicsResponseTopic, t *meta.Topic) {
	st.TopicID = t.ID
	st.NumPartitions = t.Partitions
	st.ReplicationFactor = t.ReplicationFactor
	for _, tc := range h.ops.TopicConfigs(t, nil) {
		c := kmsg.NewCreateTopicsResponseTopicConfig()
		c.Name, c.Value = tc.Definition.Name, strp(tc.Value)
		c.ReadOnly = tc.ReadOnly
		c.Source = int8(configSource(tc.ConfigValue))
		st.Configs = append(st.Configs, c)
	}
}
