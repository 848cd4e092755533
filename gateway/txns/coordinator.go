// Package txns is the transaction coordinator of a gateway: Kafka's
// TransactionCoordinator for transaction versions 1 (the classic
// protocol) and 2 (KIP-890 part 2: implicit adds, an epoch bump per
// transaction). It hands transactional producers their producer id and
// epoch (InitProducerId), records the partitions of each transaction
// (AddPartitionsToTxn, or the implicit adds of Produce v12 and
// TxnOffsetCommit v5, forwarded to the coordinating gateway when that is
// another one: implicit.go), ends transactions by writing commit or abort
// markers to the leader of every partition in them (EndTxn), aborts
// transactions that outlive their transaction.timeout.ms, and describes
// and lists the transactions it coordinates.
//
// A transactional id is coordinated by the gateway holding the group shard
// meta.GroupShard(id): the groups coordinator's shard ownership (an etcd
// key under the gateway's lease) is the only ownership mechanism, and this
// package follows it through groups.Coordinator's OnShardGained and
// OnShardLost. A gained shard is loaded from etcd (every transactional id
// of the shard is kept in memory, as Kafka keeps a __transaction_state
// partition's), its coordinator epoch is bumped, and transactions found in
// PrepareCommit or PrepareAbort are completed; a lost or released shard is
// dropped before the shard key goes. Every state change is persisted in
// etcd (meta.TxnMeta) before it is answered, in a transaction guarded by
// the shard key, so a gateway that lost the shard cannot write.
//
// The state machine follows Kafka's TransactionCoordinator and
// TransactionMetadata (and franz-go's kfake), with one mutex per
// transactional id held across its etcd write instead of Kafka's pending
// transition: a request that finds the id busy waits for the write, one
// that finds a transaction ending gets CONCURRENT_TRANSACTIONS.
package txns

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/streamline-dev/streamline/gateway/groups"
	"github.com/streamline-dev/streamline/gateway/ops"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Defaults as in Kafka's broker configuration.
const (
	// DefaultMaxTimeout is transaction.max.timeout.ms: the largest
	// transaction.timeout.ms a producer may ask for.
	DefaultMaxTimeout = 15 * time.Minute
	// DefaultAbortInterval is
	// transaction.abort.timed.out.transaction.cleanup.interval.ms: how
	// often transactions past their timeout are looked for.
	DefaultAbortInterval = 10 * time.Second
	// DefaultIDExpiration is transactional.id.expiration.ms: a
	// transactional id whose last transaction ended (or that never began
	// one) this long ago, with no request since, is forgotten.
	DefaultIDExpiration = 7 * 24 * time.Hour
)

const (
	persistTimeout = 10 * time.Second // bounds one etcd write or read of a transaction
	loadTimeout    = 30 * time.Second // bounds loading gained shards
	loadRetry      = time.Second      // pause before loading a shard again after a failure
	loadWait       = 5 * time.Second  // how long a request waits for its shard to load
	// endTxnWait bounds how long EndTxn waits for the markers; after it,
	// CONCURRENT_TRANSACTIONS and the client retries. Well below the
	// clients' own request timeouts (franz-go: 10 s for requests without
	// a timeout field; Java: request.timeout.ms, 30 s), so the answer
	// reaches them.
	endTxnWait = 5 * time.Second
	// markerTimeout bounds one WriteTxnMarkers round (Kafka's
	// request.timeout.ms for the coordinator's marker requests).
	markerTimeout    = 30 * time.Second
	markerBackoffMin = 100 * time.Millisecond
	markerBackoffMax = 5 * time.Second
)

// MarkerWriter writes transaction markers through the partitions' leaders,
// answering each marker's error in order; *ops.Ops implements it.
type MarkerWriter interface {
	WriteTxnMarkers(ctx context.Context, timeout time.Duration, ms []ops.TxnMarker) []*kerr.Error
}

