package handlers

import (
	"context"
	"time"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/ops"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteRecords: v0-2
//
// Behaviour:
// * Each partition's log start offset moves up to Offset (-1: the high
//   watermark), as Kafka's DeleteRecords does on the leader: records below
//   it can no longer be fetched (OFFSET_OUT_OF_RANGE, so consumers apply
//   their auto.offset.reset), ListOffsets earliest answers it, and storage
//   wholly below it is freed (local: whole segments; diskless: manifest
//   entries, whose objects the garbage collector then removes). The new
//   start may lie inside a batch; a fetch there returns the whole batch,
//   and clients skip the records below their offset. LowWatermark is the
//   log start afterwards. The start is durable before the answer (local: a
//   checkpoint file in the partition directory; diskless: etcd), so it
//   survives restarts and leader changes.
// * Offset above the high watermark, or negative other than -1, is
//   OFFSET_OUT_OF_RANGE (the latter checked here without a call). An
//   offset at or below the current log start changes nothing and answers
//   the current start.
// * Partitions are grouped by leading log-service node and resolved with
//   one LogService.DeleteRecords per node, in parallel; routing errors as
//   in ListOffsets (UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC_EXCEPTION,
//   NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT). The node checks that it
//   still leads the partition before changing it. Failed partitions answer
//   LowWatermark -1.
// * TimeoutMillis bounds the calls (<= 0: 30 s). The work is in ops.DeleteRecords.
//
// Version notes:
// * v1: same as v0 (throttle after response); v2: flexible.

func init() { register(21, 0, 2, false, (*Handlers).handleDeleteRecords) }

func (h *Handlers) handleDeleteRecords(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.DeleteRecordsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	var ds []ops.RecordsDeletion
	var slots []*kmsg.DeleteRecordsResponseTopicPartition
	resp.Topics = make([]kmsg.DeleteRecordsResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		rt := &req.Topics[ti]
		st := &resp.Topics[ti]
		*st = kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.DeleteRecordsResponseTopicPartition, len(rt.Partitions))
		for pi, rp := range rt.Partitions {
			sp := &st.Partitions[pi]
			*sp = kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			ds = append(ds, ops.RecordsDeletion{Topic: rt.Topic, Partition: rp.Partition, Offset: rp.Offset})
			slots = append(slots, sp)
		}
	}
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	for i, r := range h.ops.DeleteRecords(ctx, timeout, ds) {
		slots[i].ErrorCode, slots[i].LowWatermark = code(r.Err), r.LowWatermark
	}
	return resp, nil
}
