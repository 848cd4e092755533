package buffer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Defaults are the seed plan's remote-storage knobs.
const (
	DefaultMaxBatchBytes    = 1 << 20                // batch_size_bytes
	DefaultMaxDelay         = 100 * time.Millisecond // batch_timeout_ms
	DefaultMaxBufferedBytes = 64 << 20
	DefaultMaxInFlight      = 4 // upload_parallelism
)

var (
	// ErrClosed: Add after Close, or a batch failed because Close gave up.
	ErrClosed = errors.New("buffer closed")
	// ErrTooLarge: the batch can never fit in MaxBufferedBytes.
	ErrTooLarge = errors.New("batch larger than the buffer")
	// ErrEmpty: the item has no data.
	ErrEmpty = errors.New("empty batch")
	// ErrStreamFailed: an earlier batch of the stream failed; this one was
	// not committed (or not accepted). The error also wraps the first
	// failure.
	ErrStreamFailed = errors.New("an earlier batch of the stream failed")
)

// Config bounds a Batching. Zero (or negative) fields take the defaults.
type Config struct {
	// MaxBatchBytes: a flush is cut once this many bytes are pending.
	MaxBatchBytes int
	// MaxDelay: a flush is cut this long after its oldest batch arrived.
	MaxDelay time.Duration
	// MaxBufferedBytes bounds the bytes from Add until their result is
	// delivered; Add blocks beyond it. Raised to MaxBatchBytes if smaller.
	MaxBufferedBytes int
	// MaxInFlight: uploads (FlushFunc calls) running at once.
	MaxInFlight int
	// IdleFlush, when positive, also cuts a flush once batches stopped
	// arriving: no Add for max(IdleFlush, IdleGaps x the recent mean gap
	// before an Add, counted from the previous Add or the last delivered
	// result, whichever is later). Waiting out MaxDelay then only adds latency: the
	// producers are waiting for these very batches (a Kafka producer has
	// at most 5 requests in flight per connection, so with object-store
	// latencies it stalls until they are answered), and nothing more will
	// join the flush. Steady arrivals, however sparse, keep MaxDelay's
	// batching (and its PUT rate): only a pause several times longer than
	// the usual gap counts as idle. 0: off.
	IdleFlush time.Duration
	// EagerFlush also cuts a flush whenever no upload is running: group
	// commit, as the WAL does. With nothing uploading, waiting for more
	// batches overlaps no earlier upload; it only delays these. At light
	// load flushes then follow the object store's latency rather than
	// MaxDelay: worth it where the PUT is as short as the wait it saves
	// (S3 Express), for more PUTs (ARCHITECTURE.md "Performance notes").
	// Under load an upload is always running and MaxDelay, the size
	// threshold and IdleFlush cut as they would without it.
	EagerFlush bool
}

// IdleGaps is how many mean inter-arrival gaps without an Add make the
// buffer idle (see Config.IdleFlush): with arrivals at random times a gap
// that long happens about e^-IdleGaps (2%) of the time, which bounds the
// extra flushes of a steady load.
const IdleGaps = 4

// DefaultIdleFlush is the floor of the idle time the logsvc and all-in-one
// binaries set (their --diskless-idle-flush).
const DefaultIdleFlush = 2 * time.Millisecond

func (c Config) withDefaults() Config {
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = DefaultMaxDelay
	}
	if c.MaxBufferedBytes <= 0 {
		c.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	// Otherwise the pending bytes could never reach MaxBatchBytes and
	// every flush would wait for MaxDelay.
	c.MaxBufferedBytes = max(c.MaxBufferedBytes, c.MaxBatchBytes)
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	return c
}

// Item is one record batch of one stream (partition).
type Item struct {
	Stream     string
	BaseOffset int64
	LastOffset int64
	// Data is the record batch. The buffer keeps it until the result is
	// delivered; the caller must not modify it meanwhile.
	Data []byte
	// Meta is the caller's, passed through to the FlushFunc untouched
	// (e.g. leader epoch, max timestamp, producer state).
	Meta any
	// MaxDelay and MaxBatchBytes, when set, are this batch's own flush
	// thresholds (its topic's batch_timeout_ms and batch_size_bytes): a
	// flush is cut once any pending batch's delay has passed, or once the
	// pending bytes reach the smallest size threshold of the pending
	// batches. Zero means the buffer's Config.
	MaxDelay      time.Duration
	MaxBatchBytes int
}

