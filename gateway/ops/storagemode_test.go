package ops_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/gateway/ops"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/twmb/franz-go/pkg/kerr"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// noLogs is a LogClients for tests that only touch metadata.
type noLogs struct{}

func (noLogs) Client(string) (logv1.LogServiceClient, error) {
	return nil, errors.New("no log-service clients in this test")
}

// env is a real etcd with a started cache; nodes and uploaders are
// registered by the test, and Ops of any config run against it.
type env struct {
	t     *testing.T
	ctx   context.Context
	store *meta.Store
	cache *meta.Cache
	sess  *concurrency.Session
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	store := meta.NewStore(e.Client, "")
	cache := meta.NewCache(store, slog.New(slog.DiscardHandler))
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	sess, err := concurrency.NewSession(e.Client, concurrency.WithTTL(30))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return &env{t: t, ctx: ctx, store: store, cache: cache, sess: sess}
}

func (v *env) ops(cfg ops.Config) *ops.Ops {
	v.t.Helper()
	cfg.Store, cfg.Cache, cfg.Logs = v.store, v.cache, noLogs{}
	cfg.Logger = slog.New(slog.DiscardHandler)
	o, err := ops.New(cfg)
	if err != nil {
		v.t.Fatal(err)
	}
	return o
}

// waitFor polls cond for up to 10 s.
func (v *env) waitFor(what string, cond func() bool) {
	v.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			v.t.Fatalf("%s: not reached within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logNode registers (or re-registers: a log-service node takes its id
// over) a log-service node, under a session of its own.
func (v *env) logNode(id string, objectStore bool) {
	v.t.Helper()
	sess, err := concurrency.NewSession(v.store.Client(), concurrency.WithTTL(30))
	if err != nil {
		v.t.Fatal(err)
	}
	v.t.Cleanup(func() { sess.Close() })
	if err := v.store.RegisterLogNode(v.ctx, sess, meta.LogNode{ID: id, Addr: id + ":1", ObjectStore: objectStore}); err != nil {
		v.t.Fatal(err)
	}
	v.waitFor("log node "+id, func() bool { n, ok := v.cache.LogNode(id); return ok && n.ObjectStore == objectStore })
}

func (v *env) uploader(id string, objectStore bool) {
	v.t.Helper()
	if err := v.store.RegisterUploader(v.ctx, v.sess, meta.Uploader{ID: id, Addr: id + ":1", ObjectStore: objectStore}, false); err != nil {
		v.t.Fatal(err)
	}
	v.waitFor("uploader "+id, func() bool {
		for _, u := range v.cache.Uploaders() {
			if u.ID == id {
				return true
			}
		}
		return false
	})
}

func (v *env) create(o *ops.Ops, name string, rf int16, configs ...string) (*meta.Topic, *ops.Error) {
	v.t.Helper()
	spec := ops.TopicSpec{Name: name, Partitions: 2, ReplicationFactor: rf}
	for i := 0; i < len(configs); i += 2 {
		spec.Configs = append(spec.Configs, ops.ConfigEntry{Name: configs[i], Value: &configs[i+1]})
	}
	t, rev, e := o.CreateTopic(v.ctx, spec, false)
	if e == nil {
		if err := o.WaitRevision(v.ctx, rev, 0); err != nil {
			v.t.Fatal(err)
		}
	}
	return t, e
}

func (v *env) alter(o *ops.Ops, name string, replace, validateOnly bool, changes ...ops.ConfigChange) *ops.Error {
	v.t.Helper()
	rev, e := o.AlterTopicConfigs(v.ctx, name, changes, replace, validateOnly)
	if e == nil && rev > 0 {
		if err := o.WaitRevision(v.ctx, rev, 0); err != nil {
			v.t.Fatal(err)
		}
	}
	return e
}

func (v *env) mode(name string) meta.StorageMode {
	v.t.Helper()
	t, err := v.store.GetTopic(v.ctx, name)
	if err != nil {
		v.t.Fatal(err)
	}
	return t.StorageMode
}

func set(name, value string) ops.ConfigChange {
	return ops.ConfigChange{Name: name, Op: ops.ConfigSet, Value: &value}
}

func del(name string) ops.ConfigChange { return ops.ConfigChange{Name: name, Op: ops.ConfigDelete} }

// wantInvalidConfig fails unless e is INVALID_CONFIG whose message starts
// with prefix and mentions every one of mentions.
func wantInvalidConfig(t *testing.T, what string, e *ops.Error, prefix string, mentions ...string) {
	t.Helper()
	if e == nil || e.Code != kerr.InvalidConfig || !strings.HasPrefix(e.Msg, prefix) {
		t.Fatalf("%s: %v, want INVALID_CONFIG %q...", what, e, prefix)
	}
	for _, m := range mentions {
		if !strings.Contains(e.Msg, m) {
			t.Fatalf("%s: message %q does not mention %q", what, e.Msg, m)
		}
	}
}

// TestHybridCreate: storage.mode=hybrid is accepted like local once the
// cluster has an object store (every live log-service node and a live
// uploader with one), and refused with INVALID_CONFIG naming what is
// missing otherwise. Its replication factor is resolved as a local
// topic's.
func TestHybridCreate(t *testing.T) {
	v := newEnv(t)
	o := v.ops(ops.Config{})
	v.logNode("log-1", true)
	v.logNode("log-2", true)

	_, e := v.create(o, "h", -1, meta.ConfigStorageMode, "hybrid")
	wantInvalidConfig(t, "no uploader", e, "storage.mode=hybrid needs an object store: ", "no uploader is running", "--object-store")
	v.uploader("up-plain", false)
	_, e = v.create(o, "h", -1, meta.ConfigStorageMode, "hybrid")
	wantInvalidConfig(t, "uploader without a store", e, "storage.mode=hybrid needs an object store: ", "no live uploader has one")
	if _, err := v.store.GetTopic(v.ctx, "h"); !errors.Is(err, meta.ErrTopicNotFound) {
		t.Fatalf("refused topic stored: %v", err)
	}

	v.uploader("up-1", true)
	// Replication as for local: more replicas than nodes is refused...
	_, e = v.create(o, "h", 3, meta.ConfigStorageMode, "hybrid")
	if e == nil || e.Code != kerr.InvalidReplicationFactor {
		t.Fatalf("hybrid with replication factor 3 on 2 nodes: %v", e)
	}
	// ...and -1 is min(3, live nodes), with a replica set per partition.
	top, e := v.create(o, "h", -1, meta.ConfigStorageMode, "hybrid", meta.ConfigLocalRetentionMs, "3600000")
	if e != nil {
		t.Fatalf("hybrid create: %v", e)
	}
	stored, err := v.store.GetTopic(v.ctx, "h")
	if err != nil {
		t.Fatal(err)
	}
	if top.StorageMode != meta.StorageHybrid || stored.StorageMode != meta.StorageHybrid || stored.ReplicationFactor != 2 ||
		stored.Configs[meta.ConfigLocalRetentionMs] != "3600000" || stored.Configs[meta.ConfigStorageMode] != "" {
		t.Fatalf("stored %+v", stored)
	}
	for _, p := range v.cache.Partitions("h") {
		if len(p.Replicas) != 2 || p.Home != p.Replicas[0] {
			t.Fatalf("partition %d: replicas %v home %q", p.Partition, p.Replicas, p.Home)
		}
	}
	// Validate-only checks the same and writes nothing.
	if _, _, e := o.CreateTopic(v.ctx, ops.TopicSpec{Name: "h-validate", Partitions: 1, ReplicationFactor: -1,
		Configs: []ops.ConfigEntry{{Name: meta.ConfigStorageMode, Value: ptr("hybrid")}}}, true); e != nil {
		t.Fatalf("validate only: %v", e)
	}
	// DescribeConfigs' view: the mode, alterable, and local retention.
	cached, _ := v.cache.Topic("h")
	cfgs := map[string]ops.TopicConfig{}
	for _, tc := range o.TopicConfigs(&cached, nil) {
		cfgs[tc.Definition.Name] = tc
	}
	if sm := cfgs[meta.ConfigStorageMode]; sm.Value != "hybrid" || sm.ReadOnly || ops.Layer(sm.ConfigValue) != ops.LayerTopic {
		t.Fatalf("storage.mode: %+v", sm)
	}
	if lr := cfgs[meta.ConfigLocalRetentionMs]; lr.Value != "3600000" || ops.Layer(lr.ConfigValue) != ops.LayerTopic {
		t.Fatalf("local.retention.ms: %+v", lr)
	}
	if lr := cfgs[meta.ConfigLocalRetentionBytes]; lr.Value != "-2" || ops.Layer(lr.ConfigValue) != ops.LayerDefault {
		t.Fatalf("local.retention.bytes: %+v", lr)
	}
	if ms, bytes := cached.LocalRetention(nil); ms != 3600000 || bytes != -1 {
		t.Fatalf("LocalRetention: %d ms, %d bytes", ms, bytes)
	}

	// A log-service node without an object store makes the cluster unable
	// to serve hybrid topics: the answer names it.
	v.logNode("log-3", false)
	_, e = v.create(o, "h2", -1, meta.ConfigStorageMode, "hybrid")
	wantInvalidConfig(t, "node without a store", e, "storage.mode=hybrid needs an object store: ", "log-service node log-3 has none")
	// Local topics do not care.
	if _, e := v.create(o, "l", -1, meta.ConfigStorageMode, "local"); e != nil {
		t.Fatalf("local create: %v", e)
	}
}

// TestHybridDefaultMode: with hybrid as the gateway's default mode, a
// topic created without storage.mode is hybrid, and needs the object
// store like an explicit one.
func TestHybridDefaultMode(t *testing.T) {
	v := newEnv(t)
	o := v.ops(ops.Config{DefaultStorageMode: meta.StorageHybrid})
	v.logNode("log-1", true)
	_, e := v.create(o, "d1", -1)
	wantInvalidConfig(t, "default hybrid without uploader", e, "storage.mode=hybrid needs an object store: ", "uploader")
	v.uploader("up-1", true)
	if _, e := v.create(o, "d1", -1); e != nil || v.mode("d1") != meta.StorageHybrid {
		t.Fatalf("default hybrid: %v, stored %s", e, v.mode("d1"))
	}
	if _, e := v.create(o, "d2", -1, meta.ConfigStorageMode, "local"); e != nil || v.mode("d2") != meta.StorageLocal {
		t.Fatalf("explicit local: %v", e)
	}
	// DELETE of storage.mode sets the default: local -> hybrid.
	if e := v.alter(o, "d2", false, false, del(meta.ConfigStorageMode)); e != nil || v.mode("d2") != meta.StorageHybrid {
		t.Fatalf("delete storage.mode with a hybrid default: %v, stored %s", e, v.mode("d2"))
	}
}

// TestStorageModeAlter: local and hybrid change into each other through
// IncrementalAlterConfigs (SET, DELETE) and AlterConfigs; becoming hybrid
// needs the object store; diskless never changes and nothing becomes
// diskless. The topic record's StorageMode changes (what DescribeConfigs
// shows), never Configs.
func TestStorageModeAlter(t *testing.T) {
	v := newEnv(t)
	o := v.ops(ops.Config{})
	v.logNode("log-1", true)
	v.uploader("up-1", true)
	if _, e := v.create(o, "t", 1, meta.ConfigRetentionMs, "86400000"); e != nil {
		t.Fatal(e)
	}
	if _, e := v.create(o, "dl", 1, meta.ConfigStorageMode, "diskless"); e != nil {
		t.Fatal(e)
	}
	described := func(name string) (string, bool) {
		cached, _ := v.cache.Topic(name)
		for _, tc := range o.TopicConfigs(&cached, map[string]bool{meta.ConfigStorageMode: true}) {
			return tc.Value, tc.ReadOnly
		}
		t.Fatalf("%s: storage.mode not described", name)
		return "", false
	}
	step := func(what string, want meta.StorageMode, replace bool, changes ...ops.ConfigChange) {
		t.Helper()
		if e := v.alter(o, "t", replace, false, changes...); e != nil {
			t.Fatalf("%s: %v", what, e)
		}
		stored, err := v.store.GetTopic(v.ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		if stored.StorageMode != want || stored.Configs[meta.ConfigStorageMode] != "" {
			t.Fatalf("%s: stored mode %s, configs %v; want %s", what, stored.StorageMode, stored.Configs, want)
		}
		if got, ro := described("t"); got != string(want) || ro {
			t.Fatalf("%s: described %s (read-only %v), want %s", what, got, ro, want)
		}
	}
	// Validate-only writes nothing.
	if e := v.alter(o, "t", false, true, set(meta.ConfigStorageMode, "hybrid")); e != nil || v.mode("t") != meta.StorageLocal {
		t.Fatalf("validate only: %v, stored %s", e, v.mode("t"))
	}
	step("incremental SET hybrid", meta.StorageHybrid, false, set(meta.ConfigStorageMode, "hybrid"), set(meta.ConfigLocalRetentionMs, "3600000"))
	if c, _ := v.store.GetTopic(v.ctx, "t"); c.Configs[meta.ConfigRetentionMs] != "86400000" || c.Configs[meta.ConfigLocalRetentionMs] != "3600000" {
		t.Fatalf("incremental change lost configs: %v", c.Configs)
	}
	step("SET hybrid again (no change)", meta.StorageHybrid, false, set(meta.ConfigStorageMode, "hybrid"))
	step("incremental DELETE (default local)", meta.StorageLocal, false, del(meta.ConfigStorageMode))
	step("AlterConfigs hybrid", meta.StorageHybrid, true, set(meta.ConfigStorageMode, "hybrid"), set(meta.ConfigRetentionBytes, "1048576"))
	step("AlterConfigs without storage.mode keeps it", meta.StorageHybrid, true, set(meta.ConfigRetentionMs, "1000"))
	step("AlterConfigs local", meta.StorageLocal, true, set(meta.ConfigStorageMode, "local"))

	// Nothing becomes diskless; a diskless topic keeps its mode.
	for _, replace := range []bool{false, true} {
		e := v.alter(o, "t", replace, false, set(meta.ConfigStorageMode, "diskless"))
		wantInvalidConfig(t, "local -> diskless", e, "a local or hybrid topic cannot become diskless")
		for _, to := range []string{"local", "hybrid"} {
			e = v.alter(o, "dl", replace, false, set(meta.ConfigStorageMode, to))
			wantInvalidConfig(t, "diskless -> "+to, e, "storage.mode of a diskless topic cannot be changed")
		}
	}
	wantInvalidConfig(t, "diskless DELETE (default local)", v.alter(o, "dl", false, false, del(meta.ConfigStorageMode)), "storage.mode of a diskless topic cannot be changed")
	step("back to hybrid", meta.StorageHybrid, false, set(meta.ConfigStorageMode, "hybrid"))
	wantInvalidConfig(t, "hybrid -> diskless", v.alter(o, "t", false, false, set(meta.ConfigStorageMode, "diskless")), "a local or hybrid topic cannot become diskless")
	if v.mode("dl") != meta.StorageDiskless || v.mode("t") != meta.StorageHybrid {
		t.Fatalf("refused changes were written: dl %s, t %s", v.mode("dl"), v.mode("t"))
	}
	if got, ro := described("dl"); got != "diskless" || !ro {
		t.Fatalf("diskless storage.mode described %s, read-only %v", got, ro)
	}
	// Setting the mode a diskless topic has is fine.
	if e := v.alter(o, "dl", false, false, set(meta.ConfigStorageMode, "diskless"), set(meta.ConfigRetentionMs, "5000")); e != nil {
		t.Fatalf("diskless SET diskless: %v", e)
	}

	// Without an object store a topic cannot become hybrid (validate-only
	// included), but a hybrid one can still become local.
	step("hybrid -> local", meta.StorageLocal, false, set(meta.ConfigStorageMode, "local"))
	v.logNode("log-2", false)
	for _, validateOnly := range []bool{true, false} {
		e := v.alter(o, "t", false, validateOnly, set(meta.ConfigStorageMode, "hybrid"))
		wantInvalidConfig(t, "local -> hybrid without an object store", e, "storage.mode=hybrid needs an object store: ", "log-service node log-2 has none")
	}
	if v.mode("t") != meta.StorageLocal {
		t.Fatalf("refused change written: %s", v.mode("t"))
	}
	v.logNode("log-2", true) // restarted with --object-store
	step("local -> hybrid once every node has a store", meta.StorageHybrid, false, set(meta.ConfigStorageMode, "hybrid"))
	v.logNode("log-3", false)
	step("hybrid -> local without an object store", meta.StorageLocal, false, set(meta.ConfigStorageMode, "local"))
}

// TestLocalRetentionValidation: local.retention.ms/bytes take -2 (the
// total), -1 (no local limit) or a limit no larger than the total limit,
// at creation and after every alter (the result is judged, with server
// defaults), on topics of any mode.
func TestLocalRetentionValidation(t *testing.T) {
	v := newEnv(t)
	o := v.ops(ops.Config{TopicDefaults: meta.Defaults{meta.ConfigRetentionBytes: "1000000"}})
	v.logNode("log-1", true)
	v.uploader("up-1", true)
	for _, tc := range []struct {
		configs []string
		want    string // "" accepted
	}{
		{[]string{meta.ConfigLocalRetentionMs, "-3"}, "invalid config: local.retention.ms: -3 is below the minimum -2"},
		{[]string{meta.ConfigLocalRetentionBytes, "-3"}, "invalid config: local.retention.bytes: -3 is below the minimum -2"},
		{[]string{meta.ConfigRetentionMs, "1000", meta.ConfigLocalRetentionMs, "1001"}, "invalid config: local.retention.ms must not be more than retention.ms"},
		{[]string{meta.ConfigLocalRetentionBytes, "1000001"}, "invalid config: local.retention.bytes must not be more than retention.bytes"},
		{[]string{meta.ConfigLocalRetentionMs, "-2", meta.ConfigLocalRetentionBytes, "-2"}, ""},
		{[]string{meta.ConfigLocalRetentionMs, "-1", meta.ConfigLocalRetentionBytes, "-1"}, ""},
		{[]string{meta.ConfigRetentionMs, "1000", meta.ConfigLocalRetentionMs, "1000", meta.ConfigLocalRetentionBytes, "1000000"}, ""},
		{[]string{meta.ConfigRetentionMs, "-1", meta.ConfigLocalRetentionMs, "99999999"}, ""},
	} {
		for _, mode := range []string{"local", "hybrid", "diskless"} {
			name := "lr-" + mode
			_, e := v.create(o, name, 1, append([]string{meta.ConfigStorageMode, mode}, tc.configs...)...)
			switch {
			case tc.want == "" && e != nil:
				t.Fatalf("%s %v: %v", mode, tc.configs, e)
			case tc.want != "":
				wantInvalidConfig(t, mode+" "+strings.Join(tc.configs, " "), e, tc.want)
			case e == nil:
				if _, err := v.store.DeleteTopic(v.ctx, name); err != nil {
					t.Fatal(err)
				}
				v.waitFor("delete "+name, func() bool { _, ok := v.cache.Topic(name); return !ok })
			}
		}
	}

	// Alters: the result is judged, whichever config moved.
	if _, e := v.create(o, "lr", 1, meta.ConfigStorageMode, "hybrid", meta.ConfigLocalRetentionMs, "60000"); e != nil {
		t.Fatal(e)
	}
	wantInvalidConfig(t, "retention.ms below local", v.alter(o, "lr", false, false, set(meta.ConfigRetentionMs, "59999")),
		"invalid config: local.retention.ms must not be more than retention.ms")
	wantInvalidConfig(t, "local above retention.ms", v.alter(o, "lr", false, false, set(meta.ConfigLocalRetentionMs, "604800001")),
		"invalid config: local.retention.ms must not be more than retention.ms")
	wantInvalidConfig(t, "local -3", v.alter(o, "lr", false, false, set(meta.ConfigLocalRetentionBytes, "-3")), "invalid config: local.retention.bytes")
	if e := v.alter(o, "lr", false, false, set(meta.ConfigRetentionMs, "60000"), set(meta.ConfigLocalRetentionBytes, "-1")); e != nil {
		t.Fatalf("equal limits: %v", e)
	}
	// AlterConfigs drops local.retention.ms back to -2: fine with any total.
	if e := v.alter(o, "lr", true, false, set(meta.ConfigRetentionMs, "1")); e != nil {
		t.Fatalf("AlterConfigs: %v", e)
	}
	cached, _ := v.cache.Topic("lr")
	if ms, bytes := cached.LocalRetention(meta.Defaults{meta.ConfigRetentionBytes: "1000000"}); ms != 1 || bytes != 1000000 {
		t.Fatalf("LocalRetention after AlterConfigs: %d ms, %d bytes", ms, bytes)
	}
}

func ptr(s string) *string { return &s }
