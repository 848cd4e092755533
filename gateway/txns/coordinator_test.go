package txns_test

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/gateway/groups"
	"github.com/streamline-dev/streamline/gateway/ops"
	"github.com/streamline-dev/streamline/gateway/txns"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/twmb/franz-go/pkg/kerr"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The coordinator runs on a real etcd with real group-shard ownership
// (groups.Coordinator); only the marker writer, which is a log-service
// call in production, is the recorder below.

// markers records the markers the coordinator writes; while fail is set
// every marker is refused with it.
type markers struct {
	mu       sync.Mutex
	fail     *kerr.Error
	attempts []ops.TxnMarker
	written  []ops.TxnMarker
}

func (m *markers) WriteTxnMarkers(_ context.Context, _ time.Duration, ms []ops.TxnMarker) []*kerr.Error {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*kerr.Error, len(ms))
	for i, mk := range ms {
		m.attempts = append(m.attempts, mk)
		if m.fail != nil {
			out[i] = m.fail
			continue
		}
		m.written = append(m.written, mk)
	}
	return out
}

func (m *markers) setFail(e *kerr.Error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = e
}

// writtenFor is the markers written for producer pid, sorted by partition.
func (m *markers) writtenFor(pid int64) []ops.TxnMarker {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ops.TxnMarker
	for _, mk := range m.written {
		if mk.ProducerID == pid {
			out = append(out, mk)
		}
	}
	return out
}

func (m *markers) attemptsFor(pid int64) []ops.TxnMarker {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ops.TxnMarker
	for _, mk := range m.attempts {
		if mk.ProducerID == pid {
			out = append(out, mk)
		}
	}
	return out
}

type env struct {
	t     *testing.T
	etcd  *metatest.Etcd
	ctx   context.Context
	store *meta.Store
}

var quiet = slog.New(slog.DiscardHandler)

// newEnv starts etcd with topics t1 (2 partitions) and t2 (1).
func newEnv(t *testing.T) *env {
	t.Helper()
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	v := &env{t: t, etcd: e, ctx: ctx, store: meta.NewStore(e.Client, "")}
	v.createTopic("t1", 2)
	v.createTopic("t2", 1)
	return v
}

func (v *env) createTopic(name string, partitions int32) {
	v.t.Helper()
	top := &meta.Topic{Name: name, Partitions: partitions, ReplicationFactor: 1}
	if _, err := v.store.CreateTopic(v.ctx, top, []meta.LogNode{{ID: "log-1", Addr: "127.0.0.1:1"}}); err != nil {
		v.t.Fatal(err)
	}
}

// node is one gateway's coordinators.
type node struct {
	groups  *groups.Coordinator
	txns    *txns.Coordinator
	markers *markers
	cache   *meta.Cache
	closed  bool
}

// start starts the group and transaction coordinators of gateway id; it
// claims every free shard (no gateway is registered, so each node wants
// them all).
func (v *env) start(id string, abortInterval time.Duration) *node {
	v.t.Helper()
	return v.startWith(id, func(c *txns.Config) { c.AbortInterval = abortInterval })
}

// startWith is start with the coordinator's config changed by set.
func (v *env) startWith(id string, set func(*txns.Config)) *node {
	v.t.Helper()
	cache := meta.NewCache(v.store, quiet)
	if err := cache.Start(v.ctx); err != nil {
		v.t.Fatal(err)
	}
	g, err := groups.New(groups.Config{Store: v.store, Cache: cache, Etcd: v.etcd.Client, GatewayID: id, SessionTTL: 5, Logger: quiet})
	if err != nil {
		v.t.Fatal(err)
	}
	m := &markers{}
	cfg := txns.Config{
		Store: v.store, Cache: cache, Groups: g, Markers: m, GatewayID: id,
		MaxTimeout: time.Minute, Logger: quiet,
	}
	set(&cfg)
	tx, err := txns.New(cfg)
	if err != nil {
		v.t.Fatal(err)
	}
	tx.Start()
	g.Start()
	g.WaitClaimed(v.ctx)
	n := &node{groups: g, txns: tx, markers: m, cache: cache}
	v.t.Cleanup(n.close)
	return n
}