// RemoteCoordinator adds to a transaction coordinated by another gateway;
// *Remote implements it.
type RemoteCoordinator interface {
	AddPartitions(ctx context.Context, id string, p ProducerIDAndEpoch, parts []meta.TopicPartition) []*kerr.Error
	AddOffsets(ctx context.Context, id string, p ProducerIDAndEpoch, group string) *kerr.Error
}

// Config configures a Coordinator.
type Config struct {
	Store *meta.Store
	Cache *meta.Cache
	// Groups is the shard ownership the coordinator runs on: it must not
	// be started yet when New registers with it.
	Groups *groups.Coordinator
	// Markers writes the commit and abort markers.
	Markers MarkerWriter
	// GatewayID is this gateway's registered id (written with each
	// coordinator epoch, for people reading etcd).
	GatewayID string
	// MaxTimeout bounds transaction.timeout.ms (default 15 min).
	MaxTimeout time.Duration
	// AbortInterval is how often timed-out transactions are aborted
	// (default 10 s).
	AbortInterval time.Duration
	// IDExpiration is Kafka's transactional.id.expiration.ms (default 7
	// days): the state of an id with no transaction open and no state
	// change for this long is deleted from etcd by the sweep that aborts
	// timed-out transactions, so ids used once (a job per run, a random
	// suffix per deploy) do not pile up in etcd and memory. Its producer
	// then gets INVALID_PRODUCER_ID_MAPPING, and its next InitProducerId
	// a new producer id, as in Kafka.
	IDExpiration time.Duration
	Logger       *slog.Logger
	// Remote reaches the coordinating gateway of a transactional id this
	// gateway does not coordinate, for the implicit adds of transaction
	// version 2 (see ImplicitAddPartitions); nil: only local ids are
	// added, others are NOT_COORDINATOR.
	Remote RemoteCoordinator
	// Failpoint, if set, is called at each step of ending a transaction
	// with its name (crash tests kill the process there).
	Failpoint func(step string)
}

// The steps of ending a transaction a Failpoint sees.
const (
	// FailBeforePrepare: EndTxn arrived for an Ongoing transaction,
	// PrepareCommit/PrepareAbort not persisted yet.
	FailBeforePrepare = "txn-before-prepare"
	// FailAfterPrepare: PrepareCommit/PrepareAbort is persisted, no
	// marker written yet.
	FailAfterPrepare = "txn-after-prepare"
	// FailAfterMarkers: every partition and group marker is written,
	// CompleteCommit/CompleteAbort not persisted yet.
	FailAfterMarkers = "txn-after-markers"
)

func (c *Coordinator) failpoint(step string) {
	if c.cfg.Failpoint != nil {
		c.cfg.Failpoint(step)
	}
}

// Coordinator coordinates the transactional ids of the group shards this
// gateway holds.
type Coordinator struct {
	cfg     Config
	store   *meta.Store
	cache   *meta.Cache
	groups  *groups.Coordinator
	markers MarkerWriter
	log     *slog.Logger

	ctx    context.Context // until Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the loader, the sweeper and marker writers
	wake   chan struct{}  // shards are waiting to be loaded

	mu      sync.Mutex // taken before any txn.mu, never while holding one
	started bool
	closed  bool
	shards  map[int]*shard
	pending []*shard // gained, not loaded yet
}

// shard is the coordinator's state of one held group shard.
type shard struct {
	guard  meta.ShardGuard
	ctx    context.Context // cancelled when the shard is dropped
	cancel context.CancelFunc
	// loaded is closed once txns holds every transactional id of the shard
	// and epoch is set.
	loaded chan struct{}
	// epoch is the coordinator epoch of this tenure, written into markers.
	epoch int32
	// txns is guarded by Coordinator.mu; nil until loaded.
	txns map[string]*txn
}

