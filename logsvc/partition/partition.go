// Package partition is the leader's view of one partition: the single
// writer that validates batches, checks idempotent-producer sequences,
// assigns offsets, hands batches to the storage.Log of the topic's mode, and
// advances the high watermark as they become durable on the leader and, for
// replicated partitions, on every in-sync follower (replicas.go: follower
// fetches, ISR changes, acks=all). It also keeps the partition's side of
// Kafka transactions (txn.go: open transactions, markers, the last stable
// offset, aborted transactions). Readers (fetch, list offsets) read the
// storage directly, bounded by the high watermark (read_committed: the last
// stable offset), and long-poll on Changed.
//
// Locking: mu (the writer lock) guards nextOffset, producers, changes of
// the transaction state and the order of calls to Log.Append. It is held
// only while checking and enqueueing, never while waiting for durability.
// Completions are handled by one goroutine per partition, in append order,
// so the high watermark only moves forward and never skips a batch that is
// not durable yet.
package partition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamline-dev/streamline/logsvc/producerstate"
	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
)

// Config describes the partition to lead.
type Config struct {
	Topic       meta.Topic
	Partition   int32
	LeaderEpoch int32
	Defaults    meta.Defaults
	Log         storage.Log
	Logger      *slog.Logger
	// Fence, if set, is called after a batch is durable and before it is
	// acknowledged; an error means this node may no longer lead the
	// partition (its lease or epoch moved on), and the producer gets
	// NOT_LEADER_OR_FOLLOWER instead of an ack.
	Fence func(ctx context.Context) error
	// AppendLatency, if set, observes the seconds from a batch's append
	// until it is durable (metrics; one series per storage mode).
	AppendLatency interface{ Observe(float64) }

	// NodeID is this (the leader's) node id; Record is the partition
	// record it leads under, with the replicas and ISR (replicas.go).
	NodeID string
	Record meta.Partition
	// AlterISR commits a new ISR for the partition in etcd, fenced by the
	// record this leader leads under (Kafka's AlterPartition); nil: the
	// ISR never changes.
	// It returns the etcd revision of the record it changed (0: none):
	// records at or below it are older than the change (SetReplicas).
	AlterISR func(ctx context.Context, isr []string) (int64, error)
	// ISRChanged, if set, is told of each committed ISR change (metrics).
	ISRChanged func(expanded bool)
	// InitialHighWatermark is the high watermark this node last heard from
	// the previous leader while it followed the partition (-1: unknown).
	// A new leader whose ISR has followers starts from it (clamped to its
	// log): nothing beyond it may be visible before the followers report.
	InitialHighWatermark int64
}

// Partition is a led partition. Safe for concurrent use.
type Partition struct {
	cfg Config
	log storage.Log
	lg  *slog.Logger

	// topic is the latest definition (Reconfigure), for its configs;
	// cfg.Topic is the one the partition was opened with.
	topic           atomic.Pointer[meta.Topic]
	maxMessageBytes atomic.Int64

	mu         sync.Mutex
	nextOffset int64
	producers  *producerstate.State
	failed     error // storage failed: KAFKA_STORAGE_ERROR from now on
	closed     bool  // no longer led here: NOT_LEADER_OR_FOLLOWER from now on

	epochs epochCache // leader-epoch history (epochs.go)

	// Transactions (txn.go): changed under mu and txnMu, read under txnMu;
	// firstUnstable and ending mirror them for lock-free readers.
	txnMu         sync.RWMutex
	txns          txnState
	firstUnstable atomic.Int64 // smallest first offset of an open or ending transaction; MaxInt64: none
	ending        atomic.Int32 // len(txns.ending)

	// leo is the leader's durable log end; hwm, the high watermark, is
	// at most leo and also bounded by the followers in the ISR
	// (replicas.go).
	leo   atomic.Int64
	hwm   atomic.Int64
	repMu sync.Mutex
	rep   replicaSet
	// notify is closed (and replaced) when the high watermark moves, and
	// appended when the durable log end moves; both when the partition
	// closes or fails. Consumers and acks=all waiters watch the first,
	// follower long-polls the second, so neither wakes for the other's
	// news (every follower fetch moves the high watermark).
	notifyMu sync.Mutex
	notify   chan struct{}
	appended chan struct{}

	completions chan completion
	done        chan struct{}
	closeOnce   sync.Once
}

type completion struct {
	durable <-chan error
	next    int64
	reply   chan error
	began   time.Time // set only with Config.AppendLatency
}

// completionQueue bounds batches awaiting durability per partition.
const completionQueue = 4096