func (n *node) close() {
	if !n.closed {
		n.closed = true
		n.txns.Close()
		n.groups.Close()
		n.cache.Close()
	}
}

func (v *env) stored(id string) *meta.TxnMeta {
	v.t.Helper()
	st, err := v.store.LoadTxn(v.ctx, id)
	if err != nil {
		v.t.Fatal(err)
	}
	return st.Meta
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within 15s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func wantErr(t *testing.T, what string, got, want *kerr.Error) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
}

// initPID initialises id and fails the test on an error.
func initPID(t *testing.T, n *node, id string, expected *txns.ProducerIDAndEpoch) txns.ProducerIDAndEpoch {
	t.Helper()
	var p txns.ProducerIDAndEpoch
	var e *kerr.Error
	// Right after startup the shard may still be loading.
	waitFor(t, "InitProducerId of "+id, func() bool {
		p, e = n.txns.InitProducerID(context.Background(), id, 60000, expected)
		return e != kerr.CoordinatorLoadInProgress && e != kerr.ConcurrentTransactions
	})
	if e != nil {
		t.Fatalf("InitProducerId(%s, %v): %v", id, expected, e)
	}
	return p
}

// listAll lists once no shard of n is loading any more.
func listAll(t *testing.T, n *node, f txns.ListFilter) ([]txns.Listing, []string, *kerr.Error) {
	t.Helper()
	var list []txns.Listing
	var unknown []string
	var e *kerr.Error
	waitFor(t, "every shard loaded", func() bool {
		list, unknown, e = n.txns.List(f)
		return e != kerr.CoordinatorLoadInProgress
	})
	return list, unknown, e
}

func tps(pairs ...any) []meta.TopicPartition {
	var out []meta.TopicPartition
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, meta.TopicPartition{Topic: pairs[i].(string), Partition: int32(pairs[i+1].(int))})
	}
	return out
}

func add(t *testing.T, n *node, id string, p txns.ProducerIDAndEpoch, parts []meta.TopicPartition) []*kerr.Error {
	t.Helper()
	return n.txns.AddPartitions(context.Background(), id, p, parts)
}

func allErr(t *testing.T, what string, got []*kerr.Error, want *kerr.Error) {
	t.Helper()
	for i, e := range got {
		if e != want {
			t.Fatalf("%s: partition %d: %v, want %v", what, i, e, want)
		}
	}
}

