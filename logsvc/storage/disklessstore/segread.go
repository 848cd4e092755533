package disklessstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/segobject"
)

// A manifest entry is either an intake range (a partition's bytes in a
// shared flush object, read and cached whole: a flush's worth, GET with
// the other partitions' ranges around it, see intakeWindow) or a merged
// segment (package segobject, up to the merger's target size): its index
// is read once and cached parsed, and a read GETs the chunk from the block
// holding the offset to the first block boundary past segmentChunk. Every
// range GET is verified (length, batch CRCs, contiguous offsets) before it
// is cached or returned: a corrupt or truncated object fails the fetch
// with a storage error (KAFKA_STORAGE_ERROR), never returns wrong bytes,
// and is logged loudly.

// segmentChunk is how much of a segment one read GETs and caches.
const segmentChunk = 1 << 20

// readAt returns whole batches of committed entry r, starting with the
// batch holding offset: an intake range's whole bytes, or a segment chunk.
func (e *Engine) readAt(ctx context.Context, r meta.Coords, offset int64) ([]byte, error) {
	if r.Segment == nil {
		return e.readRange(ctx, r)
	}
	ix, err := e.segmentIndex(ctx, r)
	if err != nil {
		return nil, err
	}
	blk, ok := ix.Find(offset)
	if !ok {
		return nil, fmt.Errorf("%w: offset %d is not in segment %s (%d..%d)", storage.ErrStorage, offset, r.Object, r.BaseOffset, r.LastOffset)
	}
	k := rangeKey{object: r.Object, pos: blk.Pos}
	if b, ok := e.cache.get(k); ok {
		return b, nil
	}
	end := ix.ReadEnd(blk.Pos, segmentChunk)
	return e.getVerified(ctx, r, k, end-blk.Pos, blk.BaseOffset)
}

// intakeWindow is how much of a flush object a GET of one of its intake
// ranges loads: the window-aligned stretch of the object holding the
// range (all of an object up to this size). A flush object holds one
// range of every partition the node led that flushed, and consumers
// catching up or moving with a partition read them all, so one GET then
// serves every partition's range in the window instead of one GET each
// (12 partitions: twelve times fewer GETs, which S3 bills per request).
// Under the buffer's default 1 MiB flushes most objects fit one window;
// S3 suggests 8-16 MB range GETs, so a window costs little more time than
// a range. A range of half a window or more, or one crossing a window's
// end, is GET alone.
const intakeWindow = 1 << 20

// intakeGET says what a GET of intake range r loads: the window holding
// it (window true), or r alone.
func (e *Engine) intakeGET(r meta.Coords) (k rangeKey, pos, length int64, window bool) {
	start := r.Position / intakeWindow * intakeWindow
	if !e.windows || r.Length >= intakeWindow/2 || r.Position+r.Length > start+intakeWindow {
		return rangeKey{object: r.Object, pos: r.Position}, r.Position, r.Length, false
	}
	return rangeKey{object: r.Object, pos: start, window: true}, start, intakeWindow, true
}

// cachedRange reports whether intake range r's bytes are in the cache,
// alone or in their window.
func (e *Engine) cachedRange(r meta.Coords) bool {
	k, _, _, _ := e.intakeGET(r)
	return e.cache.has(k)
}

// readRange returns one intake range's bytes, from the cache or a GET of
// it or of its window. Concurrent reads of one range or window (a read and
// the prefetch ahead of it, several consumers catching up together, the
// partitions of one flush) share one GET.
func (e *Engine) readRange(ctx context.Context, r meta.Coords) ([]byte, error) {
	k, pos, length, window := e.intakeGET(r)
	if b, ok := e.cache.get(k); ok {
		return e.fromCached(r, b, pos, window)
	}
	shared := e.gets.DoChan(fmt.Sprintf("%s@%d/%d", r.Object, pos, length), func() (any, error) {
		if b, ok := e.cache.get(k); ok { // cached by a GET that just ended
			return b, nil
		}
		// The GET serves every caller that joins it: the first caller's
		// deadline or cancellation must not fail the others.
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.RPCTimeout)
		defer cancel()
		if !window {
			return e.getVerified(gctx, r, k, r.Length, r.BaseOffset)
		}
		b, err := e.opts.Objects.GetRange(gctx, r.Object, pos, length)
		if err != nil {
			return nil, fmt.Errorf("%w: read %s@%d: %v", storage.ErrStorage, r.Object, pos, err)
		}
		// A window is not verified as a whole (only the manifest knows
		// where its ranges are): each range is, when it is read from it.
		e.cache.put(k, b)
		return b, nil
	})
	select {
	case res := <-shared:
		if res.Err != nil {
			return nil, res.Err
		}
		return e.fromCached(r, res.Val.([]byte), pos, window)
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: read %s@%d: %v", storage.ErrStorage, r.Object, r.Position, context.Cause(ctx))
	}
}

