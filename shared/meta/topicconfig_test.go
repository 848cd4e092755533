package meta_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/streamline-dev/streamline/shared/meta"
)

func TestStorageModeChanges(t *testing.T) {
	local, hybrid, diskless := meta.StorageLocal, meta.StorageHybrid, meta.StorageDiskless
	for _, tc := range []struct {
		from, to meta.StorageMode
		want     error
	}{
		{local, local, nil},
		{hybrid, hybrid, nil},
		{diskless, diskless, nil},
		{local, hybrid, nil},
		{hybrid, local, nil},
		{local, diskless, meta.ErrCannotBecomeDiskless},
		{hybrid, diskless, meta.ErrCannotBecomeDiskless},
		{diskless, local, meta.ErrDisklessModeFixed},
		{diskless, hybrid, meta.ErrDisklessModeFixed},
	} {
		if err := tc.from.CanChangeTo(tc.to); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s -> %s: %v, want %v", tc.from, tc.to, err, tc.want)
		}
	}
	if err := local.CanChangeTo("tape"); err == nil {
		t.Error("local -> tape accepted")
	}
	if meta.ErrDisklessModeFixed.Error() != "storage.mode of a diskless topic cannot be changed" ||
		meta.ErrCannotBecomeDiskless.Error() != "a local or hybrid topic cannot become diskless" {
		t.Errorf("messages: %q, %q", meta.ErrDisklessModeFixed, meta.ErrCannotBecomeDiskless)
	}
	for m, want := range map[meta.StorageMode]bool{local: false, hybrid: true, diskless: true} {
		if m.NeedsObjectStore() != want {
			t.Errorf("%s.NeedsObjectStore() = %v", m, !want)
		}
	}
}