// TestInitProducerIDEpochs: a new transactional id gets a producer id at
// epoch 0, each InitProducerId bumps the epoch (fencing the older
// producer), KIP-360 recovery bumps for the current producer and fences a
// stale one, and an exhausted epoch rotates the producer id; every answer
// is persisted before it is given.
func TestInitProducerIDEpochs(t *testing.T) {
	v := newEnv(t)
	seedExhausted(v, "rotate-plain", 7001)
	seedExhausted(v, "rotate-kip360", 7002)
	n := v.start("gw-a", time.Hour)
	ctx := context.Background()

	_, e := n.txns.InitProducerID(ctx, "", 1000, nil)
	wantErr(t, "empty id", e, kerr.InvalidRequest)
	_, e = n.txns.InitProducerID(ctx, "tx", 0, nil)
	wantErr(t, "timeout 0", e, kerr.InvalidTransactionTimeout)
	_, e = n.txns.InitProducerID(ctx, "tx", 60001, nil) // max is 1 minute here
	wantErr(t, "timeout above the maximum", e, kerr.InvalidTransactionTimeout)
	if m := v.stored("tx"); m != nil {
		t.Fatalf("refused requests stored %+v", m)
	}

	p0 := initPID(t, n, "tx", nil)
	if p0.Epoch != 0 || p0.ID <= 0 {
		t.Fatalf("new id: %+v, want a producer id at epoch 0", p0)
	}
	if m := v.stored("tx"); m == nil || m.ProducerID != p0.ID || m.ProducerEpoch != 0 || m.State != meta.TxnEmpty || m.TimeoutMs != 60000 {
		t.Fatalf("persisted %+v", m)
	}
	p1 := initPID(t, n, "tx", nil)
	if p1.ID != p0.ID || p1.Epoch != 1 {
		t.Fatalf("second init: %+v, want %d at epoch 1", p1, p0.ID)
	}
	allErr(t, "the fenced producer adds", add(t, n, "tx", p0, tps("t1", 0)), kerr.ProducerFenced)
	allErr(t, "another producer id", add(t, n, "tx", txns.ProducerIDAndEpoch{ID: p0.ID + 1000, Epoch: 1}, tps("t1", 0)), kerr.InvalidProducerIDMapping)
	allErr(t, "an unknown transactional id", add(t, n, "nobody", p1, tps("t1", 0)), kerr.InvalidProducerIDMapping)

	// KIP-360: the current producer recovers with a bump...
	p2 := initPID(t, n, "tx", &p1)
	if p2.ID != p1.ID || p2.Epoch != 2 {
		t.Fatalf("recovery of %+v: %+v, want epoch 2", p1, p2)
	}
	// ...and its retry (the answer was lost) gets the same answer.
	if again := initPID(t, n, "tx", &p1); again != p2 {
		t.Fatalf("retried recovery: %+v, want %+v", again, p2)
	}
	_, e = n.txns.InitProducerID(ctx, "tx", 60000, &p0)
	wantErr(t, "recovery with a stale epoch", e, kerr.ProducerFenced)
	_, e = n.txns.InitProducerID(ctx, "tx", 60000, &txns.ProducerIDAndEpoch{ID: p0.ID + 1000, Epoch: 2})
	wantErr(t, "recovery with another producer id", e, kerr.ProducerFenced)
	if m := v.stored("tx"); m.ProducerEpoch != 2 || m.LastProducerEpoch != 1 {
		t.Fatalf("after recovery: persisted epoch %d last %d, want 2 and 1", m.ProducerEpoch, m.LastProducerEpoch)
	}
	// A new producer instance (no expected epoch) fences the recovered one.
	p3 := initPID(t, n, "tx", nil)
	if p3.Epoch != 3 {
		t.Fatalf("new instance: %+v", p3)
	}
	_, e = n.txns.InitProducerID(ctx, "tx", 60000, &p2)
	wantErr(t, "recovery after another instance initialised", e, kerr.ProducerFenced)

	// Epoch exhaustion rotates the producer id.
	r := initPID(t, n, "rotate-plain", nil)
	if r.ID == 7001 || r.Epoch != 0 {
		t.Fatalf("exhausted epoch: %+v, want a new producer id at epoch 0", r)
	}
	if m := v.stored("rotate-plain"); m.ProducerID != r.ID || m.LastProducerID != 7001 || m.LastProducerEpoch != -1 {
		t.Fatalf("rotation persisted %+v", m)
	}
	old := txns.ProducerIDAndEpoch{ID: 7002, Epoch: math.MaxInt16 - 1}
	r2 := initPID(t, n, "rotate-kip360", &old)
	if r2.ID == 7002 || r2.Epoch != 0 {
		t.Fatalf("KIP-360 rotation: %+v", r2)
	}
	if again := initPID(t, n, "rotate-kip360", &old); again != r2 {
		t.Fatalf("retried rotation: %+v, want %+v again", again, r2)
	}
}

// seedExhausted stores an id whose producer epoch is exhausted, as a
// coordinator of its shard would have (before any coordinator runs).
func seedExhausted(v *env, id string, pid int64) {
	v.t.Helper()
	lease, err := v.etcd.Client.Grant(v.ctx, 30)
	if err != nil {
		v.t.Fatal(err)
	}
	g, ok, err := v.store.ClaimGroupShard(v.ctx, lease.ID, meta.GroupShard(id), "seeder")
	if err != nil || !ok {
		v.t.Fatalf("claim: %v %v", ok, err)
	}
	m := &meta.TxnMeta{
		TransactionalID: id, ProducerID: pid, ProducerEpoch: math.MaxInt16 - 1,
		LastProducerID: -1, LastProducerEpoch: -1, State: meta.TxnCompleteCommit,
		TimeoutMs: 60000, StartTimeMs: 1, LastUpdateTimeMs: 1,
	}
	if _, err := v.store.SaveTxn(v.ctx, g, m, 0); err != nil {
		v.t.Fatal(err)
	}
	if _, err := v.etcd.Client.Revoke(v.ctx, lease.ID); err != nil {
		v.t.Fatal(err)
	}
}

