package wal

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for zero Options fields.
const (
	DefaultFileBytes       = 64 << 20
	DefaultMaxQueueBytes   = 16 << 20
	DefaultMaxQueueRecords = 16 << 10
)

var (
	// ErrClosed is returned for appends after Close and delivered to
	// appends still queued when Close was called.
	ErrClosed = errors.New("wal: closed")
	// ErrCorrupt is wrapped by Open's error when a file other than the last
	// one has a bad frame: acknowledged data is damaged.
	ErrCorrupt = errors.New("wal: corrupt")
	// ErrInvalidRecord is delivered for a record that cannot be framed.
	ErrInvalidRecord = errors.New("wal: invalid record")
	// ErrReplayAfterAppend is returned by Replay once Append was called.
	ErrReplayAfterAppend = errors.New("wal: replay after append")
	// ErrStreamBlocked is delivered for a record of a stream that had a
	// record fail to be written (disk full) and was not Unblocked since:
	// its owner must first learn where the stream really ends.
	ErrStreamBlocked = errors.New("wal: stream blocked after a failed write")
)

// Options configures a WAL. The zero value is usable.
type Options struct {
	// FileBytes rolls to a new WAL file once the current one reaches this
	// size; default 64 MiB. Smaller files are pruned sooner.
	FileBytes int64
	// NoSync skips every fsync. This voids durability: an acknowledged
	// record survives a process crash (it is in the page cache) but not an
	// OS crash or power loss. For tests and benchmarks only.
	NoSync bool
	// MaxQueueBytes and MaxQueueRecords bound the appends queued but not
	// yet taken by the writer; when either is reached Append blocks. A
	// record larger than MaxQueueBytes is admitted alone. Defaults 16 MiB
	// and 16384. Memory use can reach about twice this, since the group
	// being written is no longer counted.
	MaxQueueBytes   int64
	MaxQueueRecords int
	// Preallocate starts each WAL file from a spare file of FileBytes (a
	// pruned WAL file, or zeros written in the background), so that
	// appends overwrite allocated blocks and their fsyncs are shorter (see
	// prealloc.go). Costs up to two files of FileBytes on disk (the active
	// file at its full size and the spare). Ignored with NoSync.
	Preallocate bool
	// DirectIO writes WAL files with O_DIRECT, bypassing the page cache
	// (direct.go), where the file system supports it; see WAL.DirectIO.
	DirectIO bool

	// zeroFillAlways prepares a zero-filled spare after every roll, however
	// fast the file filled (tests).
	zeroFillAlways bool
}

// Record is one appended entry.
type Record struct {
	Stream string // partition key, e.g. "<topicID>/<partition>"; 1..65535 bytes
	Offset int64  // Kafka base offset of the batch
	Data   []byte // the batch bytes, opaque to the WAL
}

type pending struct {
	seq  uint64
	rec  Record
	done chan error
}

// WAL is a node-level write-ahead log with group commit. Its methods are
// safe for concurrent use, except that Replay must happen before Append.
type WAL struct {
	dir      string
	opts     Options
	syncHook func(*os.File) error // replaces (*os.File).Sync in tests

	// mu guards the queue and the state Append needs.
	mu          sync.Mutex
	notEmpty    sync.Cond // writer waits for work
	notFull     sync.Cond // appenders wait for queue room or their turn
	queue       []pending
	queuedBytes int64
	nextSeq     uint64
	ticketNext  uint64 // FIFO admission of appenders under backpressure
	ticketServe uint64
	waiting     int   // appenders blocked on notFull
	appended    bool  // Append was called; Replay is no longer allowed
	closed      bool  //
	err         error // poison: set once on an fsync (or unrecoverable) failure
	// blocked holds the streams with a record that failed to be written
	// (a write error such as ENOSPC, which the WAL survives): none of their
	// later records may become durable until Unblock, or the WAL would hold
	// a record after a hole in its stream.
	blocked map[string]error

	// filesMu guards the file list and every fileInfo's fields.
	filesMu   sync.Mutex
	sealed    []*fileInfo
	active    *fileInfo
	size      int64 // total bytes of all files
	truncated int64 // bytes dropped from the last file by Open

	pruneMu sync.Mutex // serializes Prune, and Prune against Replay

	// Pruned files being given back in the background (reclaim.go).
	reclaimMu  sync.Mutex
	trashed    []string
	reclaiming bool
	reclaimWG  sync.WaitGroup
	closing    chan struct{} // closed by Close: stops the reclaimer

	// Owned by the writer goroutine (and by Close after it exits).
	f           *os.File  // the active file
	prezeroed   bool      // f was started from the spare: frames overwrite zeros
	direct      bool      // files are written with O_DIRECT (fixed at Open)
	tail        []byte    // direct: the frames in f's last, partly filled block
	dbuf        []byte    // direct: the aligned buffer of the current write
	activeSince time.Time // when f became the active file
	buf         []byte    // encoded frames of the current group

	// The spare file of Options.Preallocate (prealloc.go).
	spareMu    sync.Mutex
	spareState int
	spareStop  bool
	spareErr   error // the last failed preparation, for tests
	recycled   int   // pruned files made the spare, for tests
	spareWG    sync.WaitGroup

	syncs      atomic.Int64 // fsyncs of WAL files, for tests
	writerDone chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

// NextSeq is the sequence number the next Append gets: every record
// appended before the call has a smaller one.
func (w *WAL) NextSeq() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.nextSeq
}

