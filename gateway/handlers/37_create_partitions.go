package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreatePartitions: v0-3
//
// Behaviour:
// * Grows a topic to Count partitions, placing the new ones on live
//   log-service nodes (meta.Store.AddPartitions, one etcd transaction that
//   fails if the topic changed meanwhile; retried a few times).
// * Count must exceed the current count and be at most meta.MaxPartitions
//   (INVALID_PARTITIONS with the reason); a missing topic is
//   UNKNOWN_TOPIC_OR_PARTITION, a bad name INVALID_TOPIC_EXCEPTION, a topic
//   named twice INVALID_REQUEST, manual assignments
//   INVALID_REPLICA_ASSIGNMENT, no live log-service node
//   INVALID_REPLICATION_FACTOR.
// * validate_only checks without writing. The gateway waits (up to the
//   request timeout) for its cache to see the change.
//
// Version notes:
// * v2: flexible; v3: same as v2.

func init() { register(37, 0, 3, false, (*Handlers).handleCreatePartitions) }

// addPartitionsAttempts bounds retries of AddPartitions after ErrConflict
// (another admin changed the topic between our read and our write).
const addPartitionsAttempts = 5

func (h *Handlers) handleCreatePartitions(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	count := map[string]int{}
	for _, rt := range req.Topics {
		count[rt.Topic]++
	}
	var maxRev int64
	var changed []int
	resp.Topics = make([]kmsg.CreatePartitionsResponseTopic, len(req.Topics))
	for i, rt := range req.Topics {
		st := &resp.Topics[i]
		*st = kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		fail := func(ke *kerr.Error, msg string) { st.ErrorCode, st.ErrorMessage = ke.Code, msgp(msg) }
		if ke, msg := topicNameError(rt.Topic); ke != nil {
			fail(ke, msg)
			continue
		}
		if count[rt.Topic] > 1 {
			fail(kerr.InvalidRequest, fmt.Sprintf("topic %s appears more than once in the request", rt.Topic))
			continue
		}
		if len(rt.Assignment) > 0 {
			fail(kerr.InvalidReplicaAssignment, "manual replica assignment is not supported: the cluster places partitions")
			continue
		}
		t, ok := h.cache.Topic(rt.Topic)
		if !ok {
			fail(kerr.UnknownTopicOrPartition, fmt.Sprintf("topic %s does not exist", rt.Topic))
			continue
		}
		if rt.Count <= t.Partitions || rt.Count > meta.MaxPartitions {
			fail(kerr.InvalidPartitions, fmt.Sprintf("topic %s has %d partitions; the new count %d must be larger and at most %d",
				rt.Topic, t.Partitions, rt.Count, meta.MaxPartitions))
			continue
		}
		nodes := h.cache.LogNodes()
		if len(nodes) == 0 {
			fail(kerr.InvalidReplicationFactor, meta.ErrNoLogNodes.Error())
			continue
		}
		if req.ValidateOnly {
			continue
		}
		rev, err := h.addPartitions(ctx, rt.Topic, rt.Count)
		switch {
		case err == nil:
			h.log.Info("added partitions", "topic", rt.Topic, "partitions", rt.Count)
			maxRev = max(maxRev, rev)
			changed = append(changed, i)
		case errors.Is(err, meta.ErrTopicNotFound):
			fail(kerr.UnknownTopicOrPartition, err.Error())
		case errors.Is(err, meta.ErrInvalidPartitions):
			fail(kerr.InvalidPartitions, err.Error())
		case errors.Is(err, meta.ErrNoLogNodes):
			fail(kerr.InvalidReplicationFactor, err.Error())
		default:
			fail(metaError(err), err.Error())
		}
	}
	if maxRev > 0 {
		if err := h.waitRevision(ctx, maxRev, req.TimeoutMillis); err != nil {
			for _, i := range changed {
				resp.Topics[i].ErrorCode = kerr.RequestTimedOut.Code
				resp.Topics[i].ErrorMessage = strp("partitions added, but this gateway has not seen them yet")
			}
		}
	}
	return resp, nil
}

func (h *Handlers) addPartitions(ctx context.Context, topic string, total int32) (int64, error) {
	var err error
	for range addPartitionsAttempts {
		var rev int64
		rev, err = h.store.AddPartitions(ctx, topic, total, h.cache.LogNodesByLoad())
		if !errors.Is(err, meta.ErrConflict) {
			return rev, err
		}
	}
	return 0, err
}
