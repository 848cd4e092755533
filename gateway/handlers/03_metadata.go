package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/ops"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Metadata: v0-12
//
// Behaviour:
// * Brokers are the live gateways (this one always included); the
//   controller is the lowest live gateway node id; the cluster id is fixed
//   by configuration.
// * Each partition's leader is a gateway picked by leaderGateway (spread by
//   topic hash and partition, identical on every gateway); replicas, ISR
//   and offline replicas are the broker ids of the partition's log-service
//   replicas (ops.ReplicaIDs: 1000 and up, not in the broker list); the
//   leader epoch is the logsvc leader epoch from etcd. If the leading log-service node is not
//   live the partition has LEADER_NOT_AVAILABLE and leader -1.
// * All topics: v0 with an empty list, v1+ with a null list.
// * A missing topic is UNKNOWN_TOPIC_OR_PARTITION, an invalid name
//   INVALID_TOPIC_EXCEPTION, an unknown topic id (v10+) UNKNOWN_TOPIC_ID,
//   unless auto-creation applies: the gateway enables it and the request
//   allows it (always before v4, AllowAutoTopicCreation from v4). Missing
//   topics with valid names are then created with the default partitions
//   and storage mode, the cache is given time to see them, and they are
//   answered normally, or with LEADER_NOT_AVAILABLE (retriable) if they are
//   not visible yet or could not be placed. A name colliding with an
//   existing topic's (col.x and col_x) is INVALID_TOPIC_EXCEPTION, as in
//   Kafka.
//
// Version notes:
// * v1: controller, rack, internal; v2: cluster id; v4: auto-create flag
// * v5: offline replicas; v7: leader epoch; v8: authorized operations
//   (answered as "not provided"); v9: flexible; v10: topic ids

func init() { register(3, 0, 12, false, (*Handlers).handleMetadata) }

func (h *Handlers) handleMetadata(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	gws := h.gateways()
	for _, g := range gws {
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port, b.Rack = g.NodeID, g.Host, g.Port, rack(g)
		resp.Brokers = append(resp.Brokers, b)
	}
	resp.ClusterID = strp(h.cfg.ClusterID)
	resp.ControllerID = controllerID(gws)

	if req.Topics == nil || req.Version == 0 && len(req.Topics) == 0 {
		for _, t := range h.cache.Topics() {
			resp.Topics = append(resp.Topics, h.describeTopic(t, gws))
		}
		return resp, nil
	}

	autoCreate := h.cfg.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	resp.Topics = make([]kmsg.MetadataResponseTopic, len(req.Topics))
	var missing []int // indexes of topics to auto-create
	for i, rt := range req.Topics {
		st := &resp.Topics[i]
		*st = kmsg.NewMetadataResponseTopic()
		if rt.Topic == nil { // v10+: by id
			st.TopicID = rt.TopicID
			if t, ok := h.cache.TopicByID(meta.TopicID(rt.TopicID)); ok {
				*st = h.describeTopic(t, gws)
			} else {
				st.ErrorCode = kerr.UnknownTopicID.Code
			}
			continue
		}
		name := *rt.Topic
		st.Topic = strp(name)
		if t, ok := h.cache.Topic(name); ok {
			*st = h.describeTopic(t, gws)
			continue
		}
		if ke, _ := topicNameError(name); ke != nil {
			st.ErrorCode = ke.Code
			continue
		}
		st.ErrorCode = kerr.UnknownTopicOrPartition.Code
		if autoCreate {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		h.autoCreate(ctx, resp, missing, gws)
	}
	return resp, nil
}

// autoCreate creates the topics at resp.Topics[missing] and answers them.
func (h *Handlers) autoCreate(ctx context.Context, resp *kmsg.MetadataResponse, missing []int, gws []meta.Gateway) {
	var maxRev int64
	for _, i := range missing {
		st := &resp.Topics[i]
		st.ErrorCode = kerr.LeaderNotAvailable.Code // until we see it exist
		_, rev, e := h.ops.CreateTopic(ctx, ops.TopicSpec{Name: *st.Topic, Partitions: -1, ReplicationFactor: -1}, false)
		maxRev = max(maxRev, rev)
		switch {
		case e == nil: // ops logged it
		case e.Code == kerr.TopicAlreadyExists: // raced with another creator: answer what exists
		case e.Code == kerr.InvalidConfig: // a server default that cannot be used: not retriable
			st.ErrorCode = e.Code.Code
			h.log.Warn("cannot auto-create topic", "topic", *st.Topic, "err", e.Msg)
		default:
			h.log.Warn("auto-creating topic failed", "topic", *st.Topic, "err", e.Msg)
			if e.Code == kerr.InvalidTopicException { // its name collides with an existing topic's
				st.ErrorCode = e.Code.Code
			}
		}
	}
	if maxRev > 0 {
		if err := h.waitRevision(ctx, maxRev, 0); err != nil {
			h.log.Warn("metadata cache did not catch up with auto-created topics", "err", err)
		}
	}
	for _, i := range missing {
		if t, ok := h.cache.Topic(*resp.Topics[i].Topic); ok {
			resp.Topics[i] = h.describeTopic(t, gws)
		}
	}
}

// describeTopic answers one existing topic.
func (h *Handlers) describeTopic(t meta.Topic, gws []meta.Gateway) kmsg.MetadataResponseTopic {
	st := kmsg.NewMetadataResponseTopic()
	st.Topic = strp(t.Name)
	st.TopicID = t.ID
	parts := h.cache.Partitions(t.Name)
	if len(parts) == 0 {
		// The topic and its partitions are written in one transaction;
		// no partitions means a delete is being applied right now.
		st.ErrorCode = kerr.LeaderNotAvailable.Code
		return st
	}
	for _, p := range parts {
		sp := kmsg.NewMetadataResponseTopicPartition()
		sp.Partition = p.Partition
		leader := leaderGateway(gws, t.Name, p.Partition)
		sp.Leader, sp.LeaderEpoch = leader.NodeID, p.LeaderEpoch
		sp.Replicas, sp.ISR, sp.OfflineReplicas = h.ops.ReplicaIDs(p)
		if _, live := h.cache.LogNode(p.Leader); !live {
			sp.ErrorCode, sp.Leader = kerr.LeaderNotAvailable.Code, -1
		}
		st.Partitions = append(st.Partitions, sp)
	}
	return st
}