// TestCommitAndAbort: partitions join a transaction (all or none), EndTxn
// writes a marker to each with the producer's id and epoch and answers
// once the Complete state is persisted; retries of a completed end
// succeed, ends that contradict the state are INVALID_TXN_STATE.
func TestCommitAndAbort(t *testing.T) {
	v := newEnv(t)
	n := v.start("gw-a", time.Hour)
	ctx := context.Background()
	p := initPID(t, n, "shop", nil)

	_, e := n.txns.Describe(ctx, "never")
	wantErr(t, "describe an unknown id", e, kerr.TransactionalIDNotFound)
	wantErr(t, "commit with nothing open", errOf(n.txns.EndTxn(ctx, "shop", p, true, false)), kerr.InvalidTxnState)

	got := add(t, n, "shop", p, tps("t1", 0, "missing", 0, "t1", 7))
	if got[0] != kerr.OperationNotAttempted || got[1] != kerr.UnknownTopicOrPartition || got[2] != kerr.UnknownTopicOrPartition {
		t.Fatalf("add with unknown partitions: %v", got)
	}
	if m := v.stored("shop"); m.State != meta.TxnEmpty || len(m.Partitions) != 0 {
		t.Fatalf("a refused add changed the state: %+v", m)
	}
	before := time.Now().UnixMilli()
	allErr(t, "add", add(t, n, "shop", p, tps("t2", 0, "t1", 1)), nil)
	allErr(t, "add again, one more", add(t, n, "shop", p, tps("t1", 1, "t1", 0)), nil)
	m := v.stored("shop")
	wantParts := []meta.TxnPartition{{Topic: "t1", Partition: 0}, {Topic: "t1", Partition: 1}, {Topic: "t2", Partition: 0}}
	for i := range m.Partitions {
		m.Partitions[i].TopicID = meta.TopicID{} // compared below
	}
	if m.State != meta.TxnOngoing || !slices.Equal(m.Partitions, wantParts) || m.StartTimeMs < before {
		t.Fatalf("persisted after adds: %+v", m)
	}
	if top, _ := n.cache.Topic("t1"); v.stored("shop").Partitions[0].TopicID != top.ID {
		t.Fatal("the partition's topic id is not recorded")
	}
	d, e := n.txns.Describe(ctx, "shop")
	if e != nil || d.State != meta.TxnOngoing || d.ProducerID != p.ID || len(d.Partitions) != 3 || d.TimeoutMs != 60000 || d.StartTimeMs != m.StartTimeMs {
		t.Fatalf("describe: %+v %v", d, e)
	}
	list, _, e := listAll(t, n, txns.ListFilter{States: []string{"Ongoing"}, MinDurationMs: -1})
	if e != nil || len(list) != 1 || list[0].TransactionalID != "shop" || list[0].ProducerID != p.ID {
		t.Fatalf("list Ongoing: %+v %v", list, e)
	}

	wantErr(t, "end at a stale epoch", errOf(n.txns.EndTxn(ctx, "shop", txns.ProducerIDAndEpoch{ID: p.ID, Epoch: p.Epoch - 1}, true, false)), kerr.ProducerFenced)
	wantErr(t, "end with another producer id", errOf(n.txns.EndTxn(ctx, "shop", txns.ProducerIDAndEpoch{ID: p.ID + 1, Epoch: p.Epoch}, true, false)), kerr.InvalidProducerIDMapping)
	wantErr(t, "commit", errOf(n.txns.EndTxn(ctx, "shop", p, true, false)), nil)
	written := n.markers.writtenFor(p.ID)
	if len(written) != 3 {
		t.Fatalf("commit wrote %d markers, want 3: %+v", len(written), written)
	}
	for _, mk := range written {
		if !mk.Commit || mk.ProducerEpoch != p.Epoch || mk.CoordinatorEpoch < 1 {
			t.Fatalf("commit marker %+v", mk)
		}
	}
	if m := v.stored("shop"); m.State != meta.TxnCompleteCommit || len(m.Partitions) != 0 || m.ProducerEpoch != p.Epoch {
		t.Fatalf("after commit: %+v", m)
	}
	wantErr(t, "commit retried", errOf(n.txns.EndTxn(ctx, "shop", p, true, false)), nil)
	wantErr(t, "abort after a commit", errOf(n.txns.EndTxn(ctx, "shop", p, false, false)), kerr.InvalidTxnState)
	if len(n.markers.writtenFor(p.ID)) != 3 {
		t.Fatal("a retried commit wrote markers again")
	}

	// The next transaction of the same producer (same epoch: version 1)
	// aborts.
	allErr(t, "add to the next transaction", add(t, n, "shop", p, tps("t2", 0)), nil)
	wantErr(t, "abort", errOf(n.txns.EndTxn(ctx, "shop", p, false, false)), nil)
	written = n.markers.writtenFor(p.ID)
	if len(written) != 4 || written[3].Commit || written[3].Topic != "t2" {
		t.Fatalf("abort markers: %+v", written)
	}
	if m := v.stored("shop"); m.State != meta.TxnCompleteAbort {
		t.Fatalf("after abort: %+v", m)
	}
	wantErr(t, "commit after an abort", errOf(n.txns.EndTxn(ctx, "shop", p, true, false)), kerr.InvalidTxnState)
	list, unknown, e := n.txns.List(txns.ListFilter{States: []string{"CompleteAbort", "Bogus"}, ProducerIDs: []int64{p.ID}, MinDurationMs: -1})
	if e != nil || len(list) != 1 || list[0].State != meta.TxnCompleteAbort || !slices.Equal(unknown, []string{"Bogus"}) {
		t.Fatalf("list CompleteAbort: %+v unknown %v %v", list, unknown, e)
	}
	if list, _, _ := n.txns.List(txns.ListFilter{ProducerIDs: []int64{p.ID + 1}, MinDurationMs: -1}); len(list) != 0 {
		t.Fatalf("producer filter: %+v", list)
	}
}