// Open takes the lead of a partition whose storage is cfg.Log: it rebuilds
// the idempotent-producer state, the leader-epoch history and the
// transaction state (open transactions, aborted list) from the stored
// batch headers.
func Open(cfg Config) (*Partition, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Partition{
		cfg:         cfg,
		log:         cfg.Log,
		lg:          cfg.Logger.With("topic", cfg.Topic.Name, "partition", cfg.Partition),
		producers:   producerstate.New(),
		notify:      make(chan struct{}),
		appended:    make(chan struct{}),
		completions: make(chan completion, completionQueue),
		done:        make(chan struct{}),
	}
	p.setTopic(cfg.Topic)
	p.firstUnstable.Store(math.MaxInt64)
	p.nextOffset = p.log.EndOffset()
	p.leo.Store(p.nextOffset)
	p.rep.init(cfg.NodeID, cfg.Record, time.Now())
	if _, followers, _ := p.rep.hwmBound(); followers {
		// Followers in the ISR may lack the tail of this log (it was
		// not acknowledged to all of them): nothing past the previous
		// leader's high watermark is visible until they report.
		p.hwm.Store(min(max(cfg.InitialHighWatermark, p.log.StartOffset()), p.nextOffset))
	} else {
		p.hwm.Store(p.nextOffset)
	}
	// The state is rebuilt, never stored (see txn.go and epochs.go): a
	// transaction whose marker did not make it to the log before a crash
	// is open again, and holds the LSO until the coordinator's retry.
	hwm := p.hwm.Load()
	err := p.log.ScanHeaders(p.log.StartOffset(), func(h recbatch.Header) error {
		p.epochs.observe(h.PartitionLeaderEpoch, h.BaseOffset)
		switch {
		case !h.Idempotent():
		case h.Control():
			p.producers.UpdateEpoch(h.ProducerID, h.ProducerEpoch)
			if h.Marker == recbatch.MarkerAbort || h.Marker == recbatch.MarkerCommit {
				p.noteCoordinatorLocked(h.ProducerID, h.CoordinatorEpoch)
			}
			if h.Marker != recbatch.MarkerAbort && h.Marker != recbatch.MarkerCommit {
				if _, open := p.txns.open[h.ProducerID]; open {
					p.lg.Warn("control batch whose record is not a commit or abort marker ends a transaction as committed",
						"offset", h.BaseOffset, "producer_id", h.ProducerID, "marker", h.Marker)
				}
			}
			p.endTxnLocked(h.ProducerID, h.BaseOffset, h.Marker == recbatch.MarkerAbort, hwm)
		default:
			p.producers.Update(h.ProducerID, h.ProducerEpoch, producerstate.Batch{
				FirstSeq: h.BaseSequence, LastSeq: h.LastSequence(), BaseOffset: h.BaseOffset, LastOffset: h.LastOffset(),
			})
			if h.Transactional() {
				p.beginTxnLocked(h.ProducerID, h.BaseOffset)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rebuild producer state of %s-%d: %w", cfg.Topic.Name, cfg.Partition, err)
	}
	go p.complete()
	return p, nil
}

// Topic is the partition's topic, as last reconfigured.
func (p *Partition) Topic() meta.Topic { return *p.topic.Load() }

func (p *Partition) setTopic(t meta.Topic) {
	p.topic.Store(&t)
	p.maxMessageBytes.Store(t.Int64(meta.ConfigMaxMessageBytes, p.cfg.Defaults))
}

// Reconfigure applies a changed definition of the topic (AlterConfigs)
// to the running partition: max.message.bytes applies to the next
// produce, retention.ms and retention.bytes to the next ApplyRetention,
// and the storage engine takes what it reads at runtime
// (storage.Log.Reconfigure). The topic's id must not change (a
// re-created topic is a new partition).
func (p *Partition) Reconfigure(t meta.Topic) {
	if t.ID != p.cfg.Topic.ID {
		return
	}
	p.setTopic(t)
	p.log.Reconfigure(t)
}

// LeaderEpoch is the epoch this node leads the partition at.
func (p *Partition) LeaderEpoch() int32 { return p.cfg.LeaderEpoch }

// HighWatermark is one past the last durable offset.
func (p *Partition) HighWatermark() int64 { return p.hwm.Load() }

// LogStartOffset is the first retained offset.
func (p *Partition) LogStartOffset() int64 { return p.log.StartOffset() }

// Number is the partition's number within its topic.
func (p *Partition) Number() int32 { return p.cfg.Partition }

// Size is the bytes stored for the partition (storage.Log.Size).
func (p *Partition) Size() int64 { return p.log.Size() }

// Changed returns a channel closed when the high watermark next moves, or
// the partition closes or fails.
func (p *Partition) Changed() <-chan struct{} {
	p.notifyMu.Lock()
	defer p.notifyMu.Unlock()
	return p.notify
}

// Appended returns a channel closed when the durable log end next moves,
// or the partition closes or fails (what a follower fetch waits for).
func (p *Partition) Appended() <-chan struct{} {
	p.notifyMu.Lock()
	defer p.notifyMu.Unlock()
	return p.appended
}

// advance records that the log is durable up to next, and moves the
// high watermark as far as the ISR allows.
func (p *Partition) advance(next int64) {
	for {
		cur := p.leo.Load()
		if next <= cur {
			return
		}
		if p.leo.CompareAndSwap(cur, next) {
			break
		}
	}
	p.wake(false, true) // followers long-poll on the log end
	p.updateHighWatermark()
}

// complete resolves appends in order: the batch is durable, so the high
// watermark moves past it before the producer hears so.
func (p *Partition) complete() {
	defer close(p.done)
	for c := range p.completions {
		err := <-c.durable
		if err == nil {
			if p.cfg.AppendLatency != nil {
				p.cfg.AppendLatency.Observe(time.Since(c.began).Seconds())
			}
			p.advance(c.next)
		} else {
			p.mu.Lock()
			switch {
			case errors.Is(err, storage.ErrFenced):
				p.closed = true
			case p.failed == nil:
				p.failed = err
				p.lg.Error("partition storage failed; refusing writes until it is reopened", "err", err)
			}
			p.mu.Unlock()
			p.wake(true, true) // waiters answer the error now
		}
		c.reply <- err
	}
}

// ProduceResult is the outcome of one Produce.
type ProduceResult struct {
	Err            *kerr.Error // nil on success
	Message        string
	BaseOffset     int64
	LogStartOffset int64
}

func fail(e *kerr.Error, format string, args ...any) ProduceResult {
	return ProduceResult{Err: e, Message: fmt.Sprintf(format, args...), BaseOffset: -1, LogStartOffset: -1}
}

// Produce validates and appends one record batch, and returns once it is
// durable and replicated to the ISR (acks=all; or failed, or ctx ended:
// REQUEST_TIMED_OUT, in which case the batch may still become durable, as
// in Kafka). Like Submit, it takes ownership of batch.
func (p *Partition) Produce(ctx context.Context, batch []byte) ProduceResult {
	return p.Submit(batch).Wait(ctx)
}

// Pending is a submitted batch whose outcome is not known yet.
type Pending struct {
	p      *Partition
	done   ProduceResult // set when the outcome was known at submit time
	known  bool
	dup    producerstate.Batch
	isDup  bool
	reply  chan error
	offset int64
	next   int64 // one past the batch
	acks   int32
}

// Submit validates the batch, assigns its offset and hands it to storage,
// without waiting for durability. Batches submitted one after another are
// appended in that order; Wait reports the outcome. Submit takes ownership
// of batch: it patches the offset fields in place and storage keeps the
// slice, so the caller must not reuse it (gRPC request buffers are not).
func (p *Partition) Submit(batch []byte) *Pending {
	return p.SubmitContext(context.Background(), batch)
}

// SubmitContext is Submit for a produce request whose context carries
// values (its trace span) the storage may use; ctx never cancels the
// append.
func (p *Partition) SubmitContext(ctx context.Context, batch []byte) *Pending {
	return p.SubmitAcks(ctx, batch, AcksAll)
}

// Kafka's produce acks: AcksAll waits for the ISR (the high watermark),
// AcksLeader for the leader's durability only.
const (
	AcksAll    int32 = -1
	AcksLeader int32 = 1
)

// SubmitAcks is SubmitContext with the producer's acks: AcksAll (-1)
// refuses the batch with NOT_ENOUGH_REPLICAS while the ISR is below
// min.insync.replicas and acknowledges it once the high watermark passes
// it; 1 (and 0, whose answer nobody reads) once it is durable on the
// leader.
func (p *Partition) SubmitAcks(ctx context.Context, batch []byte, acks int32) *Pending {
	known := func(r ProduceResult) *Pending { return &Pending{p: p, done: r, known: true} }
	h, err := recbatch.ValidateProduce(batch)
	switch {
	case errors.Is(err, recbatch.ErrCorrupt):
		return known(fail(kerr.CorruptMessage, "record batch CRC does not match its contents"))
	case errors.Is(err, recbatch.ErrMagic):
		return known(fail(kerr.UnsupportedForMessageFormat, "%v", err))
	case err != nil:
		return known(fail(kerr.InvalidRecord, "%v", err))
	}
	if limit := p.maxMessageBytes.Load(); int64(len(batch)) > limit {
		return known(fail(kerr.MessageTooLarge, "record batch of %d bytes exceeds max.message.bytes %d", len(batch), limit))
	}
	if h.Transactional() {
		if !h.Idempotent() {
			return known(fail(kerr.InvalidRecord, "transactional record batch without a producer id"))
		}
		if why := txnModeUnsupported(p.Topic().StorageMode); why != "" {
			return known(fail(kerr.InvalidTxnState, "%s", why))
		}
	}
	if acks == AcksAll {
		if ok, n, need := p.enoughReplicas(); !ok {
			return known(fail(kerr.NotEnoughReplicas, "the ISR of %s-%d has %d replicas, below min.insync.replicas %d",
				p.cfg.Topic.Name, p.cfg.Partition, n, need))
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, failed := p.writableLocked(); failed {
		return known(r)
	}
	if h.Idempotent() {
		dup, err := p.producers.Check(h.ProducerID, h.ProducerEpoch, h.BaseSequence, h.LastSequence())
		switch {
		case errors.Is(err, producerstate.ErrFencedEpoch):
			return known(fail(kerr.InvalidProducerEpoch, "%v", err))
		case err != nil:
			return known(fail(kerr.OutOfOrderSequenceNumber, "%v", err))
		case dup != nil:
			return &Pending{p: p, dup: *dup, isDup: true}
		}
		if _, open := p.txns.open[h.ProducerID]; open && !h.Transactional() {
			return known(fail(kerr.InvalidTxnState, "producer %d has an open transaction on %s-%d: expected a transactional batch",
				h.ProducerID, p.cfg.Topic.Name, p.cfg.Partition))
		}
	}
	// A full disk refuses the batch (a duplicate was answered above).
	if r, full := p.checkSpaceLocked(); full {
		return known(r)
	}
	base := p.assignLocked(batch, &h)
	if h.Idempotent() {
		p.producers.Update(h.ProducerID, h.ProducerEpoch, producerstate.Batch{
			FirstSeq: h.BaseSequence, LastSeq: h.LastSequence(), BaseOffset: base, LastOffset: h.LastOffset(),
		})
		if h.Transactional() {
			p.beginTxnLocked(h.ProducerID, base)
		}
	}
	return p.appendLocked(ctx, batch, h, acks)
}

// assignLocked gives the batch the next offset and this leader's epoch
// (patching the bytes outside the CRC) and returns its base offset. p.mu
// is held; the caller updates the producer and transaction state and then
// calls appendLocked, still holding it.
func (p *Partition) assignLocked(batch []byte, h *recbatch.Header) int64 {
	base := p.nextOffset
	recbatch.SetBaseOffset(batch, base)
	recbatch.SetPartitionLeaderEpoch(batch, p.cfg.LeaderEpoch)
	p.epochs.observe(p.cfg.LeaderEpoch, base)
	h.BaseOffset = base
	p.nextOffset = h.NextOffset()
	return base
}

// appendLocked hands an assigned batch to storage and queues its
// completion. p.mu is held.
func (p *Partition) appendLocked(ctx context.Context, batch []byte, h recbatch.Header, acks int32) *Pending {
	base := h.BaseOffset
	reply := make(chan error, 1)
	c := completion{next: h.NextOffset(), reply: reply}
	if p.cfg.AppendLatency != nil {
		c.began = time.Now()
	}
	if ca, ok := p.log.(storage.ContextAppender); ok {
		c.durable = ca.AppendContext(ctx, batch, h)
	} else {
		c.durable = p.log.Append(batch, h)
	}
	p.completions <- c
	return &Pending{p: p, reply: reply, offset: base, next: h.NextOffset(), acks: acks}
}

// Wait returns the batch's outcome once it is durable, failed, or ctx ends
// (REQUEST_TIMED_OUT: the batch may still become durable, as in Kafka).
func (w *Pending) Wait(ctx context.Context) ProduceResult {
	switch {
	case w.known:
		return w.done
	case w.isDup:
		return w.p.answerDuplicate(ctx, w.dup)
	}
	// The leadership check starts now, after the batch's offset was
	// assigned, and runs while the batch becomes durable and the followers
	// catch up: all must pass, and the check's etcd round trip is off the
	// critical path. Starting it before the WAL sync instead of after
	// gives nothing away: what the check proves is that this node still
	// led the partition at an etcd revision after the offset was taken,
	// and a pause between the check and the answer (a "zombie" waking
	// up) is possible with either order. An acknowledged batch survives a
	// change of leader through the high watermark (acks=all: every ISR
	// member has it), not through the check's timing.
	fenced := w.p.fenceAsync(ctx)
	select {
	case err := <-w.reply:
		if errors.Is(err, storage.ErrFenced) {
			return fail(kerr.NotLeaderForPartition, "%v", err)
		}
		if err != nil {
			return fail(kerr.KafkaStorageError, "%v", err)
		}
		if w.acks == AcksAll {
			if r, failed := w.p.awaitReplication(ctx, w.next); failed {
				return r
			}
		}
		if r, failed := fenced(); failed {
			return r
		}
		return ProduceResult{BaseOffset: w.offset, LogStartOffset: w.p.log.StartOffset()}
	case <-ctx.Done():
		return fail(kerr.RequestTimedOut, "batch not durable before the request timeout")
	}
}

// WaitAll waits for every non-nil pending batch at once and returns their
// outcomes by index (a nil entry's outcome is the zero ProduceResult).
// Waiting in turn would make each batch's leadership check start only
// after the one before it ended; at once, the checks of one request share
// an etcd read.
func WaitAll(ctx context.Context, pending []*Pending) []ProduceResult {
	out := make([]ProduceResult, len(pending))
	var wg sync.WaitGroup
	for i, w := range pending {
		if w == nil {
			continue
		}
		if len(pending) == 1 {
			out[i] = w.Wait(ctx)
			break
		}
		wg.Go(func() { out[i] = w.Wait(ctx) })
	}
	wg.Wait()
	return out
}

// answerDuplicate answers a retried batch with its original offset, once
// the original is durable (it may still be in flight).
func (p *Partition) answerDuplicate(ctx context.Context, dup producerstate.Batch) ProduceResult {
	for {
		ch := p.Changed()
		if p.hwm.Load() > dup.LastOffset {
			if r, fenced := p.fence(ctx); fenced {
				return r
			}
			return ProduceResult{BaseOffset: dup.BaseOffset, LogStartOffset: p.log.StartOffset()}
		}
		p.mu.Lock()
		failed, closed := p.failed, p.closed
		p.mu.Unlock()
		switch {
		case failed != nil:
			return fail(kerr.KafkaStorageError, "partition storage failed: %v", failed)
		case closed:
			return fail(kerr.NotLeaderForPartition, "partition %s-%d is no longer led by this node", p.cfg.Topic.Name, p.cfg.Partition)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fail(kerr.RequestTimedOut, "original of duplicate batch not durable before the request timeout")
		}
	}
}

// fence runs the configured leadership check; fenced reports a failed one,
// with the result to answer instead of the ack.
func (p *Partition) fence(ctx context.Context) (ProduceResult, bool) {
	if p.cfg.Fence == nil {
		return ProduceResult{}, false
	}
	if err := p.cfg.Fence(ctx); err != nil {
		if ctx.Err() != nil {
			return fail(kerr.RequestTimedOut, "leadership not confirmed before the request timeout: %v", err), true
		}
		return fail(kerr.NotLeaderForPartition, "%v", err), true
	}
	return ProduceResult{}, false
}

// fenceAsync starts the leadership check in the background and returns a
// function that waits for its outcome.
func (p *Partition) fenceAsync(ctx context.Context) func() (ProduceResult, bool) {
	if p.cfg.Fence == nil {
		return func() (ProduceResult, bool) { return ProduceResult{}, false }
	}
	type outcome struct {
		r      ProduceResult
		failed bool
	}
	ch := make(chan outcome, 1)
	go func() {
		r, failed := p.fence(ctx)
		ch <- outcome{r, failed}
	}()
	return func() (ProduceResult, bool) {
		o := <-ch
		return o.r, o.failed
	}
}

// Failed reports whether the partition's storage failed or was fenced: the
// partition refuses writes and must be reopened (which reloads its log end
// from storage) to serve again.
func (p *Partition) Failed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed != nil || p.closed
}

// Close stops the partition after in-flight appends resolve. It does not
// close the storage.Log (its owner does). Idempotent.
func (p *Partition) Close() {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.completions)
		p.mu.Unlock()
		<-p.done
		// acks=all waiters and follower fetches answer NOT_LEADER now,
		// not at their timeouts.
		p.wake(true, true)
	})
}
