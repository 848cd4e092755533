package meta

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// MaxBatchTimeout bounds remote.storage.batch.timeout.ms and the servers'
// --diskless-batch-timeout. A diskless produce is answered only once its
// flush is uploaded and committed, so a window longer than the clients'
// request timeout (request.timeout.ms, 30 s in Kafka's clients) would time
// out every produce and have it retried forever: idempotence drops the
// retries, so nothing is lost, but nothing is acknowledged either. 10 s
// leaves room for the upload and the commit behind the window.
const MaxBatchTimeout = 10 * time.Second

// Topic config names Streamline understands. Kafka's names are kept where
// Kafka has the concept; the storage-mode knobs are Streamline's own.
const (
	ConfigCleanupPolicy     = "cleanup.policy"
	ConfigRetentionMs       = "retention.ms"
	ConfigRetentionBytes    = "retention.bytes"
	ConfigSegmentBytes      = "segment.bytes"
	ConfigSegmentMs         = "segment.ms"
	ConfigMaxMessageBytes   = "max.message.bytes"
	ConfigTimestampType     = "message.timestamp.type"
	ConfigStorageMode       = "storage.mode"
	ConfigBatchSizeBytes    = "remote.storage.batch.size.bytes"
	ConfigBatchTimeoutMs    = "remote.storage.batch.timeout.ms"
	ConfigUploadParallelism = "remote.storage.upload.parallelism"
	ConfigReadCacheBytes    = "remote.storage.read.cache.bytes"
	ConfigMinInsyncReplicas = "min.insync.replicas"
	// ConfigLocalRetentionMs and ConfigLocalRetentionBytes (Kafka's
	// KIP-405 names) bound what a hybrid topic's partition keeps on local
	// disk, by age and by size; older data is read from object storage.
	// -2 (the default) means the topic's retention.ms / retention.bytes,
	// -1 no local limit. Any topic may set them (as in Kafka); only hybrid
	// topics use them. See Topic.LocalRetention.
	ConfigLocalRetentionMs    = "local.retention.ms"
	ConfigLocalRetentionBytes = "local.retention.bytes"
	// ConfigUncleanLeaderElection lets a replica outside the ISR lead a
	// local partition whose ISR members are all down (acknowledged
	// records may be lost).
	ConfigUncleanLeaderElection = "unclean.leader.election.enable"
)

// ConfigType mirrors Kafka's DescribeConfigs config types.
type ConfigType int8

// Kafka DescribeConfigs v3+ type codes.
const (
	TypeBoolean ConfigType = 1
	TypeString  ConfigType = 2
	TypeInt     ConfigType = 3
	TypeLong    ConfigType = 5
	TypeList    ConfigType = 7
)

// ConfigDef describes one topic config: its default, type and validation.
type ConfigDef struct {
	Name     string
	Default  string
	Type     ConfigType
	Doc      string
	validate func(string) error
}

// ErrInvalidConfig wraps every config validation failure (Kafka INVALID_CONFIG).
var ErrInvalidConfig = errors.New("invalid config")

func atLeast(min int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		if n < min {
			return fmt.Errorf("%d is below the minimum %d", n, min)
		}
		return nil
	}
}

func between(min, max int64) func(string) error {
	return func(v string) error {
		if err := atLeast(min)(v); err != nil {
			return err
		}
		if n, _ := strconv.ParseInt(v, 10, 64); n > max {
			return fmt.Errorf("%d is above the maximum %d", n, max)
		}
		return nil
	}
}

func oneOf(allowed ...string) func(string) error {
	return func(v string) error {
		for _, a := range allowed {
			if v == a {
				return nil
			}
		}
		return fmt.Errorf("%q is not supported (supported: %v)", v, allowed)
	}
}