// TestInitProducerIDAbortsOngoing: a new producer instance initialising
// while its predecessor's transaction is open aborts that transaction at
// a bumped epoch (CONCURRENT_TRANSACTIONS meanwhile), then gets the epoch
// after it; the predecessor is fenced.
func TestInitProducerIDAbortsOngoing(t *testing.T) {
	v := newEnv(t)
	n := v.start("gw-a", time.Hour)
	ctx := context.Background()
	old := initPID(t, n, "app", nil)
	allErr(t, "add", add(t, n, "app", old, tps("t1", 0, "t1", 1)), nil)

	_, e := n.txns.InitProducerID(ctx, "app", 60000, nil)
	wantErr(t, "init while a transaction is open", e, kerr.ConcurrentTransactions)
	waitFor(t, "the abort completes", func() bool { return v.stored("app").State == meta.TxnCompleteAbort })
	written := n.markers.writtenFor(old.ID)
	if len(written) != 2 {
		t.Fatalf("abort markers: %+v", written)
	}
	for _, mk := range written {
		if mk.Commit || mk.ProducerEpoch != old.Epoch+1 {
			t.Fatalf("fencing abort marker %+v, want an abort at epoch %d", mk, old.Epoch+1)
		}
	}
	p := initPID(t, n, "app", nil)
	if p.ID != old.ID || p.Epoch != old.Epoch+2 {
		t.Fatalf("after the abort: %+v, want epoch %d", p, old.Epoch+2)
	}
	wantErr(t, "the old producer commits", errOf(n.txns.EndTxn(ctx, "app", old, true, false)), kerr.ProducerFenced)
	allErr(t, "the old producer adds", add(t, n, "app", old, tps("t2", 0)), kerr.ProducerFenced)
	_, e = n.txns.InitProducerID(ctx, "app", 60000, &old)
	wantErr(t, "the old producer recovers", e, kerr.ProducerFenced)
}

