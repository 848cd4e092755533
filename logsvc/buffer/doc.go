// Package buffer holds the in-memory buffering of shared-storage topics
// (diskless now, hybrid later): the seed plan's BatchingBuffer and
// MemoryRingBuffer. It is pure data structures and goroutines; callers
// supply the upload and commit steps, so nothing here does I/O.
//
// # Batching
//
// A log-service node has one Batching for all its partitions ("streams").
// Partitions Add record batches whose offsets are already assigned; the
// buffer groups the batches of many streams into one Flush per window, the
// caller's FlushFunc writes it as one object, and the buffer then has the
// caller commit it. A flush is cut when the pending bytes reach
// MaxBatchBytes, MaxDelay after the oldest pending batch arrived, when
// batches stopped arriving (Config.IdleFlush), when no upload is running
// (Config.EagerFlush: group commit), or at Close. It takes pending batches
// in arrival order until it holds at least MaxBatchBytes, so an object is
// at most MaxBatchBytes plus one batch; in the common case that is
// everything pending.
//
// Durability is split in two steps because uploads are slow and may run in
// parallel, while commits must be ordered:
//
//  1. Upload: FlushFunc(ctx, f) is called on its own goroutine, up to
//     MaxInFlight at a time, possibly before earlier flushes finished. It
//     writes the object and returns a CommitFunc (or an error).
//  2. Commit: once flush N's upload returned, the buffer calls its
//     CommitFunc for those of its streams whose earlier flushes all have
//     their results; its other streams wait for their turn, and a later
//     call commits them. Commits run one at a time (one goroutine), each
//     stream's in Seq order. The buffer passes the streams that may still
//     be committed; the CommitFunc reports which of them failed.
//
// Commits are ordered per stream, not across the whole flush sequence:
// with parallel uploads a slow PUT would otherwise hold up every later
// flush, though a later flush usually also holds streams the slow one does
// not. They still run one at a time because a commit (one etcd
// transaction) is cheap next to an upload; parallelism is where the time
// goes, in step 1.
//
// # Ordering guarantee (DESIGN invariant 3)
//
// Every Add that returned a channel gets exactly one value on it: nil once
// the batch is committed, or an error. For any stream S:
//
//   - S's batches are committed in Add order: a flush holds a prefix of the
//     pending batches and S's part of flush N is committed only after S's
//     part of every earlier flush has its result.
//   - Results are delivered in Add order: when a batch's result is on its
//     channel, the results of all of S's earlier batches already are on
//     theirs. Results are delivered by the single commit goroutine, after
//     the commit of S's part of the flush returned.
//   - If S fails in a flush (upload error, commit error, or Close giving up),
//     every later batch of S already in the buffer fails too, without its
//     commit being attempted, with an error matching ErrStreamFailed that
//     wraps the first failure. Add for S then fails at once with such an
//     error until the caller, having reloaded its log end from the commit
//     store, calls Reset(S). Reset waits until every earlier batch of S has
//     its result, so a commit never mixes batches from before and after the
//     failure and never leaves a gap in S's offsets.
//
// Other streams are unaffected by S's failure: a flush whose commit fails
// for S alone still commits its other streams.
//
// # Memory bound (DESIGN invariant 6)
//
// The bytes of every batch from Add until its result is delivered (pending,
// uploading and awaiting commit) count against MaxBufferedBytes. Add blocks
// while a batch would not fit, admitting waiters in arrival order so a large
// batch is not starved by small ones, and returns ctx.Err() if its context
// ends first. A batch larger than MaxBufferedBytes is refused at once.
//
// # MemoryRing
//
// MemoryRing keeps the most recently committed batches of all streams
// within one byte bound, the first stop of the diskless read path (ring,
// then cache, then object storage). It evicts the globally oldest batch and
// answers a read only if it holds the batch containing the offset.
package buffer