func TestLocalRetentionConfigs(t *testing.T) {
	for _, name := range []string{meta.ConfigLocalRetentionMs, meta.ConfigLocalRetentionBytes} {
		d, ok := meta.LookupConfig(name)
		if !ok || d.Default != "-2" || d.Type != meta.TypeLong {
			t.Fatalf("%s: %+v %v", name, d, ok)
		}
	}
	if meta.ConfigLocalRetentionMs != "local.retention.ms" || meta.ConfigLocalRetentionBytes != "local.retention.bytes" {
		t.Fatal("KIP-405 names")
	}
	d, _ := meta.LookupConfig(meta.ConfigStorageMode)
	if !strings.Contains(d.Doc, "local and hybrid may be changed into each other") {
		t.Fatalf("storage.mode doc: %q", d.Doc)
	}

	topic := func(mode meta.StorageMode, kv ...string) *meta.Topic {
		t := &meta.Topic{Name: "t", Partitions: 1, StorageMode: mode, Configs: map[string]string{}}
		for i := 0; i < len(kv); i += 2 {
			t.Configs[kv[i]] = kv[i+1]
		}
		return t
	}
	const week = 604800000
	for _, tc := range []struct {
		name      string
		topic     *meta.Topic
		defaults  meta.Defaults
		wantErr   string // "" valid
		ms, bytes int64  // LocalRetention
	}{
		{"defaults: -2 is the total", topic(meta.StorageHybrid), nil, "", week, -1},
		{"-2 follows the topic's total", topic(meta.StorageHybrid, "retention.ms", "5000", "retention.bytes", "9000"), nil, "", 5000, 9000},
		{"-2 follows a server default", topic(meta.StorageHybrid), meta.Defaults{"retention.bytes": "4096"}, "", week, 4096},
		{"explicit -2", topic(meta.StorageHybrid, "local.retention.ms", "-2", "local.retention.bytes", "-2"), nil, "", week, -1},
		{"limits below the total", topic(meta.StorageHybrid, "local.retention.ms", "1000", "retention.bytes", "9000", "local.retention.bytes", "100"), nil, "", 1000, 100},
		{"equal to the total", topic(meta.StorageHybrid, "local.retention.ms", "604800000"), nil, "", week, -1},
		{"local limit, total unlimited", topic(meta.StorageHybrid, "retention.ms", "-1", "local.retention.ms", "1000", "local.retention.bytes", "100"), nil, "", 1000, 100},
		{"both unlimited", topic(meta.StorageHybrid, "retention.ms", "-1", "local.retention.ms", "-1", "local.retention.bytes", "-1"), nil, "", -1, -1},
		{"local unlimited, total a limit: the total", topic(meta.StorageHybrid, "local.retention.ms", "-1", "retention.bytes", "9000", "local.retention.bytes", "-1"), nil, "", week, 9000},
		{"from server defaults", topic(meta.StorageHybrid), meta.Defaults{"local.retention.ms": "60000", "local.retention.bytes": "-1"}, "", 60000, -1},
		{"any mode may set them", topic(meta.StorageLocal, "local.retention.ms", "1000"), nil, "", 1000, -1},
		{"ms over the total", topic(meta.StorageHybrid, "retention.ms", "1000", "local.retention.ms", "1001"), nil,
			"local.retention.ms must not be more than retention.ms", 1000, -1},
		{"bytes over the total", topic(meta.StorageLocal, "retention.bytes", "1000", "local.retention.bytes", "2000"), nil,
			"local.retention.bytes must not be more than retention.bytes", week, 1000},
		{"bytes over a server default total", topic(meta.StorageHybrid, "local.retention.bytes", "2000"), meta.Defaults{"retention.bytes": "1000"},
			"local.retention.bytes must not be more than retention.bytes", week, 1000},
	} {
		err := meta.ValidateTopicConfigs(tc.topic, tc.defaults)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && (!errors.Is(err, meta.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want INVALID_CONFIG %q", tc.name, err, tc.wantErr)
		}
		// LocalRetention never exceeds the total, even for a combination
		// validation refuses (a server default changed afterwards).
		if ms, bytes := tc.topic.LocalRetention(tc.defaults); ms != tc.ms || bytes != tc.bytes {
			t.Errorf("%s: LocalRetention = %d ms, %d bytes; want %d, %d", tc.name, ms, bytes, tc.ms, tc.bytes)
		}
	}
	// Effective shows them (DescribeConfigs).
	eff := topic(meta.StorageHybrid, "local.retention.ms", "1000").Effective(nil)
	if cv := eff[meta.ConfigLocalRetentionMs]; cv.Value != "1000" || !cv.TopicSet {
		t.Fatalf("effective local.retention.ms: %+v", cv)
	}
	if cv := eff[meta.ConfigLocalRetentionBytes]; cv.Value != "-2" || cv.TopicSet || cv.ServerSet {
		t.Fatalf("effective local.retention.bytes: %+v", cv)
	}
}

// TestConfigValueResolvesLikeEffective: Value (and so Int64 and Bool, on the
// produce path) resolves each config as Effective does - topic value over
// server default over built-in default - without allocating.
func TestConfigValueResolvesLikeEffective(t *testing.T) {
	tp := &meta.Topic{Name: "t", StorageMode: meta.StorageHybrid, Configs: map[string]string{meta.ConfigMinInsyncReplicas: "2", meta.ConfigRetentionMs: "60000"}}
	defaults := meta.Defaults{meta.ConfigMinInsyncReplicas: "3", meta.ConfigRetentionBytes: "1048576", meta.ConfigStorageMode: "diskless"}
	for _, d := range []meta.Defaults{nil, defaults} {
		eff := tp.Effective(d)
		for _, def := range meta.TopicConfigDefs() {
			got, want := tp.Value(def.Name, d), eff[def.Name]
			if got.Value != want.Value || got.TopicSet != want.TopicSet || got.ServerSet != want.ServerSet || got.Definition.Name != def.Name {
				t.Errorf("defaults %v: Value(%s) = %+v, Effective has %+v", d, def.Name, got, want)
			}
		}
	}
	if got := tp.Int64(meta.ConfigMinInsyncReplicas, defaults); got != 2 {
		t.Errorf("min.insync.replicas = %d, want the topic's 2 over the server's 3", got)
	}
	if got := tp.Int64(meta.ConfigRetentionBytes, defaults); got != 1048576 {
		t.Errorf("retention.bytes = %d, want the server default 1048576", got)
	}
	if got := tp.Value(meta.ConfigStorageMode, defaults); got.Value != "hybrid" || !got.TopicSet {
		t.Errorf("storage.mode = %+v, want the topic's hybrid", got)
	}
	if got := tp.Value("no.such.config", defaults); got.Value != "" || got.TopicSet || got.ServerSet || got.Definition.Name != "" {
		t.Errorf("unknown config resolved to %+v", got)
	}
	if n := testing.AllocsPerRun(100, func() { tp.Int64(meta.ConfigMinInsyncReplicas, defaults) }); n != 0 {
		t.Errorf("Int64 allocates %.0f times per call, want 0", n)
	}
}

// TestBatchTimeoutIsBounded: a batch window longer than a client's request
// timeout would have every produce to the topic time out and retry, so
// remote.storage.batch.timeout.ms is refused above meta.MaxBatchTimeout
// with INVALID_CONFIG and a message naming the bound.
func TestBatchTimeoutIsBounded(t *testing.T) {
	for v, want := range map[string]string{
		"0":     "",
		"100":   "",
		"10000": "",
		"10001": "invalid config: remote.storage.batch.timeout.ms: 10001 is above the maximum 10000",
		"-1":    "invalid config: remote.storage.batch.timeout.ms: -1 is below the minimum 0",
		"soon":  `invalid config: remote.storage.batch.timeout.ms: "soon" is not an integer`,
	} {
		err := meta.ValidateTopicConfig(meta.ConfigBatchTimeoutMs, v)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", v, err)
		case want != "" && (err == nil || err.Error() != want || !errors.Is(err, meta.ErrInvalidConfig)):
			t.Errorf("%s: %v, want %q", v, err, want)
		}
	}
	if meta.MaxBatchTimeout.Milliseconds() != 10000 {
		t.Errorf("MaxBatchTimeout %v", meta.MaxBatchTimeout)
	}
}
