package logsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"

	"github.com/streamline-dev/streamline/logsvc/storage"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/rpc"
)

// followers keeps this node's copies of the replicated partitions it
// follows in step with their leaders (Kafka's ReplicaFetcherManager): one
// fetcher per leading node, each holding one Replicate stream that carries
// every partition this node follows there. A follower writes what it
// fetches through the same local engine a leader writes through (WAL,
// then segments), batch bytes unchanged, and fetches again only once the
// previous answer is durable: the offset it fetches from is what the
// leader counts as stored on this node's disk.
type followers struct {
	n *Node
	// rebuild throttles fetches of partitions this node is not in sync
	// for (Config.RebuildThrottle); nil: unlimited.
	rebuild *rate.Limiter

	mu       sync.Mutex
	m        map[partKey]*followed
	fetchers map[string]*fetcher // by leader node id
	// hwms keeps, for partitions this node stopped following, the last
	// high watermark their leader sent: if this node leads one next, it
	// starts from there rather than from nothing (Kafka keeps it in a
	// checkpoint file).
	hwms map[partKey]int64
	// openAfter holds back opening a partition whose open just failed
	// (a full disk): reconcile runs at every metadata change, and a
	// retry at each would flood the log. Retried after openRetry.
	openAfter map[partKey]time.Time
}

// openRetry is how long a partition whose open failed waits to be tried again.
const openRetry = time.Second

// followed is one partition this node follows.
type followed struct {
	topic meta.Topic

	// mu is held while the fetcher writes to log, and by reconcile to
	// retire the partition, so a log is never closed under a write.
	mu        sync.Mutex
	rec       meta.Partition // the record followed under
	log       storage.Log
	lastEpoch int32 // leader epoch of the log's last batch (-1: empty)
	leaderHWM int64 // the leader's high watermark at the last fetch (-1: none yet)
	// retryAt holds a partition the leader refused (not leading it yet,
	// an epoch this node has not seen) out of fetches for a moment, so
	// it neither spins nor delays the other partitions of the stream.
	retryAt time.Time
	retired bool
	failed  error
	// tailOnly: the partition has an object tier and this copy starts
	// above the leader's local start (rebuilt from the tier's end): it
	// lacks local history, which the node advertises (LogNode.TailOnly).
	tailOnly bool
}

func newFollowers(n *Node) *followers {
	fs := &followers{n: n, m: map[partKey]*followed{}, fetchers: map[string]*fetcher{}, hwms: map[partKey]int64{}, openAfter: map[partKey]time.Time{}}
	if r := n.cfg.RebuildThrottle; r > 0 {
		// Throttled fetches ask for at most one burst (session), so
		// WaitN never asks for more than the bucket holds.
		fs.rebuild = rate.NewLimiter(rate.Limit(r), int(min(max(r, 64<<10), replicaFetchBytes)))
	}
	return fs
}

// reconcile makes the followed set what etcd says: every local-mode
// partition this node is a replica of but does not lead, while it has a
// leader. It runs before the leader reconcile, so a partition this node
// starts leading is closed here first.
func (fs *followers) reconcile() {
	cache, self := fs.n.cache, fs.n.cfg.ID
	want := map[partKey]meta.Partition{}
	for _, pa := range cache.AllPartitions() {
		if pa.Leader != self && pa.Leader != "" && len(pa.Replicas) > 1 && pa.IsReplica(self) {
			want[partKey{pa.Topic, pa.Partition}] = pa
		}
	}
	// Fetchers being stopped are waited for once fs.mu is released (the
	// deferred calls run in reverse): between two fetches a fetcher takes
	// fs.mu (forLeader) before it notices its context ended, so waiting
	// for it under the lock deadlocks.
	var stopping []*fetcher
	defer func() {
		for _, ft := range stopping {
			<-ft.done
		}
	}()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for k, f := range fs.m {
		pa, keep := want[k]
		f.mu.Lock()
		if keep && pa.TopicID == f.topic.ID && f.failed == nil {
			f.rec = pa
			f.mu.Unlock()
			continue
		}
		f.retired = true
		fs.hwms[k] = f.leaderHWM
		var err error
		if fs.n.keepsReplica(f.topic.ID, k) {
			err = f.log.Close()
		} else {
			err = f.log.Remove()
		}
		f.mu.Unlock()
		if err != nil {
			fs.n.log.Error("closing followed partition", "topic", k.topic, "partition", k.partition, "err", err)
		}
		delete(fs.m, k)
		fs.n.log.Info("stopped following partition", "topic", k.topic, "partition", k.partition, "failed", f.failed)
	}
	for k, pa := range want {
		if _, ok := fs.m[k]; ok {
			continue
		}
		t, ok := cache.TopicByID(pa.TopicID)
		if !ok || !t.StorageMode.KeepsLocalData() {
			continue
		}
		if time.Now().Before(fs.openAfter[k]) {
			continue
		}
		f, err := fs.open(t, pa)
		if err != nil {
			fs.openAfter[k] = time.Now().Add(openRetry)
			fs.n.log.Error("cannot follow partition", "topic", k.topic, "partition", k.partition, "err", err, "retry_in", openRetry)
			continue
		}
		delete(fs.openAfter, k)
		fs.m[k] = f
		fs.n.log.Info("following partition", "topic", k.topic, "partition", k.partition, "leader", pa.Leader,
			"epoch", pa.LeaderEpoch, "log_end", f.log.EndOffset())
	}
	// One fetcher per leader with partitions; stop the others.
	leaders := map[string]bool{}
	for _, f := range fs.m {
		leaders[f.rec.Leader] = true
	}
	for id, ft := range fs.fetchers {
		if !leaders[id] {
			ft.cancel()
			stopping = append(stopping, ft)
			delete(fs.fetchers, id)
		}
	}
	for id := range leaders {
		if fs.fetchers[id] == nil {
			fs.fetchers[id] = fs.startFetcher(id)
		} else {
			fs.fetchers[id].poke()
		}
	}
}