// txn is one transactional id.
type txn struct {
	id string
	sh *shard

	mu sync.Mutex
	m  *meta.TxnMeta // nil: no state
	// rev is the etcd ModRevision of the id's key (0: none), the compare
	// token of the next write.
	rev int64
	// stale: the last write's outcome is unknown; read again before use.
	stale bool
	// dead: the shard was dropped; the id is served elsewhere now.
	dead bool
	// completion is the last marker writer started for the transaction.
	completion *completion
}

// completion is one run of writing a transaction's markers and
// persisting its Complete state.
type completion struct {
	done chan struct{} // closed when the run ends
	ok   bool          // the Complete state was persisted (set before done)
}

// New returns a coordinator and registers it with cfg.Groups, which must
// not have started; Start begins loading the shards it gains.
func New(cfg Config) (*Coordinator, error) {
	if cfg.Store == nil || cfg.Cache == nil || cfg.Groups == nil || cfg.Markers == nil {
		return nil, errors.New("txns: Store, Cache, Groups and Markers are required")
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = DefaultMaxTimeout
	}
	if cfg.AbortInterval <= 0 {
		cfg.AbortInterval = DefaultAbortInterval
	}
	if cfg.IDExpiration <= 0 {
		cfg.IDExpiration = DefaultIDExpiration
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Coordinator{
		cfg: cfg, store: cfg.Store, cache: cfg.Cache, groups: cfg.Groups, markers: cfg.Markers,
		log: cfg.Logger.With("component", "txns"), ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), shards: map[int]*shard{},
	}
	cfg.Groups.OnShardGained(c.shardGained)
	cfg.Groups.OnShardLost(c.shardLost)
	return c, nil
}

// Start loads gained shards and aborts timed-out transactions in the
// background until Close.
func (c *Coordinator) Start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.closed {
		return
	}
	c.started = true
	c.wg.Add(2)
	go c.loader()
	go c.sweeper()
}

// Close stops the coordinator: marker writes stop where they are (the
// next coordinator of each shard completes them) and every shard's state
// is dropped. Idempotent.
func (c *Coordinator) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	held := c.shards
	c.shards = map[int]*shard{}
	c.pending = nil
	c.mu.Unlock()
	c.cancel()
	for _, sh := range held {
		c.dropState(sh)
	}
	c.wg.Wait()
}

// shardGained queues a claimed shard for loading (the groups
// coordinator's OnShardGained).
func (c *Coordinator) shardGained(g meta.ShardGuard) {
	sctx, cancel := context.WithCancel(c.ctx)
	sh := &shard{guard: g, ctx: sctx, cancel: cancel, loaded: make(chan struct{})}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancel()
		return
	}
	old := c.shards[g.Shard]
	c.shards[g.Shard] = sh
	c.pending = append(c.pending, sh)
	c.mu.Unlock()
	if old != nil {
		c.dropState(old)
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// shardLost drops a shard this gateway no longer holds (the groups
// coordinator's OnShardLost): it returns once no request of the shard
// can write any more.
func (c *Coordinator) shardLost(n int) {
	c.mu.Lock()
	sh := c.shards[n]
	delete(c.shards, n)
	c.mu.Unlock()
	if sh != nil {
		c.dropState(sh)
		c.log.Info("stopped coordinating the shard's transactions", "shard", n)
	}
}

// lostShard handles a guarded write that found the shard taken: the shard
// is dropped here and reported to the groups coordinator. Never called
// with a txn.mu held (dropState takes them).
func (c *Coordinator) lostShard(sh *shard) {
	c.mu.Lock()
	if c.shards[sh.guard.Shard] == sh {
		delete(c.shards, sh.guard.Shard)
	}
	c.mu.Unlock()
	c.dropState(sh)
	c.log.Warn("lost the shard of transactions to another gateway", "shard", sh.guard.Shard)
	c.groups.ShardLost(sh.guard)
}

// dropState forgets sh: its marker writers and etcd calls are cancelled
// and every transactional id of it is marked dead, after the write it may
// have in flight.
func (c *Coordinator) dropState(sh *shard) {
	sh.cancel()
	c.mu.Lock()
	ts := make([]*txn, 0, len(sh.txns))
	for _, t := range sh.txns {
		ts = append(ts, t)
	}
	c.mu.Unlock()
	for _, t := range ts {
		t.mu.Lock()
		t.dead = true
		t.mu.Unlock()
	}
}

// loader loads gained shards, batching those gained together (a gateway
// that starts gains many at once) into one etcd read.
func (c *Coordinator) loader() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
		}
		for {
			c.mu.Lock()
			var batch []*shard
			for _, sh := range c.pending {
				if c.shards[sh.guard.Shard] == sh {
					batch = append(batch, sh)
				}
			}
			c.pending = nil
			c.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			if retry := c.load(batch); len(retry) > 0 {
				c.mu.Lock()
				c.pending = append(c.pending, retry...)
				c.mu.Unlock()
				if !sleep(c.ctx, loadRetry) {
					return
				}
			}
		}
	}
}

