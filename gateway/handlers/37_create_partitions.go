package handlers

import (
	"context"
	"fmt"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
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
		if count[rt.Topic] > 1 {
			fail(kerr.InvalidRequest, fmt.Sprintf("topic %s appears more than once in the request", rt.Topic))
			continue
		}
		if len(rt.Assignment) > 0 {
			fail(kerr.InvalidReplicaAssignment, "manual replica assignment is not supported: the cluster places partitions")
			continue
		}
		rev, e := h.ops.AddPartitions(ctx, rt.Topic, rt.Count, req.ValidateOnly)
		if e != nil {
			fail(e.Code, e.Msg)
			continue
		}
		if rev > 0 {
			maxRev = max(maxRev, rev)
			changed = append(changed, i)
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