func (fs *followers) open(t meta.Topic, pa meta.Partition) (*followed, error) {
	// A follower of a local or hybrid partition holds only the local tail
	// (a hybrid one from the leader's tier start on: storage.Tiered): it
	// writes through the plain local engine and never touches the object
	// tier, whose manifest only the leader commits to. Leading it later
	// opens the same directory with the tier.
	var eng storage.Engine = fs.n.local
	if !t.StorageMode.KeepsLocalData() {
		var err error
		if eng, err = fs.n.engines.For(t.StorageMode); err != nil {
			return nil, err
		}
	}
	lg, err := eng.Open(storage.PartitionSpec{Topic: t, Partition: pa.Partition, Defaults: fs.n.cfg.TopicDefaults, Leader: pa})
	if err != nil {
		return nil, err
	}
	f := &followed{topic: t, rec: pa, log: lg, leaderHWM: -1}
	if err := f.readLastEpoch(); err != nil {
		lg.Close()
		return nil, fmt.Errorf("reading the last batch of %s-%d: %w", t.Name, pa.Partition, err)
	}
	return f, nil
}

// lastHighWatermark returns (and forgets) the high watermark this node last
// heard from the leader of a partition it followed; -1 if none.
func (fs *followers) lastHighWatermark(k partKey) int64 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	h, ok := fs.hwms[k]
	if !ok {
		return -1
	}
	delete(fs.hwms, k)
	return h
}

// forLeader returns the followed partitions led by leader that are not
// waiting to be retried, and whether some are.
func (fs *followers) forLeader(leader string) (out []*followed, waiting bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	now := time.Now()
	for _, f := range fs.m {
		f.mu.Lock()
		if f.rec.Leader == leader && !f.retired && f.failed == nil {
			if now.Before(f.retryAt) {
				waiting = true
			} else {
				out = append(out, f)
			}
		}
		f.mu.Unlock()
	}
	return out, waiting
}

// refusedRetry is how long a partition the leader refused stays out of
// the follower's fetches.
const refusedRetry = 100 * time.Millisecond

// logs returns the followed partitions' logs with their topics, for
// retention.
func (fs *followers) each(fn func(f *followed)) {
	fs.mu.Lock()
	all := make([]*followed, 0, len(fs.m))
	for _, f := range fs.m {
		all = append(all, f)
	}
	fs.mu.Unlock()
	for _, f := range all {
		f.mu.Lock()
		if !f.retired {
			fn(f)
		}
		f.mu.Unlock()
	}
}