// fromCached returns range r from b, the bytes of its own GET (verified
// then) or of its window starting at object position pos, which it cuts
// r from and verifies (length, batch CRCs, contiguous offsets) as a range
// GET is.
func (e *Engine) fromCached(r meta.Coords, b []byte, pos int64, window bool) ([]byte, error) {
	if !window {
		return b, nil
	}
	from := r.Position - pos
	if from+r.Length > int64(len(b)) {
		e.log.Error("CORRUPT object: shorter than its manifest says; fetches of it fail", "object", r.Object, "pos", r.Position, "want", r.Length, "got", max(int64(len(b))-from, 0))
		return nil, fmt.Errorf("%w: object %s is shorter than its manifest says", storage.ErrStorage, r.Object)
	}
	data := b[from : from+r.Length : from+r.Length]
	if err := segobject.Verify(data, r.BaseOffset, r.LastOffset); err != nil {
		return nil, e.corrupt(r, r.Position, err)
	}
	return data, nil
}

// readAheadGETs bounds the GETs one read (or prefetch) runs at once.
const readAheadGETs = 16

// readAhead loads into the cache, readAheadGETs GETs at a time, the intake
// ranges at the head of rs (a partition's manifest entries in offset
// order) that a read of maxBytes below maxOffset needs, so that reading
// them in order then finds them cached: one flush's range of a partition
// is small (a 10 ms flush of 2 MB/s over 12 partitions: under 2 KiB), and
// GET one after another a reader behind the ring got only a few hundred
// KB/s of them (S3 Express model, 5 ms GETs), less than a producer writes.
// Ranges sharing a window take one GET. It stops at the first merged
// segment (a segment is read in 1 MiB chunks already) and once what it
// loads reaches a quarter of the cache, so that it is not evicted before
// it is read. Errors are left for the read itself to meet.
func (e *Engine) readAhead(ctx context.Context, rs []meta.Coords, maxBytes int, maxOffset int64) {
	budget := min(int64(maxBytes), e.cache.max/4)
	var need []meta.Coords
	var total, loading int64
	loads := map[rangeKey]bool{}
	for _, r := range rs {
		if r.Segment != nil || r.BaseOffset >= maxOffset || (len(need) > 0 && (total >= budget || loading >= e.cache.max/4)) {
			break
		}
		total += r.Length
		k, _, length, _ := e.intakeGET(r)
		if loads[k] || e.cache.has(k) {
			continue
		}
		loads[k] = true
		loading += length
		need = append(need, r)
	}
	if len(need) < 2 {
		return // none, or the read's own GET
	}
	e.loadRanges(ctx, need, make(chan struct{}, readAheadGETs), nil)
}

