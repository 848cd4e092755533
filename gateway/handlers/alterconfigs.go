package handlers

import (
	"context"
	"fmt"

	"github.com/streamline-dev/streamline/gateway/ops"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Topic config changes shared by AlterConfigs (which replaces a topic's
// whole set of configs) and IncrementalAlterConfigs (which edits it); the
// rules are ops.AlterTopicConfigs'.

// notAlterable answers a resource whose configs cannot be changed here:
// gateway (broker) settings are command-line flags, and no other resource
// type has configs in Streamline.
func notAlterable(rt kmsg.ConfigResourceType) (*kerr.Error, string) {
	if rt == kmsg.ConfigResourceTypeBroker || rt == kmsg.ConfigResourceTypeBrokerLogger {
		return kerr.InvalidRequest, fmt.Sprintf("%s configs cannot be altered: gateway settings are static (command-line flags and STREAMLINE_* variables); topic configs can be altered", rt)
	}
	return kerr.InvalidRequest, fmt.Sprintf("altering %s configs is not supported (only TOPIC resources have alterable configs)", rt)
}

// alterResources answers AlterConfigs and IncrementalAlterConfigs alike:
// n resources, resource i's type, name and changes from get. A resource
// named twice is INVALID_REQUEST (both times). After writing, the gateway
// waits (up to metadataWait) for its cache to show the changes, so that
// DescribeConfigs here sees them; if that wait times out the written
// resources answer REQUEST_TIMED_OUT (the change was made).
func (h *Handlers) alterResources(ctx context.Context, n int, validateOnly, replace bool,
	get func(i int) (kmsg.ConfigResourceType, string, []ops.ConfigChange),
	set func(i int, code int16, msg *string),
) {
	type key struct {
		rt   kmsg.ConfigResourceType
		name string
	}
	count := map[key]int{}
	for i := range n {
		rt, name, _ := get(i)
		count[key{rt, name}]++
	}
	var written []int
	var maxRev int64
	for i := range n {
		rt, name, changes := get(i)
		if count[key{rt, name}] > 1 {
			set(i, kerr.InvalidRequest.Code, strp(fmt.Sprintf("%s %s appears more than once in the request", rt, name)))
			continue
		}
		if rt != kmsg.ConfigResourceTypeTopic {
			ke, msg := notAlterable(rt)
			set(i, ke.Code, strp(msg))
			continue
		}
		rev, e := h.ops.AlterTopicConfigs(ctx, name, changes, replace, validateOnly)
		set(i, e.KafkaCode(), e.Message())
		if e == nil && rev > 0 {
			written = append(written, i)
			maxRev = max(maxRev, rev)
		}
	}
	if maxRev > 0 {
		if err := h.waitRevision(ctx, maxRev, 0); err != nil {
			for _, i := range written {
				set(i, kerr.RequestTimedOut.Code, strp("configs changed, but this gateway has not seen the change yet"))
			}
		}
	}
}
