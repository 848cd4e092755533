package handlers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Topic config changes shared by AlterConfigs (which replaces a topic's
// whole set of configs) and IncrementalAlterConfigs (which edits it).

// configChange is one requested change of a topic config. AlterConfigs
// sends only SETs (its whole new set).
type configChange struct {
	name  string
	op    kmsg.IncrementalAlterConfigOp
	value *string
}

// errStorageModeChange is what changing an existing topic's storage.mode
// answers (INVALID_CONFIG).
const errStorageModeChange = "changing storage.mode of an existing topic is not supported (no live migration yet)"

// alterError carries a Kafka error out of meta.Store.UpdateTopic's update
// function.
type alterError struct {
	ke  *kerr.Error
	msg string
}

func (e *alterError) Error() string { return e.msg }

// alterResult is the outcome of one resource: a Kafka error, or the etcd
// revision the change was written at (0 when nothing was written).
type alterResult struct {
	ke  *kerr.Error
	msg string
	rev int64
}

// checkConfigChanges runs the checks that do not depend on the topic's
// current configs, in request order: unknown name (INVALID_CONFIG naming
// it), a name given twice, an unknown operation, a null value, APPEND or
// SUBTRACT of a config that is not a list (INVALID_REQUEST), and the value
// itself (INVALID_CONFIG, meta.ValidateTopicConfig).
func checkConfigChanges(changes []configChange) (*kerr.Error, string) {
	seen := map[string]bool{}
	for _, c := range changes {
		def, ok := meta.LookupConfig(c.name)
		if !ok {
			return kerr.InvalidConfig, fmt.Sprintf("unknown topic config %q", c.name)
		}
		if seen[c.name] {
			return kerr.InvalidRequest, fmt.Sprintf("config %s is given more than once", c.name)
		}
		seen[c.name] = true
		switch c.op {
		case kmsg.IncrementalAlterConfigOpSet, kmsg.IncrementalAlterConfigOpDelete:
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if def.Type != meta.TypeList {
				return kerr.InvalidRequest, fmt.Sprintf("config %s is not a list: %s applies to list configs only", c.name, c.op)
			}
		default:
			return kerr.InvalidRequest, fmt.Sprintf("config %s: unknown operation %d", c.name, c.op)
		}
		if c.op == kmsg.IncrementalAlterConfigOpDelete {
			continue
		}
		if c.value == nil {
			return kerr.InvalidRequest, fmt.Sprintf("config %s has a null value (only DELETE takes none)", c.name)
		}
		if c.op != kmsg.IncrementalAlterConfigOpSet {
			continue // the resulting list is validated once it is known
		}
		if err := meta.ValidateTopicConfig(c.name, *c.value); err != nil {
			return kerr.InvalidConfig, err.Error()
		}
	}
	return nil, ""
}

// applyConfigChanges edits t as the changes ask. replace (AlterConfigs)
// drops every config the request does not name, so it returns to its
// default; otherwise (IncrementalAlterConfigs) unnamed configs stay.
// storage.mode may only be "changed" to the mode the topic has.
func (h *Handlers) applyConfigChanges(t *meta.Topic, changes []configChange, replace bool) error {
	configs := maps.Clone(t.Configs)
	if replace || configs == nil {
		configs = map[string]string{}
	}
	eff := t.Effective(h.cfg.TopicDefaults)
	for _, c := range changes {
		if c.name == meta.ConfigStorageMode {
			mode := h.cfg.DefaultStorageMode // DELETE: back to the default
			if c.op == kmsg.IncrementalAlterConfigOpSet {
				mode = meta.StorageMode(*c.value)
			}
			if mode != t.StorageMode {
				return &alterError{kerr.InvalidConfig, errStorageModeChange}
			}
			continue
		}
		switch c.op {
		case kmsg.IncrementalAlterConfigOpSet:
			configs[c.name] = *c.value
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(configs, c.name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			list := splitList(eff[c.name].Value)
			for _, v := range splitList(*c.value) {
				i := slices.Index(list, v)
				switch {
				case c.op == kmsg.IncrementalAlterConfigOpAppend && i < 0:
					list = append(list, v)
				case c.op == kmsg.IncrementalAlterConfigOpSubtract && i >= 0:
					list = slices.Delete(list, i, i+1)
				}
			}
			value := strings.Join(list, ",")
			if err := meta.ValidateTopicConfig(c.name, value); err != nil {
				return &alterError{kerr.InvalidConfig, fmt.Sprintf("%s %s gives %q: %v", c.op, c.name, value, err)}
			}
			configs[c.name] = value
		}
	}
	t.Configs = configs
	return nil
}

// splitList splits a list config's value ("a,b") into its items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// alterTopicConfigs checks and applies changes to one topic. The write is
// a compare-and-swap on the topic key (meta.Store.UpdateTopic), and the
// changes are applied to the definition read there, so concurrent
// incremental changes of different configs all land. validateOnly runs
// every check against the topic as stored and writes nothing.
func (h *Handlers) alterTopicConfigs(ctx context.Context, name string, changes []configChange, replace, validateOnly bool) alterResult {
	if ke, msg := topicNameError(name); ke != nil {
		return alterResult{ke: ke, msg: msg}
	}
	if ke, msg := checkConfigChanges(changes); ke != nil {
		return alterResult{ke: ke, msg: msg}
	}
	// etcd, not the cache, says whether the topic exists: it may have been
	// created through another gateway a moment ago.
	var err error
	var rev int64
	if validateOnly {
		var t *meta.Topic
		if t, err = h.store.GetTopic(ctx, name); err == nil {
			err = h.applyConfigChanges(t, changes, replace)
		}
	} else {
		_, rev, err = h.store.UpdateTopic(ctx, name, func(t *meta.Topic) error { return h.applyConfigChanges(t, changes, replace) })
	}
	var ae *alterError
	switch {
	case err == nil:
		return alterResult{rev: rev}
	case errors.As(err, &ae):
		return alterResult{ke: ae.ke, msg: ae.msg}
	case errors.Is(err, meta.ErrTopicNotFound):
		return alterResult{ke: kerr.UnknownTopicOrPartition, msg: "topic " + name + " does not exist"}
	}
	return alterResult{ke: metaError(err), msg: err.Error()}
}

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
	get func(i int) (kmsg.ConfigResourceType, string, []configChange),
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
		r := h.alterTopicConfigs(ctx, name, changes, replace, validateOnly)
		set(i, code(r.ke), msgp(r.msg))
		if r.ke == nil && r.rev > 0 {
			written = append(written, i)
			maxRev = max(maxRev, r.rev)
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