// loadRanges loads intake ranges rs into the cache, as many GETs at once
// as sem has room for, and waits for them; loaded (if set) counts each
// range loaded. Errors only mean colder reads.
func (e *Engine) loadRanges(ctx context.Context, rs []meta.Coords, sem chan struct{}, loaded *atomic.Uint64) {
	var wg sync.WaitGroup
	for _, r := range rs {
		if e.cachedRange(r) {
			// In a window an earlier range of rs loaded.
			if loaded != nil {
				loaded.Add(1)
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := e.readRange(ctx, r); err == nil && loaded != nil {
				loaded.Add(1)
			}
		}()
	}
	wg.Wait()
}

// segmentIndex returns a segment's parsed index, from the cache or a GET.
func (e *Engine) segmentIndex(ctx context.Context, r meta.Coords) (*segobject.Index, error) {
	if ix, ok := e.cache.getIndex(r.Object); ok {
		return ix, nil
	}
	b, err := e.get(ctx, r.Object, r.Segment.IndexPos, r.Segment.IndexLen)
	if err != nil {
		return nil, err
	}
	ix, err := segobject.ParseIndex(b, r.Segment.IndexPos, r.LastOffset)
	if err == nil && ix.BaseOffset() != r.BaseOffset {
		err = fmt.Errorf("%w: index starts at offset %d, the manifest at %d", segobject.ErrCorrupt, ix.BaseOffset(), r.BaseOffset)
	}
	if err != nil {
		return nil, e.corrupt(r, r.Segment.IndexPos, err)
	}
	e.cache.putIndex(r.Object, ix, r.Segment.IndexLen)
	return ix, nil
}

// getVerified GETs length bytes of entry r's object at k.pos, checks that
// they are whole batches from offset base up to at most r.LastOffset, and
// caches them under k: every intake range and segment chunk is read so.
func (e *Engine) getVerified(ctx context.Context, r meta.Coords, k rangeKey, length, base int64) ([]byte, error) {
	b, err := e.get(ctx, r.Object, k.pos, length)
	if err != nil {
		return nil, err
	}
	if err := segobject.Verify(b, base, r.LastOffset); err != nil {
		return nil, e.corrupt(r, k.pos, err)
	}
	e.cache.put(k, b)
	return b, nil
}

// get is one range GET that must return exactly length bytes.
func (e *Engine) get(ctx context.Context, object string, pos, length int64) ([]byte, error) {
	b, err := e.opts.Objects.GetRange(ctx, object, pos, length)
	if err != nil {
		return nil, fmt.Errorf("%w: read %s@%d: %v", storage.ErrStorage, object, pos, err)
	}
	if int64(len(b)) != length {
		e.log.Error("CORRUPT object: shorter than its manifest says; fetches of it fail", "object", object, "pos", pos, "want", length, "got", len(b))
		return nil, fmt.Errorf("%w: object %s is shorter than its manifest says", storage.ErrStorage, object)
	}
	return b, nil
}

// corrupt logs bytes that failed verification and returns the error a
// fetch of them gets.
func (e *Engine) corrupt(r meta.Coords, pos int64, err error) error {
	e.log.Error("CORRUPT object data: fetches of it fail", "object", r.Object, "pos", pos, "offsets", fmt.Sprintf("%d..%d", r.BaseOffset, r.LastOffset), "err", err)
	return fmt.Errorf("%w: %s@%d: %v", storage.ErrStorage, r.Object, pos, err)
}

// batchesFrom calls fn with each batch of entry r from the one holding
// offset from, reading chunk after chunk, until fn returns an error (which
// is returned) or the entry ends.
func (e *Engine) batchesFrom(ctx context.Context, r meta.Coords, from int64, fn func(recbatch.Header, []byte) error) error {
	for from <= r.LastOffset {
		data, err := e.readAt(ctx, r, from)
		if err != nil {
			return err
		}
		before := from
		if _, err := recbatch.Iterate(data, false, func(h recbatch.Header, b []byte) error {
			if h.LastOffset() < from {
				return nil
			}
			if err := fn(h, b); err != nil {
				return err
			}
			from = h.NextOffset()
			return nil
		}); err != nil {
			return err
		}
		if from == before {
			return fmt.Errorf("%w: no batch holds offset %d in %s", storage.ErrStorage, from, r.Object)
		}
	}
	return nil
}

// warmBytes is how much of a partition's committed tail a new leader
// loads into its cache.
const warmBytes = 8 << 20

// warm loads the tail entries (oldest first) into the cache: consumers of
// a partition that just moved read its recent tail, and the ring of the
// new leader is empty. Runs in the background; errors only mean colder
// reads.
func (l *Log) warm(tail []meta.Coords) {
	if len(tail) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), l.e.opts.RPCTimeout)
		defer cancel()
		// Intake ranges (small: one flush's share of the partition) are
		// GET warmGETs at a time across every partition the node warms,
		// since a node taking over many partitions warms them all at
		// once; segment chunks one at a time.
		var ranges []meta.Coords
		for _, r := range tail {
			if r.Segment == nil {
				ranges = append(ranges, r)
				continue
			}
			if _, err := l.e.readAt(ctx, r, max(r.BaseOffset, r.LastOffset)); err != nil {
				return
			}
			l.e.warmed.Add(1)
		}
		l.e.loadRanges(ctx, ranges, l.e.warmSem, &l.e.warmed)
	}()
}

// warmGETs bounds the range GETs cache warming runs at once on a node.
const warmGETs = 16