func (w *WAL) start() {
	w.notEmpty.L = &w.mu
	w.notFull.L = &w.mu
	w.writerDone = make(chan struct{})
	go w.run()
}

// Append queues r and returns its sequence number and a channel that
// receives exactly one value: nil once r and every record before it are
// written and fsynced, or the error. Seqs are strictly increasing in call
// order. Append blocks only while the queue is full. r.Data must not be
// modified until the channel has delivered. On failure seq is 0.
func (w *WAL) Append(r Record) (seq uint64, done <-chan error) {
	ch := make(chan error, 1)
	if err := validateRecord(r); err != nil {
		ch <- err
		return 0, ch
	}
	size := int64(frameSize(r))

	w.mu.Lock()
	defer w.mu.Unlock()
	w.appended = true
	// Tickets keep admission FIFO: otherwise small records could keep
	// slipping past a large one waiting for room and starve it.
	ticket := w.ticketNext
	w.ticketNext++
	for !w.closed && w.err == nil && (ticket != w.ticketServe || w.full(size)) {
		w.waiting++
		w.notFull.Wait()
		w.waiting--
	}
	w.ticketServe++
	if w.waiting > 0 {
		w.notFull.Broadcast() // the next ticket may now go
	}
	switch {
	case w.closed:
		ch <- ErrClosed
		return 0, ch
	case w.err != nil:
		ch <- w.err
		return 0, ch
	case w.blocked[r.Stream] != nil:
		ch <- w.blocked[r.Stream]
		return 0, ch
	}
	seq = w.nextSeq
	w.nextSeq++
	w.queue = append(w.queue, pending{seq: seq, rec: r, done: ch})
	w.queuedBytes += size
	w.notEmpty.Signal()
	return seq, ch
}

// full reports whether a record of size bytes must wait. An empty queue
// always admits, so a record larger than the byte bound cannot deadlock.
func (w *WAL) full(size int64) bool {
	return len(w.queue) > 0 &&
		(w.queuedBytes+size > w.opts.MaxQueueBytes || len(w.queue) >= w.opts.MaxQueueRecords)
}

// run is the writer goroutine: take everything queued, commit it as one
// group, repeat. There is deliberately no delay to wait for more appends;
// those arriving during a commit form the next group.
func (w *WAL) run() {
	defer close(w.writerDone)
	var group []pending
	for {
		w.mu.Lock()
		for len(w.queue) == 0 && !w.closed {
			w.notEmpty.Wait()
		}
		if len(w.queue) == 0 { // closed and drained
			w.mu.Unlock()
			return
		}
		// Swap slices so the two backing arrays are reused.
		group, w.queue = w.queue, group[:0]
		w.queuedBytes = 0
		if w.waiting > 0 {
			w.notFull.Broadcast()
		}
		w.mu.Unlock()

		err := w.commit(group)
		clear(group) // drop references to record data
		if err != nil {
			w.poison(err)
			return
		}
	}
}

