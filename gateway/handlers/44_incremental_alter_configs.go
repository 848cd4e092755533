package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/ops"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// IncrementalAlterConfigs: v0-1
//
// Behaviour:
// * TOPIC resources: each config is changed by its operation, applied to
//   the topic's current configs as read in the compare-and-swap (so
//   concurrent changes of different configs all land): SET stores the
//   value, DELETE returns the config to its default (server default, else
//   built-in), APPEND and SUBTRACT add or remove items of a list config
//   (cleanup.policy), starting from its effective value, and the result is
//   validated like a SET. APPEND/SUBTRACT of a config that is not a list,
//   an unknown operation, a name given twice, or a null value for anything
//   but DELETE is INVALID_REQUEST; an unknown name or a bad value
//   INVALID_CONFIG naming it. storage.mode SET changes the topic's mode
//   and DELETE sets the gateway's default mode, under AlterConfigs' rules:
//   local and hybrid change into each other (hybrid needs the object
//   store), a diskless topic keeps its mode and no topic becomes diskless
//   (INVALID_CONFIG). The result must keep the rules between configs
//   (local.retention.* not more than retention.*). Nothing is written
//   unless every change of the resource is valid.
// * Missing topics, the etcd write, waiting for the cache, what the
//   log-service nodes apply when, ValidateOnly, and BROKER / other
//   resources: as in AlterConfigs (33_alter_configs.go).
//
// Version notes:
// * v1: flexible.

func init() { register(44, 0, 1, false, (*Handlers).handleIncrementalAlterConfigs) }

func (h *Handlers) handleIncrementalAlterConfigs(ctx context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.IncrementalAlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	resp.Resources = make([]kmsg.IncrementalAlterConfigsResponseResource, len(req.Resources))
	for i, rr := range req.Resources {
		res := &resp.Resources[i]
		*res = kmsg.NewIncrementalAlterConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
	}
	h.alterResources(ctx, len(req.Resources), req.ValidateOnly, false,
		func(i int) (kmsg.ConfigResourceType, string, []ops.ConfigChange) {
			rr := req.Resources[i]
			changes := make([]ops.ConfigChange, len(rr.Configs))
			for j, c := range rr.Configs {
				changes[j] = ops.ConfigChange{Name: c.Name, Op: ops.ConfigOp(c.Op), Value: c.Value}
			}
			return rr.ResourceType, rr.ResourceName, changes
		},
		func(i int, code int16, msg *string) {
			resp.Resources[i].ErrorCode, resp.Resources[i].ErrorMessage = code, msg
		})
	return resp, nil
}