// load bumps the coordinator epoch of each shard of batch, reads their
// transactions and installs them; it returns the shards to try again.
func (c *Coordinator) load(batch []*shard) (retry []*shard) {
	ctx, cancel := context.WithTimeout(c.ctx, loadTimeout)
	defer cancel()
	// One guarded write per shard, in parallel: a gateway that starts
	// gains every shard at once.
	errs := make([]error, len(batch))
	var wg sync.WaitGroup
	for i, sh := range batch {
		wg.Go(func() {
			var epoch int32
			epoch, errs[i] = c.store.BumpTxnCoordinatorEpoch(ctx, sh.guard, c.cfg.GatewayID)
			sh.epoch = epoch
		})
	}
	wg.Wait()
	want := map[int]*shard{}
	for i, sh := range batch {
		switch err := errs[i]; {
		case errors.Is(err, meta.ErrNotCoordinator):
			c.lostShard(sh)
		case err != nil:
			if ctx.Err() == nil {
				c.log.Warn("bumping the transaction coordinator epoch failed; retrying", "shard", sh.guard.Shard, "err", err)
			}
			retry = append(retry, sh)
		default:
			want[sh.guard.Shard] = sh
		}
	}
	if len(want) == 0 {
		return retry
	}
	set := make(map[int]bool, len(want))
	for n := range want {
		set[n] = true
	}
	stored, err := c.store.ListTxns(ctx, set)
	if errors.Is(err, meta.ErrCorruptTxnState) {
		c.log.Error("transaction state in etcd is partly undecodable; those ids start over at their next InitProducerId", "err", err)
		err = nil
	}
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("loading transactions failed; retrying", "err", err)
		}
		for _, sh := range want {
			retry = append(retry, sh)
		}
		return retry
	}
	byShard := map[int]map[string]*txn{}
	for _, st := range stored {
		n := meta.GroupShard(st.TransactionalID)
		if byShard[n] == nil {
			byShard[n] = map[string]*txn{}
		}
		byShard[n][st.TransactionalID] = &txn{id: st.TransactionalID, sh: want[n], m: st.Meta, rev: st.Revision}
	}
	var resume []*txn
	c.mu.Lock()
	for n, sh := range want {
		if c.shards[n] != sh {
			continue // dropped meanwhile
		}
		sh.txns = byShard[n]
		if sh.txns == nil {
			sh.txns = map[string]*txn{}
		}
		for _, t := range sh.txns {
			if t.m != nil && ending(t.m.State) {
				resume = append(resume, t)
			}
		}
		close(sh.loaded)
		level := slog.LevelInfo
		if len(sh.txns) == 0 {
			level = slog.LevelDebug // 64 lines at every start otherwise
		}
		c.log.Log(context.Background(), level, "coordinating the shard's transactions", "shard", n, "coordinator_epoch", sh.epoch, "transactional_ids", len(sh.txns))
	}
	c.mu.Unlock()
	for _, t := range resume {
		t.mu.Lock()
		if c.refresh(t) == nil {
			c.log.Info("resuming a transaction that was ending", "transactional_id", t.id, "state", t.m.State)
			c.startCompletion(t)
		}
		t.mu.Unlock()
	}
	return retry
}