var topicConfigDefs = []ConfigDef{
	{ConfigCleanupPolicy, "delete", TypeList, "only delete is supported; compaction is not built yet", oneOf("delete")},
	{ConfigRetentionMs, "604800000", TypeLong, "-1 keeps data forever", atLeast(-1)},
	{ConfigRetentionBytes, "-1", TypeLong, "per-partition size limit; -1 for none", atLeast(-1)},
	{ConfigSegmentBytes, "1073741824", TypeInt, "local segment size before rolling", atLeast(1024)},
	{ConfigSegmentMs, "604800000", TypeLong, "local segment age before rolling", atLeast(1)},
	{ConfigMaxMessageBytes, "1048588", TypeInt, "largest record batch accepted", atLeast(0)},
	{ConfigMinInsyncReplicas, "1", TypeInt, "replicas (the leader included) that must hold a batch before acks=all is answered; fewer in the ISR refuses acks=all produces (NOT_ENOUGH_REPLICAS)", atLeast(1)},
	{ConfigUncleanLeaderElection, "false", TypeBoolean, "let an out-of-sync replica lead when every in-sync replica is down (acknowledged records may be lost)", oneOf("true", "false")},
	{ConfigTimestampType, "CreateTime", TypeString, "LogAppendTime is not supported", oneOf("CreateTime")},
	{ConfigLocalRetentionMs, "-2", TypeLong, "hybrid: how long a partition keeps data on local disk (older data is read from object storage); -2: retention.ms, -1: no local limit; must not be more than retention.ms", atLeast(-2)},
	{ConfigLocalRetentionBytes, "-2", TypeLong, "hybrid: how many bytes a partition keeps on local disk (the rest is read from object storage); -2: retention.bytes, -1: no local limit; must not be more than retention.bytes", atLeast(-2)},
	{ConfigStorageMode, string(StorageLocal), TypeString, "local, hybrid or diskless; local and hybrid may be changed into each other with AlterConfigs/IncrementalAlterConfigs; diskless is fixed at creation", func(v string) error { _, err := ParseStorageMode(v); return err }},
	{ConfigBatchSizeBytes, "1048576", TypeLong, "hybrid/diskless: flush a buffer at this size", atLeast(1)},
	{ConfigBatchTimeoutMs, "100", TypeLong, "hybrid/diskless: flush a buffer after this long; at most 10000 (a produce waits for its flush, and clients time out after request.timeout.ms)", between(0, MaxBatchTimeout.Milliseconds())},
	{ConfigUploadParallelism, "4", TypeInt, "hybrid/diskless: concurrent uploads", atLeast(1)},
	{ConfigReadCacheBytes, "104857600", TypeLong, "hybrid/diskless: read cache size", atLeast(0)},
}

// TopicConfigDefs returns every known topic config, sorted by name.
func TopicConfigDefs() []ConfigDef {
	out := append([]ConfigDef(nil), topicConfigDefs...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LookupConfig finds the definition of a topic config.
func LookupConfig(name string) (ConfigDef, bool) {
	for _, d := range topicConfigDefs {
		if d.Name == name {
			return d, true
		}
	}
	return ConfigDef{}, false
}

// ValidateTopicConfig checks one name=value pair.
func ValidateTopicConfig(name, value string) error {
	d, ok := LookupConfig(name)
	if !ok {
		return fmt.Errorf("%w: unknown topic config %q", ErrInvalidConfig, name)
	}
	if err := d.validate(value); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalidConfig, name, err)
	}
	return nil
}

// Defaults are server-wide topic config defaults that override the built-in
// ones (for example the all-in-one's default storage mode).
type Defaults map[string]string

// ConfigValue is a config's effective value and whether the topic set it.
type ConfigValue struct {
	Value      string
	TopicSet   bool // set on the topic (Kafka source DYNAMIC_TOPIC_CONFIG)
	ServerSet  bool // set by a server flag (Kafka source STATIC_BROKER_CONFIG)
	Definition ConfigDef
}

// Effective resolves every known config for t: topic value, else server
// default, else built-in default.
func (t *Topic) Effective(d Defaults) map[string]ConfigValue {
	out := make(map[string]ConfigValue, len(topicConfigDefs))
	for _, def := range topicConfigDefs {
		out[def.Name] = t.resolve(def, d)
	}
	return out
}