// Span is one stream's items in Flush.Items: Items[Start:End].
type Span struct {
	Stream     string
	Start, End int
}

// Flush is one object's worth of batches.
type Flush struct {
	// Seq numbers flushes from 1 in the order they are cut, which is the
	// order each stream's parts of them are committed.
	Seq uint64
	// Items are grouped by stream: streams in the order of their first
	// batch, each stream's batches in Add order.
	Items []Item
	// Streams lists the groups of Items in order.
	Streams []Span
	// Bytes is the sum of len(Data).
	Bytes int
}

// FlushFunc uploads f (step 1, possibly in parallel with other uploads) and
// returns how to commit it. A non-nil error fails every batch of f. A nil
// CommitFunc with a nil error means the upload alone made f durable. f must
// not be modified; it may be kept until the CommitFunc returns. ctx ends
// only when Close gives up; the FlushFunc must then return promptly.
type FlushFunc func(ctx context.Context, f *Flush) (CommitFunc, error)

// CommitFunc commits an uploaded flush for streams (a subset of its
// streams, in flush order: those whose turn it is and that did not fail
// earlier). It may be called several times for one flush, each time with
// streams it was not called with before. Calls run one at a time, each
// stream's in Seq order. err fails all of streams; otherwise each stream
// with a non-nil entry in failed fails and every other one is committed.
type CommitFunc func(ctx context.Context, streams []string) (failed map[string]error, err error)

// Stats is a snapshot of a Batching's counters (totals since New) and gauges.
type Stats struct {
	Flushes        uint64 // flushes cut
	FlushedBytes   uint64 // bytes in those flushes
	FlushedItems   uint64
	CommittedItems uint64 // results delivered as nil
	FailedItems    uint64 // results delivered as an error
	OverflowWaits  uint64 // Adds that had to wait for memory
	OverflowGaveUp uint64 // ... and returned because their context ended
	IdleFlushes    uint64 // flushes cut early because Adds stopped (Config.IdleFlush)
	EagerFlushes   uint64 // flushes cut early because no upload was running (Config.EagerFlush)
	// PartialCommits counts commits of some of a flush's streams only:
	// those whose earlier flushes had their results while another
	// stream's earlier flush was still uploading.
	PartialCommits uint64

	PendingBytes  int // not yet in a flush
	BufferedBytes int // pending + uploading + awaiting commit
	Uploading     int // FlushFunc calls running
	Waiting       int // Adds blocked for memory now
}

// entry is an accepted Item with its result channel.
type entry struct {
	item     Item
	at       time.Time
	deadline time.Time  // at + its max delay: cut a flush by then
	size     int        // its flush size threshold
	res      chan error // cap 1: delivery never blocks
}

// waiter is an Add blocked for memory.
type waiter struct {
	item  Item
	ready chan struct{} // closed once res or err is set
	res   chan error
	err   error
}

// streamState exists while a stream has batches in the buffer or failed.
type streamState struct {
	count   int           // batches from Add until result delivered
	failed  error         // first failure, until Reset
	drained chan struct{} // closed when count drops to 0 (Reset waits)
	// flushes are the Seqs of the cut flushes holding this stream whose
	// results for it are not delivered yet, oldest first: the stream
	// commits in the first one's turn only.
	flushes []uint64
}

// Batching groups the batches of many streams into flushes. Safe for
// concurrent use.
type Batching struct {
	cfg    Config
	flush  FlushFunc
	ctx    context.Context // given to FlushFunc and CommitFunc
	cancel context.CancelCauseFunc

	cutKick    chan struct{} // cap 1: wakes the cut loop
	commitKick chan struct{} // cap 1: wakes the commit loop
	done       chan struct{} // closed when the commit loop has exited

	mu           sync.Mutex
	closed       bool
	cutDone      bool // cut loop exited: no flush will be cut any more
	pending      []*entry
	pendingBytes int
	// Over pending: the earliest deadline and the smallest size threshold.
	minDeadline time.Time
	minSize     int
	buffered    int
	waiters     []*waiter
	// lastAdd is the time of the last Add, lastResult of the last flush
	// whose results were delivered, and gap the moving mean of the gaps
	// before Adds (Config.IdleFlush).
	lastAdd    time.Time
	lastResult time.Time
	gap        time.Duration
	gapSeen    bool
	uploading  int
	nextSeq    uint64                 // Seq of the next flush to cut
	ready      map[uint64]*flushState // uploaded (or failed), some streams awaiting their commit turn
	unresolved int                    // flushes cut whose streams do not all have results yet
	streams    map[string]*streamState
	stats      Stats
}