// TestEndTxnWhileMarkersFail: while a partition leader refuses markers,
// EndTxn answers CONCURRENT_TRANSACTIONS after its wait and so do
// AddPartitions and InitProducerId; the markers are retried, and once
// they land the transaction completes and the retried EndTxn succeeds.
func TestEndTxnWhileMarkersFail(t *testing.T) {
	v := newEnv(t)
	n := v.start("gw-a", time.Hour)
	p := initPID(t, n, "slow", nil)
	allErr(t, "add", add(t, n, "slow", p, tps("t1", 0)), nil)
	n.markers.setFail(kerr.NotLeaderForPartition)

	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	wantErr(t, "commit while markers fail", errOf(n.txns.EndTxn(short, "slow", p, true, false)), kerr.ConcurrentTransactions)
	if m := v.stored("slow"); m.State != meta.TxnPrepareCommit {
		t.Fatalf("state while the markers fail: %s", m.State)
	}
	ctx := context.Background()
	allErr(t, "add while committing", add(t, n, "slow", p, tps("t2", 0)), kerr.ConcurrentTransactions)
	_, e := n.txns.InitProducerID(ctx, "slow", 60000, nil)
	wantErr(t, "init while committing", e, kerr.ConcurrentTransactions)
	wantErr(t, "abort while committing", errOf(n.txns.EndTxn(ctx, "slow", p, false, false)), kerr.InvalidTxnState)
	waitFor(t, "markers retried", func() bool { return len(n.markers.attemptsFor(p.ID)) >= 3 })

	n.markers.setFail(nil)
	wantErr(t, "commit retried", errOf(n.txns.EndTxn(ctx, "slow", p, true, false)), nil)
	if m := v.stored("slow"); m.State != meta.TxnCompleteCommit {
		t.Fatalf("after the markers landed: %s", m.State)
	}
	if w := n.markers.writtenFor(p.ID); len(w) != 1 || !w[0].Commit {
		t.Fatalf("written markers %+v", w)
	}

	// A marker refused as stale (the partition saw a newer epoch) is not
	// retried: the transaction completes.
	allErr(t, "add", add(t, n, "slow", p, tps("t2", 0)), nil)
	n.markers.setFail(kerr.InvalidProducerEpoch)
	wantErr(t, "abort with a stale marker", errOf(n.txns.EndTxn(ctx, "slow", p, false, false)), nil)
	if m := v.stored("slow"); m.State != meta.TxnCompleteAbort {
		t.Fatalf("after a stale marker: %s", m.State)
	}
	// So is one refused by a partition that holds no transactions (a
	// diskless topic's).
	allErr(t, "add", add(t, n, "slow", p, tps("t1", 1)), nil)
	n.markers.setFail(kerr.InvalidTxnState)
	wantErr(t, "commit on a partition without transactions", errOf(n.txns.EndTxn(ctx, "slow", p, true, false)), nil)
	if m := v.stored("slow"); m.State != meta.TxnCompleteCommit {
		t.Fatalf("after a refused marker: %s", m.State)
	}
}

