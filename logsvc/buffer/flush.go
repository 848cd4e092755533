package buffer

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// flushState is a cut flush on its way through upload and commit.
type flushState struct {
	f       *Flush
	entries []*entry // parallel to f.Items
	commit  CommitFunc
	err     error // upload failed (or never attempted): fails every item
	// resolved[i] is set once f.Streams[i] has its results; unresolved
	// counts the others.
	resolved   []bool
	unresolved int
}

// cutLoop cuts flushes and starts their uploads. It is the only goroutine
// that cuts, so Seq order is cut order and each flush takes a prefix of the
// pending batches, which is what keeps every stream in Add order.
func (b *Batching) cutLoop() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		b.mu.Lock()
		now := time.Now()
		for {
			fs := b.cutLocked(now)
			if fs == nil {
				break
			}
			if fs.err != nil {
				b.ready[fs.f.Seq] = fs
				notify(b.commitKick)
				continue
			}
			b.uploading++
			go b.upload(fs)
		}
		if b.closed && len(b.pending) == 0 {
			// Close failed the waiters and Add refuses new batches, so
			// nothing can become pending again.
			b.cutDone = true
			b.mu.Unlock()
			notify(b.commitKick)
			return
		}
		wait := time.Duration(-1)
		if len(b.pending) > 0 && b.uploading < b.cfg.MaxInFlight {
			// Not cut, so below the size threshold, before the deadline
			// and not idle yet.
			wait = b.minDeadline.Sub(now)
			if idle, ok := b.idleAtLocked(); ok {
				wait = min(wait, idle.Sub(now))
			}
		}
		b.mu.Unlock()
		// With all upload slots busy there is no timer: a finishing
		// upload kicks the loop, which then cuts if the deadline passed.
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-b.cutKick:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// cutLocked cuts the next flush if one is due, or returns nil.
func (b *Batching) cutLocked(now time.Time) *flushState {
	if len(b.pending) == 0 {
		return nil
	}
	abort := b.ctx.Err() != nil // Close gave up: fail the rest, no upload
	if !abort {
		if b.uploading >= b.cfg.MaxInFlight {
			return nil
		}
		due := b.closed || b.pendingBytes >= b.minSize || !now.Before(b.minDeadline)
		if !due {
			if b.cfg.EagerFlush && b.uploading == 0 {
				b.stats.EagerFlushes++
			} else {
				idle, ok := b.idleAtLocked()
				if !ok || now.Before(idle) {
					return nil
				}
				b.stats.IdleFlushes++
			}
		}
	}
	// Take a prefix holding at least the size threshold (or everything):
	// the object stays near it even after uploads were saturated.
	n, size := 0, 0
	for _, e := range b.pending {
		if size >= b.minSize && !abort {
			break
		}
		n++
		size += len(e.item.Data)
	}
	taken := b.pending[:n]
	b.pending = append([]*entry(nil), b.pending[n:]...)
	b.pendingBytes -= size
	b.recomputeMinsLocked()

	fs := &flushState{f: &Flush{Seq: b.nextSeq, Bytes: size}}
	b.nextSeq++
	fs.f.Items, fs.f.Streams, fs.entries = group(taken)
	fs.resolved, fs.unresolved = make([]bool, len(fs.f.Streams)), len(fs.f.Streams)
	for _, sp := range fs.f.Streams {
		st := b.streams[sp.Stream]
		st.flushes = append(st.flushes, fs.f.Seq)
	}
	b.unresolved++
	b.stats.Flushes++
	b.stats.FlushedBytes += uint64(size)
	b.stats.FlushedItems += uint64(n)
	if abort {
		fs.err = context.Cause(b.ctx)
	}
	return fs
}

// idleAtLocked is when the pending batches become idle (Config.IdleFlush):
// the last Add plus max(IdleFlush, IdleGaps mean gaps); ok is false when
// idle flushes are off.
func (b *Batching) idleAtLocked() (time.Time, bool) {
	if b.cfg.IdleFlush <= 0 {
		return time.Time{}, false
	}
	return b.lastAdd.Add(max(b.cfg.IdleFlush, IdleGaps*b.gap)), true
}

// group orders entries by stream (streams by first appearance, a stream's
// entries in arrival order).
func group(entries []*entry) ([]Item, []Span, []*entry) {
	index := make(map[string]int)
	var buckets [][]*entry
	for _, e := range entries {
		i, ok := index[e.item.Stream]
		if !ok {
			i = len(buckets)
			index[e.item.Stream] = i
			buckets = append(buckets, nil)
		}
		buckets[i] = append(buckets[i], e)
	}
	items := make([]Item, 0, len(entries))
	spans := make([]Span, 0, len(buckets))
	ordered := make([]*entry, 0, len(entries))
	for _, bucket := range buckets {
		start := len(items)
		for _, e := range bucket {
			items = append(items, e.item)
			ordered = append(ordered, e)
		}
		spans = append(spans, Span{Stream: bucket[0].item.Stream, Start: start, End: len(items)})
	}
	return items, spans, ordered
}