// commit writes group to the active file, rolling files as they fill. Each
// chunk that ends a file (and the remainder) is written with one write and
// fsynced once; its callers are then told nil, in seq order.
//
// A failed write (disk full) is survived: the file is cut back to its last
// good size, the records of that chunk and of the rest of the group fail
// with the error, and their streams are blocked (see Unblock). Records of
// streams blocked meanwhile are failed without being written. A failed
// fsync, or a file that cannot be cut back, is returned: the WAL is
// poisoned.
func (w *WAL) commit(group []pending) error {
	group = w.dropBlocked(group)
	buf := w.buf[:0]
	start := 0
	w.filesMu.Lock()
	activeSize := w.active.size
	expect := w.active.firstSeq // the seq the active file takes next
	if activeSize > 0 {
		expect = w.active.lastSeq + 1
	}
	w.filesMu.Unlock()
	// write writes the frames of group[start:end]; stop means the rest of
	// the group was failed (and blocked) after a failed write.
	write := func(end int) (stop bool, err error) {
		if err := w.flush(buf, group[start:end]); err != nil {
			var we *writeError
			if !errors.As(err, &we) {
				failAll(group[start:], err)
				return true, err
			}
			if terr := w.f.Truncate(activeSize); terr != nil {
				err = errors.Join(err, fmt.Errorf("wal: cut back %s after a failed write: %w", w.active.path, terr))
				failAll(group[start:], err)
				return true, err
			}
			w.block(group[start:], err)
			return true, nil
		}
		activeSize += int64(len(buf))
		buf = buf[:0]
		start = end
		return false, nil
	}
	for i := range group {
		if group[i].seq != expect {
			// Records before this one failed (disk full) and took their
			// seqs with them; seqs run on by one within a file, so this
			// record starts a new file.
			if len(buf) > 0 {
				if stop, err := write(i); stop {
					return err
				}
			}
			if err := w.roll(group[i].seq); err != nil {
				w.block(group[i:], err)
				return nil
			}
			activeSize = 0
		}
		expect = group[i].seq + 1
		buf = appendFrame(buf, group[i].seq, group[i].rec)
		if activeSize+int64(len(buf)) < w.opts.FileBytes && i < len(group)-1 {
			continue
		}
		if stop, err := write(i + 1); stop {
			return err
		}
		if activeSize >= w.opts.FileBytes {
			// A roll that fails (no space for a new file) is tried again
			// after the next write; the active file just grows meanwhile.
			if err := w.roll(group[i].seq + 1); err == nil {
				activeSize = 0
			}
		}
	}
	// A file that did not start from the spare (the one the WAL opened
	// with) is left as soon as a spare is ready.
	if !w.prezeroed && w.opts.Preallocate && activeSize > 0 && w.spareReadyNow() {
		_ = w.roll(expect) // on failure the active file just goes on
	}
	// Keep the buffers for the next group unless one huge group grew them.
	if cap(buf) <= 4*int(w.opts.MaxQueueBytes) {
		w.buf = buf[:0]
	} else {
		w.buf = nil
	}
	if cap(w.dbuf) > 4*int(w.opts.MaxQueueBytes) {
		w.dbuf = nil
	}
	return nil
}

// writeError is a failed write, which the WAL survives (see commit).
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// block fails ps with err and blocks their streams.
func (w *WAL) block(ps []pending, err error) {
	w.mu.Lock()
	if w.blocked == nil {
		w.blocked = map[string]error{}
	}
	for _, p := range ps {
		if w.blocked[p.rec.Stream] == nil {
			w.blocked[p.rec.Stream] = fmt.Errorf("%w: %s: %w", ErrStreamBlocked, p.rec.Stream, err)
		}
	}
	w.mu.Unlock()
	failAll(ps, err)
}

// dropBlocked fails the records of blocked streams (queued before their
// stream was blocked) and returns the others.
func (w *WAL) dropBlocked(group []pending) []pending {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.blocked) == 0 {
		return group
	}
	keep := group[:0]
	for _, p := range group {
		if err := w.blocked[p.rec.Stream]; err != nil {
			p.done <- err
			continue
		}
		keep = append(keep, p)
	}
	return keep
}

// Unblock lets records of stream be written again after a failed write
// blocked it. Its owner calls it once it knows where the stream's durable
// records end (it reopened the stream's log); records it appends from then
// on follow that end.
func (w *WAL) Unblock(stream string) {
	w.mu.Lock()
	delete(w.blocked, stream)
	w.mu.Unlock()
}

// flush writes buf (the frames of recs) to the active file, fsyncs it and
// completes recs with nil. A failed write is a *writeError.
func (w *WAL) flush(buf []byte, recs []pending) error {
	var err error
	switch {
	case w.direct:
		err = w.writeDirect(buf)
	case w.prezeroed:
		_, err = w.f.WriteAt(buf, w.active.size) // over the zeros
	default:
		_, err = w.f.Write(buf) // O_APPEND; loops until all is written or it fails
	}
	if err != nil {
		return &writeError{fmt.Errorf("wal: write %s: %w", w.active.path, err)}
	}
	w.filesMu.Lock()
	w.active.size += int64(len(buf))
	w.size += int64(len(buf))
	for _, p := range recs {
		w.active.streams[p.rec.Stream] = p.seq
	}
	w.active.lastSeq = recs[len(recs)-1].seq
	w.filesMu.Unlock()
	if !w.opts.NoSync {
		w.syncs.Add(1)
		sync := (*os.File).Sync
		if w.syncHook != nil {
			sync = w.syncHook
		}
		// Never retried: see "Group commit" in the package doc.
		if err := sync(w.f); err != nil {
			return fmt.Errorf("wal: fsync %s: %w", w.active.path, err)
		}
	}
	for _, p := range recs {
		p.done <- nil
	}
	return nil
}

