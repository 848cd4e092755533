package handlers

import (
	"context"
	"fmt"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteTopics: v0-6
//
// Behaviour:
// * Topics by name (all versions) or, from v6, by id (name null): an
//   unknown id is UNKNOWN_TOPIC_ID, an unknown name
//   UNKNOWN_TOPIC_OR_PARTITION, an invalid name INVALID_TOPIC_EXCEPTION.
// * The topic and all its partition assignments go in one etcd
//   transaction; log-service nodes drop the data when they see it.
// * The gateway then waits (up to the request timeout) for its cache to
//   reflect the deletion; a timeout is REQUEST_TIMED_OUT (the topic is
//   deleted; a retry gets UNKNOWN_TOPIC_OR_PARTITION).
//
// Version notes:
// * v4: flexible; v5: ErrorMessage; v6: topic ids.

func init() { register(20, 0, 6, false, (*Handlers).handleDeleteTopics) }

func (h *Handlers) handleDeleteTopics(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	if req.Version >= 6 {
		for _, t := range req.Topics {
			targets = append(targets, target{t.Topic, t.TopicID})
		}
	} else {
		for _, n := range req.TopicNames {
			targets = append(targets, target{name: strp(n)})
		}
	}
	var maxRev int64
	var deleted []int
	resp.Topics = make([]kmsg.DeleteTopicsResponseTopic, len(targets))
	for i, tg := range targets {
		st := &resp.Topics[i]
		*st = kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = tg.name, tg.id
		fail := func(ke *kerr.Error, msg string) { st.ErrorCode, st.ErrorMessage = ke.Code, msgp(msg) }
		var name string
		if tg.name == nil {
			t, ok := h.cache.TopicByID(meta.TopicID(tg.id))
			if !ok {
				fail(kerr.UnknownTopicID, fmt.Sprintf("no topic with id %s", meta.TopicID(tg.id)))
				continue
			}
			name, st.Topic = t.Name, strp(t.Name)
		} else {
			name = *tg.name
			if t, ok := h.cache.Topic(name); ok {
				st.TopicID = t.ID
			}
		}
		rev, e := h.ops.DeleteTopic(ctx, name)
		if e != nil {
			fail(e.Code, e.Msg)
			continue
		}
		maxRev = max(maxRev, rev)
		deleted = append(deleted, i)
	}
	if maxRev > 0 {
		if err := h.waitRevision(ctx, maxRev, req.TimeoutMillis); err != nil {
			for _, i := range deleted {
				resp.Topics[i].ErrorCode = kerr.RequestTimedOut.Code
				resp.Topics[i].ErrorMessage = strp("topic deleted, but this gateway has not seen it yet")
			}
		}
	}
	return resp, nil
}
