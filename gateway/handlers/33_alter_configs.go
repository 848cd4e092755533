package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/ops"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AlterConfigs: v0-2
//
// Behaviour:
// * TOPIC resources: the request is the topic's whole new set of configs,
//   as in Kafka: every config it does not name returns to its default
//   (server default, else built-in). Names are checked with
//   meta.LookupConfig and values with meta.ValidateTopicConfig; an unknown
//   name or a bad value is INVALID_CONFIG with the reason, a name given
//   twice or a null value INVALID_REQUEST. The result must also keep the
//   rules between configs (meta.ValidateTopicConfigs: local.retention.ms
//   not more than retention.ms, local.retention.bytes not more than
//   retention.bytes; INVALID_CONFIG). storage.mode is the topic's mode,
//   kept when the request does not name it: local and hybrid topics may
//   be changed into each other (becoming hybrid needs the cluster's object
//   store, INVALID_CONFIG "storage.mode=hybrid needs an object store:
//   <what is missing>" otherwise); "storage.mode of a diskless topic
//   cannot be changed" and "a local or hybrid topic cannot become
//   diskless" are INVALID_CONFIG. A missing topic is
//   UNKNOWN_TOPIC_OR_PARTITION, a bad name INVALID_TOPIC_EXCEPTION.
//   Nothing is written unless every config of the resource is valid.
// * The write is a compare-and-swap on the topic key in etcd
//   (meta.Store.UpdateTopic, retried a few times; still racing is
//   REQUEST_TIMED_OUT, retriable). The gateway then waits (up to 10 s) for
//   its cache to show the change, so DescribeConfigs here sees it; if that
//   wait times out the resource is REQUEST_TIMED_OUT (the change was made).
// * Log-service nodes apply the change to running partitions as their
//   metadata watch delivers it: max.message.bytes from the next produce,
//   segment.bytes/segment.ms from the next append, the
//   remote.storage.batch.* knobs from the next diskless batch, and
//   retention.ms/retention.bytes in a retention pass run at once; a
//   storage.mode change between local and hybrid (and the
//   local.retention.* configs) as the log service's hybrid data path
//   applies them.
// * ValidateOnly runs every check against the topic as stored in etcd and
//   writes nothing.
// * BROKER and BROKER_LOGGER resources are INVALID_REQUEST: gateway
//   settings are static flags. Other resource types are INVALID_REQUEST. A
//   resource named twice in one request is INVALID_REQUEST.
//
// Version notes:
// * v1: same as v0 (throttle after response); v2: flexible.

func init() { register(33, 0, 2, false, (*Handlers).handleAlterConfigs) }

func (h *Handlers) handleAlterConfigs(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.AlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	resp.Resources = make([]kmsg.AlterConfigsResponseResource, len(req.Resources))
	for i, rr := range req.Resources {
		res := &resp.Resources[i]
		*res = kmsg.NewAlterConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
	}
	h.alterResources(ctx, len(req.Resources), req.ValidateOnly, true,
		func(i int) (kmsg.ConfigResourceType, string, []ops.ConfigChange) {
			rr := req.Resources[i]
			changes := make([]ops.ConfigChange, len(rr.Configs))
			for j, c := range rr.Configs {
				changes[j] = ops.ConfigChange{Name: c.Name, Op: ops.ConfigSet, Value: c.Value}
			}
			return rr.ResourceType, rr.ResourceName, changes
		},
		func(i int, code int16, msg *string) {
			resp.Resources[i].ErrorCode, resp.Resources[i].ErrorMessage = code, msg
		})
	return resp, nil
}
