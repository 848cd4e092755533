package ops

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ConfigOp is how a ConfigChange edits a config. The values are Kafka's
// IncrementalAlterConfigs operations.
type ConfigOp int8

const (
	ConfigSet      ConfigOp = 0
	ConfigDelete   ConfigOp = 1
	ConfigAppend   ConfigOp = 2
	ConfigSubtract ConfigOp = 3
)

func (op ConfigOp) String() string {
	switch op {
	case ConfigSet:
		return "SET"
	case ConfigDelete:
		return "DELETE"
	case ConfigAppend:
		return "APPEND"
	case ConfigSubtract:
		return "SUBTRACT"
	}
	return "UNKNOWN"
}

// ConfigChange is one requested change of a topic config.
type ConfigChange struct {
	Name  string
	Op    ConfigOp
	Value *string
}

// checkConfigChanges runs the checks that do not depend on the topic's
// current configs, in request order: unknown name (INVALID_CONFIG naming
// it), a name given twice, an unknown operation, a null value, APPEND or
// SUBTRACT of a config that is not a list (INVALID_REQUEST), and the value
// itself (INVALID_CONFIG, meta.ValidateTopicConfig).
func checkConfigChanges(changes []ConfigChange) *Error {
	seen := map[string]bool{}
	for _, c := range changes {
		def, ok := meta.LookupConfig(c.Name)
		if !ok {
			return fail(kerr.InvalidConfig, "configs", "unknown topic config %q", c.Name)
		}
		if seen[c.Name] {
			return fail(kerr.InvalidRequest, "configs", "config %s is given more than once", c.Name)
		}
		seen[c.Name] = true
		switch c.Op {
		case ConfigSet, ConfigDelete:
		case ConfigAppend, ConfigSubtract:
			if def.Type != meta.TypeList {
				return fail(kerr.InvalidRequest, "configs", "config %s is not a list: %s applies to list configs only", c.Name, c.Op)
			}
		default:
			return fail(kerr.InvalidRequest, "configs", "config %s: unknown operation %d", c.Name, c.Op)
		}
		if c.Op == ConfigDelete {
			continue
		}
		if c.Value == nil {
			return fail(kerr.InvalidRequest, "configs", "config %s has a null value (only DELETE takes none)", c.Name)
		}
		if c.Op != ConfigSet {
			continue // the resulting list is validated once it is known
		}
		if err := meta.ValidateTopicConfig(c.Name, *c.Value); err != nil {
			return fail(kerr.InvalidConfig, "configs", "%v", err)
		}
	}
	return nil
}

// applyConfigChanges edits t as the changes ask. replace (Kafka's
// AlterConfigs) drops every config the request does not name, so it
// returns to its default; otherwise (IncrementalAlterConfigs, the admin
// API) unnamed configs stay. storage.mode is the topic record's
// StorageMode, not one of its Configs: SET changes it, DELETE sets the
// gateway's default mode, and a request that does not name it (AlterConfigs
// included) keeps it. The change must be one storageModeChange allows.
// Once every change is applied, the rules between configs
// (meta.ValidateTopicConfigs) are checked on the result.
func (o *Ops) applyConfigChanges(t *meta.Topic, changes []ConfigChange, replace bool) *Error {
	configs := maps.Clone(t.Configs)
	if replace || configs == nil {
		configs = map[string]string{}
	}
	eff := t.Effective(o.cfg.TopicDefaults)
	mode := t.StorageMode
	for _, c := range changes {
		if c.Name == meta.ConfigStorageMode {
			to := o.cfg.DefaultStorageMode // DELETE: back to the default
			if c.Op == ConfigSet {
				to = meta.StorageMode(*c.Value)
			}
			if e := o.storageModeChange(t.StorageMode, to); e != nil {
				return e
			}
			mode = to
			continue
		}
		switch c.Op {
		case ConfigSet:
			configs[c.Name] = *c.Value
		case ConfigDelete:
			delete(configs, c.Name)
		case ConfigAppend, ConfigSubtract:
			list := splitList(eff[c.Name].Value)
			for _, v := range splitList(*c.Value) {
				i := slices.Index(list, v)
				switch {
				case c.Op == ConfigAppend && i < 0:
					list = append(list, v)
				case c.Op == ConfigSubtract && i >= 0:
					list = slices.Delete(list, i, i+1)
				}
			}
			value := strings.Join(list, ",")
			if err := meta.ValidateTopicConfig(c.Name, value); err != nil {
				return fail(kerr.InvalidConfig, "configs", "%s %s gives %q: %v", c.Op, c.Name, value, err)
			}
			configs[c.Name] = value
		}
	}
	t.Configs, t.StorageMode = configs, mode
	if err := meta.ValidateTopicConfigs(t, o.cfg.TopicDefaults); err != nil {
		return fail(kerr.InvalidConfig, "configs", "%v", err)
	}
	return nil
}