// txn finds transactional id id, waiting (briefly) for its shard to load.
// With create, an id without state gets an entry whose state stays nil
// until written. A nil txn without error: the id has no state.
func (c *Coordinator) txn(ctx context.Context, id string, create bool) (*txn, *kerr.Error) {
	wctx, cancel := context.WithTimeout(ctx, loadWait)
	defer cancel()
	var sh *shard
	for {
		guard, ok := c.groups.Guard(id)
		if !ok {
			return nil, kerr.NotCoordinator
		}
		c.mu.Lock()
		sh = c.shards[guard.Shard]
		c.mu.Unlock()
		if sh != nil && sh.guard == guard {
			break
		}
		// Claimed a moment ago: OnShardGained is about to run.
		if !sleep(wctx, 10*time.Millisecond) {
			return nil, kerr.CoordinatorLoadInProgress
		}
	}
	select {
	case <-sh.loaded:
	case <-sh.ctx.Done():
		return nil, kerr.NotCoordinator
	case <-wctx.Done():
		return nil, kerr.CoordinatorLoadInProgress
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := sh.txns[id]
	if t == nil && create {
		t = &txn{id: id, sh: sh}
		sh.txns[id] = t
	}
	return t, nil
}

// use locks t and makes its state current (see refresh); on error t is
// left unlocked.
func (c *Coordinator) use(t *txn) *kerr.Error {
	t.mu.Lock()
	if e := c.refresh(t); e != nil {
		t.mu.Unlock()
		return e
	}
	return nil
}

// refresh checks that t is still served here (NOT_COORDINATOR once its
// shard is gone) and reads a stale state again from etcd. Called with
// t.mu held.
func (c *Coordinator) refresh(t *txn) *kerr.Error {
	if t.dead || t.sh.ctx.Err() != nil {
		return kerr.NotCoordinator
	}
	if !t.stale {
		return nil
	}
	ctx, cancel := context.WithTimeout(t.sh.ctx, persistTimeout)
	defer cancel()
	st, err := c.store.LoadTxn(ctx, t.id)
	if errors.Is(err, meta.ErrCorruptTxnState) {
		c.log.Error("transaction state in etcd is undecodable; the id starts over at its next InitProducerId", "transactional_id", t.id, "err", err)
		err = nil
	}
	if err != nil {
		c.log.Warn("reading transaction state failed", "transactional_id", t.id, "err", err)
		return kerr.CoordinatorNotAvailable
	}
	t.m, t.rev, t.stale = st.Meta, st.Revision, false
	if t.m != nil && ending(t.m.State) {
		c.startCompletion(t)
	}
	return nil
}

// persist writes next as t's state, guarded by the shard key and t's
// revision. Called with t.mu held. A write refused by the guard drops the
// shard (NOT_COORDINATOR); any other failure leaves t stale, to be read
// again before its next use (COORDINATOR_NOT_AVAILABLE, which clients
// retry).
func (c *Coordinator) persist(t *txn, next *meta.TxnMeta) *kerr.Error {
	ctx, cancel := context.WithTimeout(t.sh.ctx, persistTimeout)
	defer cancel()
	rev, err := c.store.SaveTxn(ctx, t.sh.guard, next, t.rev)
	switch {
	case err == nil:
		t.m, t.rev = next, rev
		return nil
	case errors.Is(err, meta.ErrNotCoordinator):
		t.dead = true
		go c.lostShard(t.sh) // it takes every txn.mu, this one included
		return kerr.NotCoordinator
	default:
		if t.sh.ctx.Err() != nil {
			return kerr.NotCoordinator
		}
		c.log.Warn("persisting transaction state failed", "transactional_id", t.id, "state", next.State, "err", err)
		t.stale = true
		return kerr.CoordinatorNotAvailable
	}
}

// sweeper aborts timed-out transactions every AbortInterval and restarts
// the completion of ending ones whose last attempt stopped.
func (c *Coordinator) sweeper() {
	defer c.wg.Done()
	tick := time.NewTicker(c.cfg.AbortInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-tick.C:
			c.sweep()
		}
	}
}