// upload runs step 1 of one flush and hands it to the commit loop.
func (b *Batching) upload(fs *flushState) {
	commit, err := b.flush(b.ctx, fs.f)
	if err != nil {
		err = fmt.Errorf("upload flush %d: %w", fs.f.Seq, err)
	}
	b.mu.Lock()
	fs.commit, fs.err = commit, err
	b.uploading--
	b.ready[fs.f.Seq] = fs
	b.mu.Unlock()
	notify(b.cutKick) // a slot is free
	notify(b.commitKick)
}

// commitLoop runs step 2: it commits a flush's streams once the flush is
// uploaded and, stream by stream, every earlier flush holding that stream
// has its results, then delivers their results. Being the only goroutine
// that commits, fails streams and delivers results is what makes the
// ordering guarantee hold.
func (b *Batching) commitLoop() {
	defer close(b.done)
	for {
		b.mu.Lock()
		fs, spans := b.nextCommitLocked()
		if fs == nil {
			finished := b.cutDone && b.unresolved == 0
			b.mu.Unlock()
			if finished {
				return
			}
			<-b.commitKick
			continue
		}
		if len(spans) < fs.unresolved || fs.unresolved < len(fs.f.Streams) {
			b.stats.PartialCommits++
		}
		outcome := make(map[string]error, len(spans))
		var streams []string
		for _, i := range spans {
			sp := fs.f.Streams[i]
			switch {
			case fs.err != nil:
				outcome[sp.Stream] = fs.err
			case b.streams[sp.Stream].failed != nil:
				outcome[sp.Stream] = b.streamErrLocked(sp.Stream)
			default:
				streams = append(streams, sp.Stream)
			}
		}
		b.mu.Unlock()

		if len(streams) > 0 {
			failed, err := b.runCommit(fs, streams)
			for _, s := range streams {
				if err != nil {
					outcome[s] = err
				} else {
					outcome[s] = failed[s]
				}
			}
		}

		b.mu.Lock()
		b.resolveLocked(fs, spans, outcome)
		b.lastResult = time.Now()
		b.admitLocked()
		b.mu.Unlock()
	}
}

// nextCommitLocked picks what to commit next: the oldest uploaded flush
// with a stream whose earlier flushes all have their results, and those of
// its streams (indexes into Flush.Streams). Nil when nothing can commit
// yet. The oldest unresolved flush has all its streams' turns, so once it
// is uploaded it is picked: a slow upload delays only the streams it
// holds, and never stops the loop.
func (b *Batching) nextCommitLocked() (*flushState, []int) {
	for _, seq := range slices.Sorted(maps.Keys(b.ready)) {
		fs := b.ready[seq]
		var spans []int
		for i, sp := range fs.f.Streams {
			if !fs.resolved[i] && b.streams[sp.Stream].flushes[0] == seq {
				spans = append(spans, i)
			}
		}
		if len(spans) > 0 {
			return fs, spans
		}
	}
	return nil, nil
}

// runCommit calls the flush's CommitFunc unless Close gave up.
func (b *Batching) runCommit(fs *flushState, streams []string) (map[string]error, error) {
	if b.ctx.Err() != nil {
		return nil, context.Cause(b.ctx)
	}
	if fs.commit == nil {
		return nil, nil
	}
	failed, err := fs.commit(b.ctx, streams)
	if err != nil {
		err = fmt.Errorf("commit flush %d: %w", fs.f.Seq, err)
	}
	return failed, err
}

// resolveLocked records failures and delivers the results of a flush's
// streams spans (indexes into Flush.Streams), each stream's in item order.
// A stream is failed before any result is delivered, so a caller that sees
// an error and calls Reset finds the failure recorded.
func (b *Batching) resolveLocked(fs *flushState, spans []int, outcome map[string]error) {
	for _, i := range spans {
		sp := fs.f.Streams[i]
		err := outcome[sp.Stream]
		st := b.streams[sp.Stream]
		if err != nil && st.failed == nil {
			st.failed = err
		}
		for _, e := range fs.entries[sp.Start:sp.End] {
			e.res <- err
			b.buffered -= len(e.item.Data)
			st.count--
			if err != nil {
				b.stats.FailedItems++
			} else {
				b.stats.CommittedItems++
			}
		}
		st.flushes = st.flushes[1:]
		fs.resolved[i] = true
		fs.unresolved--
		if st.count == 0 {
			if st.drained != nil {
				close(st.drained)
				st.drained = nil
			}
			if st.failed == nil {
				delete(b.streams, sp.Stream)
			}
		}
	}
	if fs.unresolved == 0 {
		delete(b.ready, fs.f.Seq)
		b.unresolved--
	}
}

// recomputeMinsLocked recomputes the earliest deadline and the smallest
// size threshold of the pending batches (after a cut removed some).
func (b *Batching) recomputeMinsLocked() {
	b.minDeadline, b.minSize = time.Time{}, 0
	for i, e := range b.pending {
		if i == 0 || e.deadline.Before(b.minDeadline) {
			b.minDeadline = e.deadline
		}
		if i == 0 || e.size < b.minSize {
			b.minSize = e.size
		}
	}
}