// New starts a Batching. Close it to stop its goroutines.
func New(cfg Config, flush FlushFunc) *Batching {
	ctx, cancel := context.WithCancelCause(context.Background())
	b := &Batching{
		cfg:        cfg.withDefaults(),
		flush:      flush,
		ctx:        ctx,
		cancel:     cancel,
		cutKick:    make(chan struct{}, 1),
		commitKick: make(chan struct{}, 1),
		done:       make(chan struct{}),
		nextSeq:    1,
		ready:      make(map[uint64]*flushState),
		streams:    make(map[string]*streamState),
	}
	go b.cutLoop()
	go b.commitLoop()
	return b
}

// Config returns the effective configuration (defaults applied).
func (b *Batching) Config() Config { return b.cfg }

// Add buffers it and returns the channel that will receive its one result.
// It blocks while the buffer is full and returns ctx.Err() if ctx ends
// first (the item is then not buffered). It fails at once with ErrClosed,
// ErrTooLarge, ErrEmpty, or an ErrStreamFailed error if it.Stream failed
// and was not Reset. Batches of one stream must be added in offset order,
// from one goroutine at a time.
func (b *Batching) Add(ctx context.Context, it Item) (<-chan error, error) {
	if len(it.Data) == 0 {
		return nil, ErrEmpty
	}
	if len(it.Data) > b.cfg.MaxBufferedBytes {
		return nil, fmt.Errorf("%w: %d > %d bytes", ErrTooLarge, len(it.Data), b.cfg.MaxBufferedBytes)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	if len(b.waiters) == 0 && b.buffered+len(it.Data) <= b.cfg.MaxBufferedBytes {
		res, err := b.enqueueLocked(it)
		b.mu.Unlock()
		return res, err
	}
	if err := b.streamErrLocked(it.Stream); err != nil {
		b.mu.Unlock()
		return nil, err
	}
	w := &waiter{item: it, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.stats.OverflowWaits++
	b.mu.Unlock()

	select {
	case <-w.ready:
		return w.res, w.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // admitted (or failed) just before the context ended
		return w.res, w.err
	default:
	}
	b.waiters = slices.DeleteFunc(b.waiters, func(x *waiter) bool { return x == w })
	b.stats.OverflowGaveUp++
	// w may have been the head that blocked smaller batches behind it.
	b.admitLocked()
	return nil, ctx.Err()
}

// streamErrLocked is the error for a new batch of a failed stream.
func (b *Batching) streamErrLocked(stream string) error {
	if st := b.streams[stream]; st != nil && st.failed != nil {
		return fmt.Errorf("%w: stream %s: %w", ErrStreamFailed, stream, st.failed)
	}
	return nil
}

// enqueueLocked appends it to the pending batches; the caller checked that
// it fits.
func (b *Batching) enqueueLocked(it Item) (chan error, error) {
	if err := b.streamErrLocked(it.Stream); err != nil {
		return nil, err
	}
	st := b.streams[it.Stream]
	if st == nil {
		st = &streamState{}
		b.streams[it.Stream] = st
	}
	st.count++
	e := &entry{item: it, at: time.Now(), res: make(chan error, 1), size: b.cfg.MaxBatchBytes}
	if !b.lastAdd.IsZero() {
		// A moving mean over about the last 8 gaps, starting at the first
		// one; a gap longer than MaxDelay (the buffer was empty) counts as
		// MaxDelay. A gap runs from the last Add or the last delivered
		// result, whichever is later: producers at their in-flight limit
		// send their next request right after an answer, and the wait for
		// that answer is this buffer's own delay, not a pause of theirs.
		// Counted from the last Add, it would grow the mean gap by our
		// flush latency, and the idle time with it, round after round.
		since := b.lastAdd
		if b.lastResult.After(since) {
			since = b.lastResult
		}
		g := min(e.at.Sub(since), b.cfg.MaxDelay)
		if b.gapSeen {
			b.gap += (g - b.gap) / 8
		} else {
			b.gap, b.gapSeen = g, true
		}
	}
	b.lastAdd = e.at
	delay := b.cfg.MaxDelay
	if it.MaxDelay > 0 {
		delay = it.MaxDelay
	}
	if it.MaxBatchBytes > 0 {
		e.size = it.MaxBatchBytes
	}
	e.deadline = e.at.Add(delay)
	b.pending = append(b.pending, e)
	b.pendingBytes += len(it.Data)
	b.buffered += len(it.Data)
	earlier := len(b.pending) == 1 || e.deadline.Before(b.minDeadline)
	if len(b.pending) == 1 || e.size < b.minSize {
		b.minSize = e.size
	}
	if earlier {
		b.minDeadline = e.deadline
	}
	// The cut loop must (re)arm its timer for an earlier deadline, or cut now.
	if earlier || b.pendingBytes >= b.minSize {
		notify(b.cutKick)
	}
	return e.res, nil
}

// admitLocked admits blocked Adds in arrival order while they fit, and
// fails at once those whose stream has failed meanwhile.
func (b *Batching) admitLocked() {
	b.waiters = slices.DeleteFunc(b.waiters, func(w *waiter) bool {
		if err := b.streamErrLocked(w.item.Stream); err != nil {
			w.err = err
			close(w.ready)
			return true
		}
		return false
	})
	for len(b.waiters) > 0 {
		w := b.waiters[0]
		if b.buffered+len(w.item.Data) > b.cfg.MaxBufferedBytes {
			break
		}
		b.waiters[0] = nil
		b.waiters = b.waiters[1:]
		w.res, w.err = b.enqueueLocked(w.item)
		close(w.ready)
	}
}

// Reset clears the failure of stream, after the caller reloaded the
// stream's log end from the commit store; later Adds of the stream are
// accepted again. It first waits until every batch of the stream in the
// buffer has its result, so none of them can be committed after the reset.
// It returns ctx.Err() if ctx ends first.
func (b *Batching) Reset(ctx context.Context, stream string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		st := b.streams[stream]
		if st == nil || st.failed == nil {
			return nil
		}
		if st.count == 0 {
			delete(b.streams, stream)
			return nil
		}
		if st.drained == nil {
			st.drained = make(chan struct{})
		}
		drained := st.drained
		b.mu.Unlock()
		select {
		case <-drained:
			b.mu.Lock()
		case <-ctx.Done():
			b.mu.Lock() // for the deferred Unlock
			return ctx.Err()
		}
	}
}

// Close stops accepting batches, fails blocked Adds with ErrClosed, flushes
// what is pending and waits until every batch has its result. If ctx ends
// first, the context given to FlushFunc and CommitFunc is canceled, batches
// not yet committed fail with an ErrClosed error, and Close returns
// ctx.Err() once the FlushFuncs have returned. Later calls wait the same way.
func (b *Batching) Close(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		for _, w := range b.waiters {
			w.err = ErrClosed
			close(w.ready)
		}
		b.waiters = nil
	}
	b.mu.Unlock()
	notify(b.cutKick)
	select {
	case <-b.done:
		b.cancel(ErrClosed) // releases the context's resources
		return nil
	case <-ctx.Done():
	}
	b.cancel(fmt.Errorf("%w: gave up: %w", ErrClosed, ctx.Err()))
	notify(b.cutKick)
	<-b.done
	return ctx.Err()
}

// Stats returns a snapshot of the counters and gauges.
func (b *Batching) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.PendingBytes = b.pendingBytes
	s.BufferedBytes = b.buffered
	s.Uploading = b.uploading
	s.Waiting = len(b.waiters)
	return s
}

// notify wakes a loop without blocking; one pending wake-up is enough
// because a loop re-reads all state when it wakes.
func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
