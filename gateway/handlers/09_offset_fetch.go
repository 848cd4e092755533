package handlers

import (
	"context"
	"sort"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetFetch: v0-8
//
// Behaviour:
// * Committed offsets from the coordinator's copy of etcd; a partition
//   without a commit is offset -1. Null topics (v2+) means every committed
//   partition of the group. An offset committed to a topic that has since
//   been deleted (and maybe re-created: another topic id) is no commit,
//   as in Kafka, which deletes a topic's offsets with it.
// * Group errors (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE) go in the
//   group's error code (v2+) and in every partition (v0-1, which have no
//   group error).
// * RequireStable (v7+): a partition with offsets pending in a
//   transaction (TxnOffsetCommit, not decided yet or decided and not yet
//   applied by this coordinator) answers UNSTABLE_OFFSET_COMMIT with
//   offset -1, as Kafka does; clients retry. Without it, pending offsets
//   are not visible: the last committed offset is answered.
//
// Version notes:
// * v5: leader epoch; v6: flexible; v8: several groups per request.

func init() { register(9, 0, 8, false, (*Handlers).handleOffsetFetch) }

func (h *Handlers) handleOffsetFetch(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.OffsetFetchRequest)
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			var topics []kmsg.OffsetFetchRequestTopic
			if rg.Topics != nil {
				topics = make([]kmsg.OffsetFetchRequestTopic, len(rg.Topics))
				for i, t := range rg.Topics {
					topics[i] = kmsg.OffsetFetchRequestTopic{Topic: t.Topic, Partitions: t.Partitions}
				}
			}
			code, rts := h.fetchOffsets(ctx, rg.Group, topics, rg.Topics == nil, req.RequireStable)
			g := kmsg.NewOffsetFetchResponseGroup()
			g.Group, g.ErrorCode = rg.Group, code
			for _, rt := range rts {
				t := kmsg.NewOffsetFetchResponseGroupTopic()
				t.Topic = rt.Topic
				for _, rp := range rt.Partitions {
					p := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode = rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode
					t.Partitions = append(t.Partitions, p)
				}
				g.Topics = append(g.Topics, t)
			}
			resp.Groups = append(resp.Groups, g)
		}
		return resp, nil
	}
	all := req.Topics == nil && req.Version >= 2
	code, topics := h.fetchOffsets(ctx, req.Group, req.Topics, all, req.Version >= 7 && req.RequireStable)
	resp.Topics = topics
	if req.Version >= 2 {
		resp.ErrorCode = code
	} else if code != 0 {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = code
			}
		}
	}
	return resp, nil
}

// fetchOffsets answers one group: the requested partitions, or all
// committed ones.
func (h *Handlers) fetchOffsets(ctx context.Context, group string, req []kmsg.OffsetFetchRequestTopic, all, stable bool) (int16, []kmsg.OffsetFetchResponseTopic) {
	offsets, pending, e := h.cfg.Groups.FetchOffsetsPending(ctx, group)
	var code int16
	if e != nil {
		code = e.Code
	}
	// Offsets of a deleted (maybe re-created) topic are not commits of the
	// topic there is now (Kafka deletes them with the topic).
	rev := h.cache.Revision()
	for tp, o := range offsets {
		if t, ok := h.cache.Topic(tp.Topic); o.Stale(rev, t, ok) {
			delete(offsets, tp)
		}
	}
	if all {
		byTopic := map[string][]int32{}
		for tp := range offsets {
			byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
		}
		req = req[:0]
		for t, ps := range byTopic {
			sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
			req = append(req, kmsg.OffsetFetchRequestTopic{Topic: t, Partitions: ps})
		}
		sort.Slice(req, func(i, j int) bool { return req[i].Topic < req[j].Topic })
	}
	out := make([]kmsg.OffsetFetchResponseTopic, 0, len(req))
	for _, t := range req {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
			tp := meta.TopicPartition{Topic: t.Topic, Partition: p}
			if o, ok := offsets[tp]; ok {
				rp.Offset, rp.LeaderEpoch, rp.Metadata = o.Offset, o.LeaderEpoch, o.Metadata
			}
			if stable && pending[tp] {
				rp.Offset, rp.LeaderEpoch, rp.Metadata = -1, -1, nil
				rp.ErrorCode = kerr.UnstableOffsetCommit.Code
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		out = append(out, rt)
	}
	return code, out
}