// roll seals the active file (already fsynced by flush) and starts a new
// one whose first record will be nextSeq: the writer writes in seq order,
// so that is the next seq it will write.
func (w *WAL) roll(nextSeq uint64) error {
	if w.prezeroed || w.direct {
		// Cut the zeros (of the spare, or after a direct write's last
		// frame) off before a later file exists: only the last file may
		// end in something that is not a frame.
		if err := w.f.Truncate(w.active.size); err != nil {
			return fmt.Errorf("wal: cut %s to its frames: %w", w.active.path, err)
		}
		if !w.opts.NoSync {
			if err := w.f.Sync(); err != nil {
				return fmt.Errorf("wal: fsync %s: %w", w.active.path, err)
			}
		}
	}
	info, f, prezeroed, err := w.takeSpare(nextSeq)
	if err == nil && !prezeroed {
		info, f, err = w.createFile(nextSeq)
	}
	if err != nil {
		return err
	}
	old := w.f
	w.prezeroed = prezeroed
	if err := w.setActiveFile(f, 0); err != nil {
		return err // cannot happen: a new file has no partial block to read
	}
	sealedSince := w.activeSince
	w.activeSince = time.Now()
	w.rolled(sealedSince)
	w.filesMu.Lock()
	w.sealed = append(w.sealed, w.active)
	w.active = info
	w.filesMu.Unlock()
	if err := old.Close(); err != nil {
		// The data was fsynced; a failing close loses nothing, but it is
		// unexpected enough to stop.
		return fmt.Errorf("wal: close sealed file: %w", err)
	}
	return nil
}

// poison records the first write/fsync failure and fails everything
// queued; Append refuses from now on. The writer exits after calling it.
func (w *WAL) poison(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
	failAll(w.queue, w.err)
	clear(w.queue)
	w.queue = w.queue[:0]
	w.queuedBytes = 0
	w.notFull.Broadcast()
}

func failAll(ps []pending, err error) {
	for _, p := range ps {
		p.done <- err
	}
}

// Close stops the WAL. Appends still queued get ErrClosed; a group already
// being written is finished first. Close waits for the writer and closes
// the active file. It is idempotent: later calls return the first result.
func (w *WAL) Close() error {
	w.closeOnce.Do(func() {
		close(w.closing)
		w.mu.Lock()
		w.closed = true
		failAll(w.queue, ErrClosed)
		clear(w.queue)
		w.queue = w.queue[:0]
		w.queuedBytes = 0
		w.notEmpty.Broadcast()
		w.notFull.Broadcast()
		w.mu.Unlock()
		<-w.writerDone
		w.stopSpare()
		w.reclaimWG.Wait()
		if w.direct && !w.prezeroed && w.err == nil {
			// Cut the zeros a direct write left after the last frame,
			// so a plain file ends in its frames as without direct I/O.
			// If this fails, Open cuts them as a torn tail.
			_ = w.f.Truncate(w.active.size)
		}
		if err := w.f.Close(); err != nil {
			w.closeErr = fmt.Errorf("wal: %w", err)
		}
	})
	return w.closeErr
}

// DirectIO reports whether the WAL writes with O_DIRECT: Options.DirectIO
// was set and the file system of its directory supports it.
func (w *WAL) DirectIO() bool { return w.direct }

// Size returns the total bytes of WAL files on disk.
func (w *WAL) Size() int64 {
	w.filesMu.Lock()
	defer w.filesMu.Unlock()
	return w.size
}

// Files returns the number of WAL files on disk, the active one included.
func (w *WAL) Files() int {
	w.filesMu.Lock()
	defer w.filesMu.Unlock()
	return len(w.sealed) + 1
}

// Truncated returns how many bytes Open cut from a torn or corrupt tail of
// the last file, including the unused zeros of a preallocated one.
func (w *WAL) Truncated() int64 {
	w.filesMu.Lock()
	defer w.filesMu.Unlock()
	return w.truncated
}