// storageModeChange checks a change of an existing topic's storage mode
// from one mode to another (INVALID_CONFIG otherwise): only local and
// hybrid change into each other ("storage.mode of a diskless topic cannot
// be changed", "a local or hybrid topic cannot become diskless"), and
// the new mode must be usable now (storageModeUsable: becoming hybrid
// needs the cluster's object store). Keeping the mode is always allowed.
func (o *Ops) storageModeChange(from, to meta.StorageMode) *Error {
	if from == to {
		return nil
	}
	if err := from.CanChangeTo(to); err != nil {
		return fail(kerr.InvalidConfig, "configs", "%v", err)
	}
	if e := o.storageModeUsable(to); e != nil {
		e.Field = "configs"
		return e
	}
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

// AlterTopicConfigs checks and applies changes to one topic and returns
// the revision to wait for (0 when nothing was written). The write is a
// compare-and-swap on the topic key (meta.Store.UpdateTopic), and the
// changes are applied to the definition read there, so concurrent changes
// of different configs all land. Nothing is written unless every change
// is valid; validateOnly runs every check against the topic as stored and
// writes nothing. etcd, not the cache, says whether the topic exists: it
// may have been created through another gateway a moment ago.
func (o *Ops) AlterTopicConfigs(ctx context.Context, name string, changes []ConfigChange, replace, validateOnly bool) (int64, *Error) {
	if e := ValidateTopicName(name); e != nil {
		return 0, e
	}
	if e := checkConfigChanges(changes); e != nil {
		return 0, e
	}
	var err error
	var rev int64
	if validateOnly {
		var t *meta.Topic
		if t, err = o.store.GetTopic(ctx, name); err == nil {
			if e := o.applyConfigChanges(t, changes, replace); e != nil {
				return 0, e
			}
		}
	} else {
		var from, to meta.StorageMode
		_, rev, err = o.store.UpdateTopic(ctx, name, func(t *meta.Topic) error {
			from = t.StorageMode
			if e := o.applyConfigChanges(t, changes, replace); e != nil {
				return e
			}
			to = t.StorageMode
			return nil
		})
		if err == nil && from != to {
			o.log.Info("changed storage mode", "topic", name, "from", from, "to", to)
		}
	}
	var oe *Error
	switch {
	case err == nil:
		return rev, nil
	case errors.As(err, &oe):
		return 0, oe
	case errors.Is(err, meta.ErrTopicNotFound):
		return 0, fail(kerr.UnknownTopicOrPartition, "name", "topic %s does not exist", name)
	}
	return 0, metaError("", err)
}

// TopicConfig is one config of a topic as both APIs show it.
type TopicConfig struct {
	meta.ConfigValue
	// ReadOnly configs cannot be changed after creation: storage.mode of
	// a diskless topic (local and hybrid topics may change into each
	// other; see meta.StorageMode.CanChangeTo).
	ReadOnly bool
	// Synonyms are the layers that give the config a value, most specific
	// first: the topic's own, the server default (a gateway flag), the
	// built-in default.
	Synonyms []ConfigSynonym
}

// ConfigSynonym is one layer of a config's value.
type ConfigSynonym struct {
	Value string
	Layer ConfigLayer
}

// ConfigLayer is where a config value comes from.
type ConfigLayer int8

const (
	LayerTopic   ConfigLayer = iota // set on the topic
	LayerServer                     // a gateway flag
	LayerDefault                    // built in
)

// Layer is where cv's value comes from.
func Layer(cv meta.ConfigValue) ConfigLayer {
	switch {
	case cv.TopicSet:
		return LayerTopic
	case cv.ServerSet:
		return LayerServer
	}
	return LayerDefault
}

// TopicConfigs lists every known config of t (meta.TopicConfigDefs order)
// with its effective value, or only those in names when names is not nil.
func (o *Ops) TopicConfigs(t *meta.Topic, names map[string]bool) []TopicConfig {
	eff := t.Effective(o.cfg.TopicDefaults)
	var out []TopicConfig
	for _, def := range meta.TopicConfigDefs() {
		if names != nil && !names[def.Name] {
			continue
		}
		cv := eff[def.Name]
		tc := TopicConfig{ConfigValue: cv, ReadOnly: def.Name == meta.ConfigStorageMode && t.StorageMode == meta.StorageDiskless}
		if cv.TopicSet {
			tc.Synonyms = append(tc.Synonyms, ConfigSynonym{cv.Value, LayerTopic})
		}
		if def.Name == meta.ConfigStorageMode {
			tc.Synonyms = append(tc.Synonyms, ConfigSynonym{string(o.cfg.DefaultStorageMode), LayerServer})
		} else if v, ok := o.cfg.TopicDefaults[def.Name]; ok {
			tc.Synonyms = append(tc.Synonyms, ConfigSynonym{v, LayerServer})
		}
		tc.Synonyms = append(tc.Synonyms, ConfigSynonym{def.Default, LayerDefault})
		out = append(out, tc)
	}
	return out
}

// UsesRemoteBatching reports whether a topic of mode batches its writes to
// object storage, so that the remote.storage.* knobs apply to it.
func UsesRemoteBatching(mode meta.StorageMode) bool { return mode == meta.StorageDiskless }