func (fs *followers) closeAll() {
	fs.mu.Lock()
	fetchers := fs.fetchers
	fs.fetchers = map[string]*fetcher{}
	fs.mu.Unlock()
	for _, ft := range fetchers {
		ft.stop()
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for k, f := range fs.m {
		f.mu.Lock()
		f.retired = true
		if err := f.log.Close(); err != nil {
			fs.n.log.Error("closing followed partition", "topic", k.topic, "partition", k.partition, "err", err)
		}
		f.mu.Unlock()
		delete(fs.m, k)
	}
}

// fetcher replicates the partitions one leader leads to this node.
type fetcher struct {
	fs     *followers
	leader string
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
	wakeup chan struct{}
}

// replicaFetchBytes bounds one follower fetch answer.
const replicaFetchBytes = 8 << 20

// replicaFetchWait is how long a leader holds a follower fetch with
// nothing new: it bounds how late a newly followed partition joins the
// stream.
const replicaFetchWait = 500 * time.Millisecond

func (fs *followers) startFetcher(leader string) *fetcher {
	ctx, cancel := context.WithCancel(context.Background())
	ft := &fetcher{fs: fs, leader: leader, log: fs.n.log.With("leader", leader), cancel: cancel,
		done: make(chan struct{}), wakeup: make(chan struct{}, 1)}
	go ft.run(ctx)
	return ft
}

func (ft *fetcher) stop() {
	ft.cancel()
	<-ft.done
}

func (ft *fetcher) poke() {
	select {
	case ft.wakeup <- struct{}{}:
	default:
	}
}

// run keeps a Replicate stream to the leader open and fetches in a loop;
// a broken stream is redialed with backoff.
func (ft *fetcher) run(ctx context.Context) {
	defer close(ft.done)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := ft.session(ctx)
		if ctx.Err() != nil {
			return
		}
		ft.log.Debug("replication stream ended; reconnecting", "err", err, "after", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// session runs one stream until it fails.
func (ft *fetcher) session(ctx context.Context) error {
	node, ok := ft.fs.n.cache.LogNode(ft.leader)
	if !ok {
		return fmt.Errorf("leader %s is not registered", ft.leader)
	}
	cc, err := grpc.NewClient(node.Addr, rpc.DialOptions()...)
	if err != nil {
		return err
	}
	defer cc.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := logv1.NewLogServiceClient(cc).Replicate(sctx)
	if err != nil {
		return err
	}
	for {
		parts, waiting := ft.fs.forLeader(ft.leader)
		if len(parts) == 0 {
			var retry <-chan time.Time
			if waiting {
				retry = time.After(refusedRetry / 4)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-ft.wakeup:
			case <-retry:
			}
			continue
		}
		req := &logv1.ReplicateRequest{FollowerId: ft.fs.n.cfg.ID, MaxWaitMs: int32(replicaFetchWait / time.Millisecond), MaxBytes: replicaFetchBytes}
		for _, f := range parts {
			f.mu.Lock()
			if ft.fs.rebuild != nil && !slices.Contains(f.rec.ISR, ft.fs.n.cfg.ID) {
				req.MaxBytes = int32(ft.fs.rebuild.Burst())
			}
			req.Partitions = append(req.Partitions, &logv1.ReplicatePartition{
				Topic: f.rec.Topic, TopicId: f.topic.ID[:], Partition: f.rec.Partition,
				CurrentLeaderEpoch: f.rec.LeaderEpoch, FetchOffset: f.log.EndOffset(), LastFetchedEpoch: f.lastEpoch,
				PartitionMaxBytes: 1 << 20,
			})
			f.mu.Unlock()
		}
		if err := stream.Send(req); err != nil {
			return err
		}
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if len(resp.GetPartitions()) != len(parts) {
			return fmt.Errorf("leader answered %d partitions of %d", len(resp.GetPartitions()), len(parts))
		}
		// Every partition's batches go to the WAL before any is waited
		// for, so one group commit covers the whole answer.
		backoff := false
		var waits []func() bool
		for i, r := range resp.GetPartitions() {
			ok, wait := ft.apply(parts[i], r)
			if !ok {
				backoff = true
			}
			if wait != nil {
				waits = append(waits, wait)
			}
		}
		for _, wait := range waits {
			if !wait() {
				backoff = true
			}
		}
		if err := ft.throttle(ctx, parts, resp); err != nil {
			return err
		}
		if backoff {
			// Errors (a leader change not seen yet, a storage failure):
			// do not spin while metadata catches up.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-ft.wakeup:
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// throttle waits as long as the rebuild throttle asks for the bytes this
// answer carried for partitions this node is not in sync for.
func (ft *fetcher) throttle(ctx context.Context, parts []*followed, resp *logv1.ReplicateResponse) error {
	if ft.fs.rebuild == nil {
		return nil
	}
	n := 0
	for i, r := range resp.GetPartitions() {
		f := parts[i]
		f.mu.Lock()
		inSync := slices.Contains(f.rec.ISR, ft.fs.n.cfg.ID)
		f.mu.Unlock()
		if !inSync {
			n += len(r.GetRecords())
		}
	}
	if n == 0 {
		return nil
	}
	return ft.fs.rebuild.WaitN(ctx, min(n, ft.fs.rebuild.Burst()))
}

// apply handles one partition's answer and hands its batches to the log;
// wait, if not nil, waits until they are durable. false means it could
// not make progress (an error to wait out).
func (ft *fetcher) apply(f *followed, r *logv1.ReplicatePartitionResult) (ok bool, wait func() bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.retired || f.failed != nil {
		return true, nil
	}
	lg := ft.log.With("topic", f.rec.Topic, "partition", f.rec.Partition)
	f.leaderHWM = r.GetHighWatermark()
	if r.LocalLogStartOffset != nil {
		f.tailOnly = f.log.StartOffset() > r.GetLocalLogStartOffset()
	}
	if r.GetDivergingEndOffset() >= 0 {
		if err := ft.truncate(f, r.GetDivergingEpoch(), r.GetDivergingEndOffset()); err != nil {
			f.failed = err
			lg.Error("stopped following: truncating a diverged log failed", "err", err)
		}
		return true, nil
	}
	switch e := kerr.ErrorForCode(int16(r.GetErrorCode())); {
	case e == nil:
	case errors.Is(e, kerr.OffsetOutOfRange) && f.log.EndOffset() < r.GetLogStartOffset():
		// This copy ends before the leader's log starts (it was down,
		// or its disk was wiped, while retention ran): start over at the
		// leader's start (Kafka's truncateFullyAndStartAt).
		if err := ft.reset(f, r.GetLogStartOffset()); err != nil {
			f.failed = err
			lg.Error("stopped following: starting over at the leader's log start failed", "err", err)
			return false, nil
		}
		lg.Info("follower log started over at the leader's log start", "offset", r.GetLogStartOffset())
		return true, nil
	default:
		lg.Debug("follower fetch refused", "err", e, "message", r.GetErrorMessage())
		f.retryAt = time.Now().Add(refusedRetry)
		return true, nil
	}
	if recs := r.GetRecords(); len(recs) > 0 {
		durable, err := ft.write(f, recs)
		if err != nil {
			f.failed = err
			lg.Error("stopped following: writing fetched batches failed", "err", err)
			return false, nil
		}
		wait = func() bool {
			err := durable()
			f.mu.Lock()
			defer f.mu.Unlock()
			if err != nil {
				f.failed = err
				lg.Error("stopped following: writing fetched batches failed", "err", err)
				return false
			}
			ft.fs.n.metrics.replicationIn(string(f.topic.StorageMode), len(recs))
			return true
		}
	}
	// The leader's DeleteRecords moves this copy's start too (never past
	// what it holds); retention runs on each copy by itself.
	if start := min(r.GetLogStartOffset(), f.log.EndOffset()); start > f.log.StartOffset() {
		if err := f.log.DeleteRecords(start); err != nil {
			lg.Warn("following the leader's log start failed", "start", start, "err", err)
		}
	}
	return true, wait
}

// truncate cuts a log the leader says diverges (KIP-320): the leader's
// records of epoch end at end, so this copy keeps what is below both end
// and its own end of epoch (it may have written a later epoch of its own
// earlier: Kafka's min of the two), and fetches on from there.
func (ft *fetcher) truncate(f *followed, epoch int32, end int64) error {
	target := end
	if epoch >= 0 {
		ownEnd, err := ownEndOfEpoch(f.log, epoch, end)
		if err != nil {
			return err
		}
		target = min(target, ownEnd)
	}
	tr, ok := f.log.(storage.Truncater)
	if !ok {
		return fmt.Errorf("the %s engine cannot truncate", f.topic.StorageMode)
	}
	before := f.log.EndOffset()
	if target <= f.log.StartOffset() {
		if err := tr.ResetTo(max(target, 0)); err != nil {
			return err
		}
	} else if _, err := tr.TruncateTo(target); err != nil {
		return err
	}
	if err := f.readLastEpoch(); err != nil {
		return err
	}
	ft.log.Info("truncated a diverged follower log", "topic", f.rec.Topic, "partition", f.rec.Partition,
		"leader_epoch", epoch, "leader_end", end, "end_before", before, "end", f.log.EndOffset())
	return nil
}

// reset empties the copy at offset.
func (ft *fetcher) reset(f *followed, offset int64) error {
	tr, ok := f.log.(storage.Truncater)
	if !ok {
		return fmt.Errorf("the %s engine cannot truncate", f.topic.StorageMode)
	}
	if err := tr.ResetTo(offset); err != nil {
		return err
	}
	f.lastEpoch = -1
	return nil
}

// ownEndOfEpoch is where this copy's records of epoch end: the base of its
// first batch of a later epoch, read no further than limit.
func ownEndOfEpoch(lg storage.Log, epoch int32, limit int64) (int64, error) {
	end := lg.EndOffset()
	errFound := errors.New("found")
	err := lg.ScanHeaders(lg.StartOffset(), func(h recbatch.Header) error {
		if h.PartitionLeaderEpoch > epoch {
			end = h.BaseOffset
			return errFound
		}
		if h.BaseOffset >= limit {
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return 0, err
	}
	return end, nil
}

// readLastEpoch sets lastEpoch from the log's last batch (-1: empty).
func (f *followed) readLastEpoch() error {
	f.lastEpoch = -1
	end := f.log.EndOffset()
	if end <= f.log.StartOffset() {
		return nil
	}
	return f.log.ScanHeaders(end-1, func(h recbatch.Header) error {
		f.lastEpoch = h.PartitionLeaderEpoch
		return nil
	})
}

// write hands fetched batches to the log in order and returns a function
// that waits until they are durable (and then records their last epoch).
func (ft *fetcher) write(f *followed, recs []byte) (func() error, error) {
	var pending []<-chan error
	next := f.log.EndOffset()
	last := f.lastEpoch
	_, err := recbatch.Iterate(recs, true, func(h recbatch.Header, batch []byte) error {
		if h.BaseOffset != next {
			return fmt.Errorf("fetched batch at offset %d, the log ends at %d", h.BaseOffset, next)
		}
		pending = append(pending, f.log.Append(batch, h))
		next, last = h.NextOffset(), h.PartitionLeaderEpoch
		return nil
	})
	durable := func() error {
		var err error
		for _, ch := range pending {
			err = errors.Join(err, <-ch)
		}
		return err
	}
	if err != nil {
		return nil, errors.Join(err, durable())
	}
	f.lastEpoch = last // the next request is built only after durable()
	return durable, nil
}

// leaveISRWithoutData runs at start, before this node serves or follows
// anything: for every replicated local partition whose ISR names this node
// but whose log this node does not have (its disk was wiped or replaced,
// and it restarted before its lease expired, so nobody noticed it was
// gone), it takes itself out of the ISR, and out of the lead if it led, at
// a new epoch: an empty replica listed in sync could otherwise be elected
// and lose every acknowledged record. The last ISR member is left alone
// (only it could have the data; the partition waits for it, and it refuses
// to lead an empty log: storage.ErrNoLocalData). Compare-and-swaps on the
// records as read; a conflict is retried once from a fresh read.
func (n *Node) leaveISRWithoutData(ctx context.Context) error {
	for attempt := 0; attempt < 2; attempt++ {
		var updates []meta.PartitionUpdate
		for _, pa := range n.cache.AllPartitions() {
			if len(pa.Replicas) < 2 || !slices.Contains(pa.ISR, n.cfg.ID) || len(pa.ISR) < 2 || n.local.HasPartition(pa.TopicID, pa.Partition) {
				continue
			}
			next := pa
			next.ISR = slices.DeleteFunc(slices.Clone(pa.ISR), func(id string) bool { return id == n.cfg.ID })
			if pa.Leader == n.cfg.ID {
				next.Leader = ""
				next.LeaderEpoch++
			}
			updates = append(updates, meta.PartitionUpdate{Old: pa, New: next})
			n.log.Warn("this node is in the ISR of a partition whose log it does not have (disk wiped or replaced?): leaving the ISR; it rebuilds from the leader",
				"topic", pa.Topic, "partition", pa.Partition, "isr", pa.ISR, "was_leader", pa.Leader == n.cfg.ID)
		}
		if len(updates) == 0 {
			return nil
		}
		applied, err := n.store.UpdatePartitions(ctx, updates)
		if err != nil {
			return err
		}
		if applied == len(updates) {
			return nil
		}
		time.Sleep(200 * time.Millisecond) // let the cache catch up with what changed
	}
	return errors.New("partition records kept changing while leaving the ISR of partitions without local data")
}

// tailOnly lists the partitions this node follows without the local
// history their leader has (followed.tailOnly), sorted, for its
// registration (meta.LogNode.TailOnly).
func (fs *followers) tailOnly() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var out []string
	for k, f := range fs.m {
		f.mu.Lock()
		if f.tailOnly && !f.retired {
			out = append(out, meta.PartitionName(k.topic, k.partition))
		}
		f.mu.Unlock()
	}
	slices.Sort(out)
	return out
}