// TestTakeoverCompletesPreparedTransaction: a gateway that stops while a
// commit's markers are not written leaves PrepareCommit in etcd; the
// gateway that takes the shard over loads it and writes the commit
// markers, with a higher coordinator epoch, and completes it.
func TestTakeoverCompletesPreparedTransaction(t *testing.T) {
	v := newEnv(t)
	a := v.start("gw-a", time.Hour)
	p := initPID(t, a, "handover", nil)
	allErr(t, "add", add(t, a, "handover", p, tps("t1", 0, "t1", 1, "t2", 0)), nil)
	a.markers.setFail(kerr.RequestTimedOut)
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	wantErr(t, "commit on A", errOf(a.txns.EndTxn(short, "handover", p, true, false)), kerr.ConcurrentTransactions)
	waitFor(t, "A tried the markers", func() bool { return len(a.markers.attemptsFor(p.ID)) > 0 })
	epochA := a.markers.attemptsFor(p.ID)[0].CoordinatorEpoch

	b := v.start("gw-b", time.Hour) // holds nothing while A holds every shard
	if _, e := b.txns.InitProducerID(context.Background(), "handover", 60000, nil); e != kerr.NotCoordinator {
		t.Fatalf("B before the takeover: %v, want NOT_COORDINATOR", e)
	}
	a.close()
	waitFor(t, "B completes the commit", func() bool { return v.stored("handover").State == meta.TxnCompleteCommit })
	written := b.markers.writtenFor(p.ID)
	if len(written) != 3 {
		t.Fatalf("B wrote %+v", written)
	}
	for _, mk := range written {
		if !mk.Commit || mk.ProducerEpoch != p.Epoch || mk.CoordinatorEpoch <= epochA {
			t.Fatalf("B's marker %+v; want a commit at epoch %d with a coordinator epoch above A's %d", mk, p.Epoch, epochA)
		}
	}
	if w := a.markers.writtenFor(p.ID); len(w) != 0 {
		t.Fatalf("A wrote markers after stopping: %+v", w)
	}
	// The producer's retry, sent to the new coordinator, succeeds.
	wantErr(t, "commit retried on B", errOf(b.txns.EndTxn(context.Background(), "handover", p, true, false)), nil)
	wantErr(t, "A after stopping", errOf(a.txns.EndTxn(context.Background(), "handover", p, true, false)), kerr.NotCoordinator)
}

// TestTimedOutTransactionIsAborted: an Ongoing transaction past its
// transaction.timeout.ms is aborted by the coordinator at a bumped epoch,
// which fences the producer that let it time out.
func TestTimedOutTransactionIsAborted(t *testing.T) {
	v := newEnv(t)
	n := v.start("gw-a", 50*time.Millisecond)
	ctx := context.Background()
	var p txns.ProducerIDAndEpoch
	waitFor(t, "init", func() bool {
		var e *kerr.Error
		p, e = n.txns.InitProducerID(ctx, "zombie", 300, nil)
		return e == nil
	})
	allErr(t, "add", add(t, n, "zombie", p, tps("t1", 1)), nil)
	// A transaction with a long timeout next to it is left alone.
	q := initPID(t, n, "patient", nil)
	allErr(t, "add", add(t, n, "patient", q, tps("t1", 1)), nil)

	waitFor(t, "the timed-out transaction is aborted", func() bool { return v.stored("zombie").State == meta.TxnCompleteAbort })
	m := v.stored("zombie")
	if m.ProducerEpoch != p.Epoch+1 || m.LastProducerEpoch != -1 {
		t.Fatalf("after the timeout: epoch %d last %d, want %d and -1", m.ProducerEpoch, m.LastProducerEpoch, p.Epoch+1)
	}
	if w := n.markers.writtenFor(p.ID); len(w) != 1 || w[0].Commit || w[0].ProducerEpoch != p.Epoch+1 {
		t.Fatalf("timeout abort markers %+v", w)
	}
	wantErr(t, "the zombie commits", errOf(n.txns.EndTxn(ctx, "zombie", p, true, false)), kerr.ProducerFenced)
	allErr(t, "the zombie adds", add(t, n, "zombie", p, tps("t2", 0)), kerr.ProducerFenced)
	if st := v.stored("patient").State; st != meta.TxnOngoing {
		t.Fatalf("the transaction within its timeout is %s", st)
	}
	if again := initPID(t, n, "zombie", nil); again.Epoch != p.Epoch+2 {
		t.Fatalf("a new instance after the timeout: %+v", again)
	}
}