func (c *Coordinator) sweep() {
	c.mu.Lock()
	var ts []*txn
	for _, sh := range c.shards {
		for _, t := range sh.txns {
			ts = append(ts, t)
		}
	}
	c.mu.Unlock()
	var expired []*txn
	for _, t := range ts {
		t.mu.Lock()
		if c.refresh(t) == nil && t.m != nil && c.sweepOne(t, time.Now().UnixMilli()) {
			expired = append(expired, t)
		}
		t.mu.Unlock()
	}
	if len(expired) > 0 {
		c.forget(expired)
		c.log.Info("expired transactional ids unused for transactional.id.expiration.ms", "count", len(expired), "expiration", c.cfg.IDExpiration)
	}
}

// forget drops expired ids from their shards' maps, unless a request gave
// one state again since. A request that found the entry before it was
// dropped gets NOT_COORDINATOR (dead) and, retrying, the shard's new
// entry: two entries of one id never both hold state.
func (c *Coordinator) forget(expired []*txn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range expired {
		t.mu.Lock()
		if t.m == nil && t.rev == 0 && !t.dead && t.sh.txns[t.id] == t {
			delete(t.sh.txns, t.id)
			t.dead = true
		}
		t.mu.Unlock()
	}
}

// expire deletes t's state if it has been idle past IDExpiration: no
// transaction open or ending, no state change for that long. Called with
// t.mu held; true if the state is gone.
func (c *Coordinator) expire(t *txn, now int64) bool {
	switch t.m.State {
	case meta.TxnEmpty, meta.TxnCompleteCommit, meta.TxnCompleteAbort:
	default:
		return false
	}
	if now-t.m.LastUpdateTimeMs < c.cfg.IDExpiration.Milliseconds() {
		return false
	}
	ctx, cancel := context.WithTimeout(t.sh.ctx, persistTimeout)
	defer cancel()
	switch err := c.store.DeleteTxn(ctx, t.sh.guard, t.id, t.rev); {
	case err == nil:
		c.log.Debug("expired a transactional id", "transactional_id", t.id, "producer_id", t.m.ProducerID,
			"state", t.m.State, "last_update_time_ms", t.m.LastUpdateTimeMs)
		t.m, t.rev = nil, 0
		return true
	case errors.Is(err, meta.ErrNotCoordinator):
		t.dead = true
		go c.lostShard(t.sh)
	default:
		if t.sh.ctx.Err() == nil {
			c.log.Warn("expiring a transactional id failed; the next sweep tries again", "transactional_id", t.id, "err", err)
		}
		t.stale = true // ErrConflict or an unknown outcome: read again
	}
	return false
}

// sweepOne is Kafka's abortTimedOutTransactions and
// removeExpiredTransactionalIds for one id: an Ongoing transaction older
// than its timeout is aborted at a bumped epoch, which fences the producer
// that let it time out; an id idle past IDExpiration is deleted (true).
// Called with t.mu held.
func (c *Coordinator) sweepOne(t *txn, now int64) (expired bool) {
	switch {
	case c.expire(t, now):
		return true
	case t.m.State == meta.TxnOngoing && t.m.StartTimeMs+int64(t.m.TimeoutMs) < now:
		c.log.Info("aborting a transaction past its timeout", "transactional_id", t.id,
			"producer_id", t.m.ProducerID, "producer_epoch", t.m.ProducerEpoch, "timeout_ms", t.m.TimeoutMs)
		if c.persist(t, fence(t.m, now)) == nil {
			c.startCompletion(t)
		}
	case ending(t.m.State):
		c.startCompletion(t)
	}
	return false
}

// sleep waits d or until ctx ends; false if ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}