// Value resolves one config as Effective does, without building the map:
// Int64 and Bool sit on the produce path (min.insync.replicas is read for
// every acks=all batch). An unknown name resolves to the zero ConfigValue.
func (t *Topic) Value(name string, d Defaults) ConfigValue {
	def, ok := LookupConfig(name)
	if !ok {
		return ConfigValue{}
	}
	return t.resolve(def, d)
}

func (t *Topic) resolve(def ConfigDef, d Defaults) ConfigValue {
	cv := ConfigValue{Value: def.Default, Definition: def}
	if v, ok := d[def.Name]; ok {
		cv.Value, cv.ServerSet = v, true
	}
	if def.Name == ConfigStorageMode {
		cv.Value, cv.TopicSet = string(t.StorageMode), true
	} else if v, ok := t.Configs[def.Name]; ok {
		cv.Value, cv.TopicSet, cv.ServerSet = v, true, false
	}
	return cv
}

// Int64 returns a config's effective value as an integer. Values were
// validated on the way in, so a parse failure falls back to the default.
func (t *Topic) Int64(name string, d Defaults) int64 {
	return parseOrDefault(t.Value(name, d))
}

// Bool returns a boolean config's effective value ("true").
func (t *Topic) Bool(name string, d Defaults) bool {
	return t.Value(name, d).Value == "true"
}

// ValidateTopicConfigs checks the rules between t's configs, on their
// effective values (the topic's, else the server defaults d, else the
// built-in ones), as Kafka does for tiered topics: local.retention.ms must
// not be more than retention.ms, nor local.retention.bytes more than
// retention.bytes, when both are limits (>= 0). ValidateTopicConfig has
// checked each value on its own. The error wraps ErrInvalidConfig.
func ValidateTopicConfigs(t *Topic, d Defaults) error {
	eff := t.Effective(d)
	for _, pair := range [][2]string{{ConfigLocalRetentionMs, ConfigRetentionMs}, {ConfigLocalRetentionBytes, ConfigRetentionBytes}} {
		local, total := parseOrDefault(eff[pair[0]]), parseOrDefault(eff[pair[1]])
		if local >= 0 && total >= 0 && local > total {
			return fmt.Errorf("%w: %s must not be more than %s (%d > %d)", ErrInvalidConfig, pair[0], pair[1], local, total)
		}
	}
	return nil
}

// LocalRetention is what a hybrid topic's partitions keep on local disk:
// the effective local.retention.ms and local.retention.bytes, with -2
// resolved to the topic's effective retention.ms and retention.bytes (the
// ones the log-service retention loop applies). -1 means no local limit.
// A local limit never exceeds the total one: when the total is a limit
// (>= 0), a local value that is unlimited (-1) or larger (possible only
// after a server default changed, since ValidateTopicConfigs refuses it)
// resolves to the total, so data never stays on local disk after
// retention removed it.
func (t *Topic) LocalRetention(d Defaults) (ms, bytes int64) {
	eff := t.Effective(d)
	resolve := func(localName, totalName string) int64 {
		local, total := parseOrDefault(eff[localName]), parseOrDefault(eff[totalName])
		switch {
		case local == -2:
			return total
		case total >= 0 && (local < 0 || local > total):
			return total
		}
		return local
	}
	return resolve(ConfigLocalRetentionMs, ConfigRetentionMs), resolve(ConfigLocalRetentionBytes, ConfigRetentionBytes)
}

// parseOrDefault is an integer config's value; values were validated on
// the way in, so a parse failure falls back to the built-in default.
func parseOrDefault(cv ConfigValue) int64 {
	n, err := strconv.ParseInt(cv.Value, 10, 64)
	if err != nil {
		n, _ = strconv.ParseInt(cv.Definition.Default, 10, 64)
	}
	return n
}
