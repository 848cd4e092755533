package main

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	adminv1 "github.com/streamline-dev/streamline/proto/gen/streamline/admin/v1"
)

// flagError turns pflag's parse errors into usage errors that name the
// flag: invalid value "x" for flag --partitions: not an integer.
func flagError(_ *cobra.Command, err error) error {
	var ive *pflag.InvalidValueError
	if errors.As(err, &ive) {
		return usagef("invalid value %q for flag --%s: %s", ive.GetValue(), ive.GetFlag().Name, causeText(ive.Unwrap()))
	}
	return usageError{err}
}

// causeText explains why a flag value was refused.
func causeText(err error) string {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		if errors.Is(ne.Err, strconv.ErrRange) {
			return "out of range"
		}
		switch ne.Func {
		case "ParseBool":
			return "not a boolean (true or false)"
		case "ParseFloat":
			return "not a number"
		}
		return "not an integer"
	}
	if err != nil && strings.HasPrefix(err.Error(), "time: ") {
		return "not a duration (for example 500ms, 30s, 5m)"
	}
	if err == nil {
		return "invalid"
	}
	return err.Error()
}

// outputFormat is the -o flag.
type outputFormat string

const (
	outputText outputFormat = "text"
	outputJSON outputFormat = "json"
)

func (o *outputFormat) String() string { return string(*o) }
func (o *outputFormat) Type() string   { return "text|json" }
func (o *outputFormat) Set(v string) error {
	switch outputFormat(strings.ToLower(v)) {
	case outputText:
		*o = outputText
	case outputJSON:
		*o = outputJSON
	default:
		return errors.New("want text or json")
	}
	return nil
}

// storageModes are the --storage-mode values.
var storageModes = map[string]adminv1.StorageMode{
	"local":    adminv1.StorageMode_STORAGE_MODE_LOCAL,
	"hybrid":   adminv1.StorageMode_STORAGE_MODE_HYBRID,
	"diskless": adminv1.StorageMode_STORAGE_MODE_DISKLESS,
}

// storageModeFlag is --storage-mode; unset is the cluster's default.
type storageModeFlag struct{ mode adminv1.StorageMode }

func (s *storageModeFlag) String() string {
	if s.mode == adminv1.StorageMode_STORAGE_MODE_UNSPECIFIED {
		return ""
	}
	return storageModeKey(s.mode)
}
func (s *storageModeFlag) Type() string { return "local|hybrid|diskless" }
func (s *storageModeFlag) Set(v string) error {
	m, ok := storageModes[strings.ToLower(v)]
	if !ok {
		return errors.New("unknown storage mode: want local, hybrid or diskless")
	}
	s.mode = m
	return nil
}

// storageModeKey is a mode's Kafka config value (local, hybrid, diskless).
func storageModeKey(m adminv1.StorageMode) string {
	switch m {
	case adminv1.StorageMode_STORAGE_MODE_LOCAL:
		return "local"
	case adminv1.StorageMode_STORAGE_MODE_HYBRID:
		return "hybrid"
	case adminv1.StorageMode_STORAGE_MODE_DISKLESS:
		return "diskless"
	}
	return "default"
}

// storageModeTitle is a mode's display name (Local, Hybrid, Diskless).
func storageModeTitle(m adminv1.StorageMode) string { return titleCase(storageModeKey(m)) }

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// keyValues is a repeatable key=value flag (--config, --set).
type keyValues struct {
	m     map[string]string
	order []string
}

func (kv *keyValues) String() string {
	parts := make([]string, 0, len(kv.order))
	for _, k := range kv.order {
		parts = append(parts, k+"="+kv.m[k])
	}
	return strings.Join(parts, ",")
}
func (kv *keyValues) Type() string { return "key=value" }
func (kv *keyValues) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return errors.New("want key=value")
	}
	k = strings.TrimSpace(k)
	if kv.m == nil {
		kv.m = map[string]string{}
	}
	if _, seen := kv.m[k]; !seen {
		kv.order = append(kv.order, k)
	}
	kv.m[k] = val
	return nil
}

// names is a repeatable flag of config names (--delete).
type names []string

func (n *names) String() string { return strings.Join(*n, ",") }
func (n *names) Type() string   { return "key" }
func (n *names) Set(v string) error {
	if v = strings.TrimSpace(v); v == "" {
		return errors.New("empty config name")
	}
	*n = append(*n, v)
	return nil
}

// timeFlag is an RFC 3339 instant (--to-datetime).
type timeFlag struct {
	t   time.Time
	set bool
}

func (t *timeFlag) String() string {
	if !t.set {
		return ""
	}
	return t.t.Format(time.RFC3339Nano)
}
func (t *timeFlag) Type() string { return "RFC3339" }
func (t *timeFlag) Set(v string) error {
	tt, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return errors.New("want an RFC 3339 time such as 2024-05-01T12:00:00Z")
	}
	t.t, t.set = tt, true
	return nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// invalidFlag is the usage error for a flag value the command refuses.
func invalidFlag(name string, value any, why string) error {
	return usagef("invalid value %q for flag --%s: %s", fmt.Sprint(value), name, why)
}