// TestIdleTransactionalIDExpires: an id with no transaction open and no
// state change for IDExpiration is deleted from etcd and from the
// coordinator (transactional.id.expiration.ms): DescribeTransactions does
// not find it, its old producer gets INVALID_PRODUCER_ID_MAPPING, and its
// next InitProducerId starts it over with a new producer id. An id with
// a transaction open is never expired, however old its last change.
func TestIdleTransactionalIDExpires(t *testing.T) {
	v := newEnv(t)
	n := v.startWith("gw-a", func(c *txns.Config) {
		c.AbortInterval = 50 * time.Millisecond
		c.IDExpiration = 500 * time.Millisecond
	})
	ctx := context.Background()
	p := initPID(t, n, "nightly-job", nil)
	allErr(t, "add", add(t, n, "nightly-job", p, tps("t1", 0)), nil)
	wantErr(t, "commit", errOf(n.txns.EndTxn(ctx, "nightly-job", p, true, false)), nil)
	initPID(t, n, "never-began", nil) // Empty: expires too
	q := initPID(t, n, "long-running", nil)
	allErr(t, "add", add(t, n, "long-running", q, tps("t2", 0)), nil)

	waitFor(t, "the idle ids expire", func() bool { return v.stored("nightly-job") == nil && v.stored("never-began") == nil })
	time.Sleep(200 * time.Millisecond) // a few more sweeps
	if m := v.stored("long-running"); m == nil || m.State != meta.TxnOngoing {
		t.Fatalf("the open transaction's id: %+v, want Ongoing", m)
	}
	_, e := n.txns.Describe(ctx, "nightly-job")
	wantErr(t, "describe an expired id", e, kerr.TransactionalIDNotFound)
	list, _, e := listAll(t, n, txns.ListFilter{MinDurationMs: -1})
	if e != nil || len(list) != 1 || list[0].TransactionalID != "long-running" {
		t.Fatalf("list after expiry: %+v %v", list, e)
	}
	allErr(t, "the expired id's producer adds", add(t, n, "nightly-job", p, tps("t1", 0)), kerr.InvalidProducerIDMapping)
	again := initPID(t, n, "nightly-job", nil)
	if again.ID == p.ID || again.Epoch != 0 {
		t.Fatalf("InitProducerId after expiry: %+v, want a new producer id at epoch 0 (was %+v)", again, p)
	}
	allErr(t, "the new producer adds", add(t, n, "nightly-job", again, tps("t1", 0)), nil)
	if m := v.stored("nightly-job"); m == nil || m.State != meta.TxnOngoing || m.ProducerID != again.ID {
		t.Fatalf("the id started over: %+v", m)
	}
	// A restarted coordinator (reading etcd) agrees.
	n.close()
	n2 := v.start("gw-b", time.Hour)
	if _, e := n2.txns.Describe(ctx, "never-began"); e != kerr.TransactionalIDNotFound {
		waitFor(t, "describe after a restart", func() bool {
			_, e = n2.txns.Describe(ctx, "never-began")
			return e == kerr.TransactionalIDNotFound
		})
	}
}

// TestShardLeaseLoss: when the lease holding the shards expires (here:
// revoked), the coordinator drops them, claims them again under a new
// lease, reloads the transactions from etcd and writes markers with a
// higher coordinator epoch.
func TestShardLeaseLoss(t *testing.T) {
	v := newEnv(t)
	n := v.start("gw-a", time.Hour)
	ctx := context.Background()
	p := initPID(t, n, "lease", nil)
	allErr(t, "add", add(t, n, "lease", p, tps("t2", 0)), nil)
	wantErr(t, "commit", errOf(n.txns.EndTxn(ctx, "lease", p, true, false)), nil)
	epoch1 := n.markers.writtenFor(p.ID)[0].CoordinatorEpoch
	guard1, ok := n.groups.Guard("lease")
	if !ok {
		t.Fatal("the shard is not held")
	}

	resp, err := v.etcd.Client.Get(ctx, "/streamline/groupshards/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("shard keys: %v %v", resp, err)
	}
	if _, err := v.etcd.Client.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the shard is claimed again", func() bool {
		g, ok := n.groups.Guard("lease")
		return ok && g != guard1
	})
	allErr(t, "add after the takeover", add(t, n, "lease", p, tps("t1", 0)), nil)
	wantErr(t, "abort after the takeover", errOf(n.txns.EndTxn(ctx, "lease", p, false, false)), nil)
	w := n.markers.writtenFor(p.ID)
	if len(w) != 2 || w[1].Commit || w[1].CoordinatorEpoch <= epoch1 {
		t.Fatalf("markers %+v; want an abort with a coordinator epoch above %d", w, epoch1)
	}
}

// errOf is the error of a call answering a producer and an error.
func errOf(_ txns.ProducerIDAndEpoch, e *kerr.Error) *kerr.Error { return e }
