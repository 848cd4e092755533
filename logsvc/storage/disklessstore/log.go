package disklessstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamline-dev/streamline/logsvc/buffer"
	"github.com/streamline-dev/streamline/logsvc/storage"
	uploadv1 "github.com/streamline-dev/streamline/proto/gen/streamline/upload/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/telemetry"
)

// manifestPage is how many manifest entries one etcd read fetches.
const manifestPage = 64

// pageReuse is how many entries the cached manifest page (Log.page) must
// still hold from a read's offset for any read to use it instead of
// fetching a page from etcd (see pageServes): a reader catching up fetches
// one page per half page of ranges it reads, and a read gets at least
// half a page's ranges.
const pageReuse = manifestPage / 2

// Log is one diskless partition.
type Log struct {
	e      *Engine
	spec   storage.PartitionSpec
	stream string

	// The topic's own batch_timeout_ms / batch_size_bytes when it set them
	// (zero: the node's buffer defaults); Reconfigure changes them.
	maxDelay      atomic.Int64 // time.Duration
	maxBatchBytes atomic.Int64

	rev   atomic.Int64 // the partition record's revision trims are fenced by (SetLeaderRevision)
	start atomic.Int64 // first retained offset
	end   atomic.Int64 // committed end
	next  atomic.Int64 // where a sequential reader will read next (prefetch hint)

	// page is the last page of manifest entries a read behind the ring
	// fetched from etcd (contiguous, in offset order; replaced whole, never
	// modified), which the reads after it use while it lasts (rangesAt).
	// Catching up at 280 MB/s on the directory store, decoding a fresh
	// page on every read was an eighth of the node's CPU. An entry may
	// outlive its object (a merge replaced it and the collector deleted
	// the object): a read that fails on a cached page drops it and reads
	// again from etcd's entries.
	pageMu sync.Mutex
	page   []meta.Coords

	// The committed manifest entries this leader knows (loaded on Open,
	// appended on each commit, in offset order), for Size: entries wholly
	// below start are gone from etcd (retention and DeleteRecords delete
	// exactly those) and are dropped from here lazily.
	sizeMu  sync.Mutex
	entries []sizeEntry
	bytes   int64 // sum of entries' lengths
}

// sizeEntry is one committed manifest entry's last offset and length.
type sizeEntry struct{ last, length int64 }

var _ storage.Log = (*Log)(nil)

// Append hands the batch to the node's buffer. The result arrives once an
// uploader wrote it to object storage and committed it to etcd.
func (l *Log) Append(batch []byte, h recbatch.Header) <-chan error {
	return l.AppendContext(context.Background(), batch, h)
}

// AppendContext implements storage.ContextAppender: Append, and when ctx
// carries a recording span (the produce request's) and the engine traces,
// the batch's time in the buffer - from Add, backpressure included, until
// its flush is uploaded and committed - is a span logsvc.buffer.wait, the
// parent of its flush's upload and commit spans.
func (l *Log) AppendContext(ctx context.Context, batch []byte, h recbatch.Header) <-chan error {
	im := itemMeta{log: l}
	var wait trace.Span
	if l.e.tracer != nil && telemetry.Recording(ctx) {
		_, wait = l.e.tracer.Start(ctx, "logsvc.buffer.wait", trace.WithAttributes(
			attribute.String("streamline.stream", l.stream), attribute.String("streamline.topic", l.spec.Topic.Name),
			attribute.Int("streamline.partition", int(l.spec.Partition)), attribute.Int64("streamline.base_offset", h.BaseOffset),
			attribute.Int("streamline.bytes", len(batch))))
		im.trace = wait.SpanContext()
	}
	res := make(chan error, 1)
	ch, err := l.e.buf.Add(context.Background(), buffer.Item{
		Stream: l.stream, BaseOffset: h.BaseOffset, LastOffset: h.LastOffset(), Data: batch, Meta: im,
		MaxDelay: time.Duration(l.maxDelay.Load()), MaxBatchBytes: int(l.maxBatchBytes.Load()),
	})
	if err != nil {
		err = fmt.Errorf("%w: %v", storage.ErrStorage, err)
		endSpan(wait, err)
		res <- err
		return res
	}
	go func() {
		// A committed batch was published (publish) before its result.
		err := <-ch
		if err != nil && !errors.Is(err, storage.ErrFenced) && !errors.Is(err, storage.ErrStorage) {
			err = fmt.Errorf("%w: %v", storage.ErrStorage, err)
		}
		endSpan(wait, err)
		res <- err
	}()
	return res
}

// Reconfigure implements storage.Log: the topic-level knobs apply to this
// partition's later batches in the node's shared buffer; unset ones fall
// back to the node's flags.
func (l *Log) Reconfigure(t meta.Topic) {
	var size int64
	delay := topicBatchDelay(t)
	if v, ok := t.Configs[meta.ConfigBatchSizeBytes]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			size = n
		}
	}
	l.maxDelay.Store(delay)
	l.maxBatchBytes.Store(size)
}

// topicBatchDelay is the topic's remote.storage.batch.timeout.ms as the
// buffer's per-partition delay: 0 when unset (the node's flag applies), 1
// ns for 0 (flush at once), and at most meta.MaxBatchTimeout, which a
// topic written before that bound existed may exceed.
func topicBatchDelay(t meta.Topic) int64 {
	v, ok := t.Configs[meta.ConfigBatchTimeoutMs]
	if !ok {
		return 0
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 {
		return 0
	}
	d := time.Duration(min(ms, meta.MaxBatchTimeout.Milliseconds())) * time.Millisecond
	return int64(max(d, time.Nanosecond))
}

// StartOffset implements storage.Log.
func (l *Log) StartOffset() int64 { return l.start.Load() }

// raiseStart moves the start forward, never back (retention and
// DeleteRecords may race).
func (l *Log) raiseStart(start int64) {
	for {
		cur := l.start.Load()
		if start <= cur || l.start.CompareAndSwap(cur, start) {
			return
		}
	}
}

// raiseEnd moves the committed end forward, never back (commits, a
// hybrid tier's reports and a Refresh may race).
func (l *Log) raiseEnd(end int64) {
	for {
		cur := l.end.Load()
		if end <= cur || l.end.CompareAndSwap(cur, end) {
			return
		}
	}
}

// DeleteRecords implements storage.Log: the new start and the deletion of
// the manifest entries wholly below it are one etcd transaction an
// uploader makes (trim), fenced by the partition's leader revision like
// commits (a deposed leader gets ErrFenced). Their objects become
// unreferenced and are collected.
func (l *Log) DeleteRecords(offset int64) error {
	if offset > l.end.Load() {
		return fmt.Errorf("%w: cannot delete below %d, the log ends at %d", storage.ErrOffsetOutOfRange, offset, l.end.Load())
	}
	if offset <= l.start.Load() {
		return nil
	}
	return l.trim(offset)
}

// TrimTo moves the stored log start to offset, even past the committed
// end (a hybrid partition deleting records its tier does not hold yet:
// entries committed below it later stay hidden), and deletes the entries
// wholly below it. Fenced like DeleteRecords.
func (l *Log) TrimTo(offset int64) error { return l.trim(offset) }

// trim has an uploader move the log start to offset and delete the
// manifest entries wholly below it (UploadService.Trim: uploaders are the
// only writers of manifest keys), fenced by this leader's revision: a
// deposed leader gets ErrFenced. The new start is durable on return.
func (l *Log) trim(offset int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.e.opts.RPCTimeout)
	defer cancel()
	req := &uploadv1.TrimRequest{Topic: l.spec.Topic.Name, TopicId: l.spec.Topic.ID[:], Partition: l.spec.Partition,
		LeaderRevision: l.rev.Load(), StartOffset: offset}
	var resp *uploadv1.TrimResponse
	err := l.e.callUploader(ctx, func(ctx context.Context, c uploadv1.UploadServiceClient) (err error) {
		resp, err = c.Trim(ctx, req)
		return err
	})
	if err != nil {
		return fmt.Errorf("%w: trim %s-%d to %d: %v", storage.ErrStorage, l.spec.Topic.Name, l.spec.Partition, offset, err)
	}
	switch resp.GetStatus() {
	case uploadv1.CommitStatus_COMMIT_STATUS_COMMITTED:
		l.raiseStart(resp.GetLogStartOffset())
		l.reloadSizes(ctx)
		return nil
	case uploadv1.CommitStatus_COMMIT_STATUS_FENCED:
		return fmt.Errorf("%w: %s", storage.ErrFenced, resp.GetMessage())
	default:
		return fmt.Errorf("%w: trim %s-%d to %d: %s %s", storage.ErrStorage, l.spec.Topic.Name, l.spec.Partition, offset, resp.GetStatus(), resp.GetMessage())
	}
}

// SetLeaderRevision changes the partition record revision trims compare:
// a replicated partition's record changes with its ISR while the same
// node leads it at the same epoch (hybrid topics), so the leader passes
// the record's current revision after checking it still leads.
func (l *Log) SetLeaderRevision(rev int64) { l.rev.Store(rev) }

// Committed records a range an uploader committed for this partition
// outside the buffer (a hybrid segment): the end moves to its end, and a
// range starting above the old end (a gap the log start covers) moves the
// start with it.
func (l *Log) Committed(c meta.Coords) {
	if c.BaseOffset > l.end.Load() {
		l.raiseStart(c.BaseOffset)
	}
	l.raiseEnd(c.LastOffset + 1)
	l.committed(c.LastOffset, c.Length)
}

// Refresh reads the committed end and the log start from etcd again: a
// hybrid partition's followers and a new leader learn what the tier holds
// now.
func (l *Log) Refresh(ctx context.Context) error {
	end, _, err := l.e.opts.Store.CommittedEnd(ctx, l.spec.Topic.ID, l.spec.Partition)
	if err != nil {
		return err
	}
	deleted, err := l.e.opts.Store.LogStart(ctx, l.spec.Topic.ID, l.spec.Partition)
	if err != nil {
		return err
	}
	first := end
	if rs, err := l.e.opts.Store.RangesFrom(ctx, l.spec.Topic.ID, l.spec.Partition, 0, 1); err != nil {
		return err
	} else if len(rs) > 0 {
		first = rs[0].BaseOffset
	}
	l.raiseEnd(end)
	l.raiseStart(max(first, min(deleted, end)))
	l.reloadSizes(ctx)
	return nil
}

// EndOffset implements storage.Log: the committed end.
func (l *Log) EndOffset() int64 { return l.end.Load() }

// Read implements storage.Log: ring, then cache, then object storage.
func (l *Log) Read(offset int64, maxBytes int, maxOffset int64, minOne bool) ([]byte, error) {
	if offset < l.start.Load() || offset > l.end.Load() {
		return nil, storage.ErrOffsetOutOfRange
	}
	if offset >= maxOffset || offset >= l.end.Load() {
		return nil, nil
	}
	if data, ok := l.e.ring.Read(l.stream, offset, max(maxBytes, 1)); ok {
		l.e.ringHits.Add(1)
		lim := limits{maxBytes, maxOffset, minOne}
		var out []byte
		_, _ = recbatch.Iterate(data, false, func(h recbatch.Header, b []byte) error {
			if h.LastOffset() < offset {
				return nil
			}
			return lim.take(&out, h, b)
		})
		return out, nil
	}
	l.e.ringMisses.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), l.e.opts.RPCTimeout)
	defer cancel()
	out, next, err := l.readStored(ctx, offset, limits{maxBytes, maxOffset, minOne}, true)
	if err != nil {
		return nil, err
	}
	if len(out) > 0 {
		l.prefetch(next, maxBytes)
	}
	return out, nil
}

// readStored reads from object storage the batches from offset within
// lim, and returns them and the offset after them. useCache lets it take
// the manifest entries from the cached page; if reading them fails, it
// drops the page and reads again with entries fresh from etcd.
func (l *Log) readStored(ctx context.Context, offset int64, lim limits, useCache bool) ([]byte, int64, error) {
	ranges, cached, err := l.rangesAt(ctx, offset, lim.maxBytes, useCache, false)
	if err != nil {
		return nil, 0, err
	}
	if len(ranges) == 0 || ranges[0].BaseOffset > offset {
		return nil, 0, storage.ErrOffsetOutOfRange // retention removed it meanwhile
	}
	// The ranges this read needs, GET concurrently, not one after another:
	// a consumer behind the ring (catching up, or after a leader change)
	// reads small intake ranges, one per flush.
	l.e.readAhead(ctx, ranges, lim.maxBytes, lim.maxOffset)
	var out []byte
	next := offset
	for _, r := range ranges {
		if r.BaseOffset >= lim.maxOffset {
			break
		}
		err := l.e.batchesFrom(ctx, r, next, func(h recbatch.Header, b []byte) error {
			if err := lim.take(&out, h, b); err != nil {
				return err
			}
			next = h.NextOffset()
			return nil
		})
		if errors.Is(err, errStop) {
			break
		}
		if err != nil && cached {
			l.dropPage(ranges)
			return l.readStored(ctx, offset, lim, false)
		}
		if err != nil && len(out) > 0 {
			// Answer what was read: a range whose object is unreadable
			// (lost, or the store failing) fails only the fetch that
			// starts in it, not every fetch of the ranges before it.
			break
		}
		if err != nil {
			return nil, 0, err
		}
	}
	return out, next, nil
}

// rangesAt returns the manifest entries from the one holding offset on,
// for a read of up to maxBytes: from the cached page when useCache and
// the page holds offset and, from there, what the read needs - maxBytes
// of ranges, or the entries up to the committed end, or at least
// pageReuse entries - (cached is then true); else a page fresh from
// etcd, which becomes the cached one (keepPage; prefetch says the caller
// is a prefetch).
func (l *Log) rangesAt(ctx context.Context, offset int64, maxBytes int, useCache, prefetch bool) (rs []meta.Coords, cached bool, err error) {
	if useCache {
		l.pageMu.Lock()
		page := l.page
		l.pageMu.Unlock()
		i := sort.Search(len(page), func(i int) bool { return page[i].LastOffset >= offset })
		if i < len(page) && page[i].BaseOffset <= offset && pageServes(page[i:], maxBytes, l.end.Load()) {
			l.e.manifestHits.Add(1)
			return page[i:], true, nil
		}
	}
	l.e.manifestMisses.Add(1)
	rs, err = l.e.opts.Store.RangesFrom(ctx, l.spec.Topic.ID, l.spec.Partition, offset, manifestPage)
	if err != nil {
		return nil, false, err
	}
	l.keepPage(rs, prefetch)
	return rs, false, nil
}

// keepPage makes rs the cached page. A prefetch's page does not replace
// one that starts later: a prefetch that ran late (its read long
// answered) would otherwise put the reader's page back behind it.
func (l *Log) keepPage(rs []meta.Coords, prefetch bool) {
	l.pageMu.Lock()
	defer l.pageMu.Unlock()
	if prefetch && len(rs) > 0 && len(l.page) > 0 && rs[0].BaseOffset < l.page[0].BaseOffset {
		return
	}
	l.page = rs
}

// pageServes reports whether rs, the cached entries from a read's
// offset on, are as good for a read of maxBytes as a fresh page: they hold
// maxBytes, or reach the committed end, or are at least pageReuse entries
// (a fresh page holds at most manifestPage).
func pageServes(rs []meta.Coords, maxBytes int, end int64) bool {
	if len(rs) >= pageReuse || rs[len(rs)-1].LastOffset+1 >= end {
		return true
	}
	var n int64
	for _, r := range rs {
		if n += r.Length; n >= int64(maxBytes) {
			return true
		}
	}
	return false
}

// dropPage forgets the cached page if rs is still its tail (a newer page
// may have replaced it meanwhile).
func (l *Log) dropPage(rs []meta.Coords) {
	l.pageMu.Lock()
	defer l.pageMu.Unlock()
	if len(l.page) > 0 && len(rs) > 0 && &l.page[len(l.page)-1] == &rs[len(rs)-1] {
		l.page = nil
	}
}

// prefetch loads what a sequential reader reads next (as much as this
// read's maxBytes) into the cache.
func (l *Log) prefetch(next int64, maxBytes int) {
	if next >= l.end.Load() || l.next.Swap(next) == next {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), l.e.opts.RPCTimeout)
		defer cancel()
		rs, _, err := l.rangesAt(ctx, next, maxBytes, true, true)
		if err != nil || len(rs) == 0 || rs[0].BaseOffset > next {
			return
		}
		if rs[0].Segment != nil {
			_, _ = l.e.readAt(ctx, rs[0], next)
			return
		}
		l.e.readAhead(ctx, rs, maxBytes, l.end.Load())
	}()
}

// limits are a read's bounds: whole batches, none at or past maxOffset,
// within maxBytes (the first may exceed it when minOne).
type limits struct {
	maxBytes  int
	maxOffset int64
	minOne    bool
}

// take appends batch b (header h) to *out, or returns errStop when it is
// past the read's bounds.
func (lim limits) take(out *[]byte, h recbatch.Header, b []byte) error {
	switch {
	case h.BaseOffset >= lim.maxOffset:
		return errStop
	case len(*out)+len(b) > lim.maxBytes && !(lim.minOne && len(*out) == 0):
		return errStop
	}
	*out = append(*out, b...)
	return nil
}

var errStop = errors.New("stop")

// OffsetForTimestamp implements storage.Log: the manifest's max
// timestamps find the range, its records find the offset.
func (l *Log) OffsetForTimestamp(ts int64) (int64, int64, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.e.opts.RPCTimeout)
	defer cancel()
	found := false
	var offset, at int64
	from := l.start.Load() // records below the start are never an answer
	err := l.eachRange(ctx, from, func(r meta.Coords) error {
		if r.MaxTimestamp < ts {
			return nil
		}
		at0 := max(r.BaseOffset, from)
		if r.Segment != nil { // the time index skips the blocks before ts
			ix, err := l.e.segmentIndex(ctx, r)
			if err != nil {
				return err
			}
			if blk, ok := ix.FindTime(ts); ok {
				at0 = max(at0, blk.BaseOffset)
			}
		}
		err := l.e.batchesFrom(ctx, r, at0, func(h recbatch.Header, b []byte) error {
			if h.MaxTimestamp < ts || h.LastOffset() < from {
				return nil
			}
			recs, err := recbatch.RecordTimestamps(b)
			if err != nil {
				offset, at, found = max(h.BaseOffset, from), h.MaxTimestamp, true
				return errStop
			}
			for _, rm := range recs {
				if rm.Timestamp >= ts && h.BaseOffset+int64(rm.OffsetDelta) >= from {
					offset, at, found = h.BaseOffset+int64(rm.OffsetDelta), rm.Timestamp, true
					return errStop
				}
			}
			return nil
		})
		if found {
			return errStop
		}
		return err
	})
	if err != nil && !errors.Is(err, errStop) {
		return 0, 0, false, err
	}
	return offset, at, found, nil
}

// eachRange walks the manifest from offset, page by page.
func (l *Log) eachRange(ctx context.Context, from int64, fn func(meta.Coords) error) error {
	for {
		rs, err := l.e.opts.Store.RangesFrom(ctx, l.spec.Topic.ID, l.spec.Partition, from, manifestPage)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(rs) < manifestPage {
			return nil
		}
		from = rs[len(rs)-1].LastOffset + 1
	}
}

// ScanHeaders implements storage.Log from the manifest alone: one header
// per range carrying its leader epoch, then one per idempotent batch with
// its producer facts and one per transaction event (entryHeaders), which
// is all the partition rebuilds from.
func (l *Log) ScanHeaders(from int64, fn func(recbatch.Header) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*l.e.opts.RPCTimeout)
	defer cancel()
	return l.eachRange(ctx, from, func(r meta.Coords) error {
		for _, h := range entryHeaders(r) {
			if err := fn(h); err != nil {
				return err
			}
		}
		return nil
	})
}

// entryHeaders are the headers a manifest entry stands for, in offset
// order: one where each leader epoch starts in it (a merged segment can
// span several), one per idempotent batch with its producer facts and the
// epoch it was written under, transactional where a transaction begins
// (Coords.Txns), and one control batch per transaction marker, its Marker
// set: what partition.Open rebuilds producer and transaction state from.
func entryHeaders(r meta.Coords) []recbatch.Header {
	epochs := append([]meta.EpochStart{{Epoch: r.LeaderEpoch, Start: r.BaseOffset}}, r.Epochs...)
	epochAt := func(o int64) int32 {
		i := sort.Search(len(epochs), func(i int) bool { return epochs[i].Start > o }) - 1
		return epochs[max(i, 0)].Epoch
	}
	var out []recbatch.Header
	for i, e := range epochs {
		last := r.LastOffset
		if i+1 < len(epochs) {
			last = epochs[i+1].Start - 1
		}
		out = append(out, recbatch.Header{BaseOffset: e.Start, LastOffsetDelta: int32(last - e.Start),
			PartitionLeaderEpoch: e.Epoch, Magic: 2, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, MaxTimestamp: r.MaxTimestamp})
	}
	// A begin event marks the producer batch at its offset transactional;
	// one whose batch the entry no longer lists (a merged entry keeps each
	// producer's last ProducerWindow batches) stands alone, with no
	// sequence: the partition's producer state takes it, and the window
	// batches after it in the entry push it out.
	begins := map[[2]int64]bool{}
	for _, t := range r.Txns {
		if t.Kind == meta.TxnBegin {
			begins[[2]int64{t.ProducerID, t.Offset}] = true
		}
	}
	for _, p := range r.Producers {
		h := recbatch.Header{BaseOffset: p.BaseOffset, LastOffsetDelta: int32(p.LastOffset - p.BaseOffset),
			PartitionLeaderEpoch: epochAt(p.BaseOffset), Magic: 2, ProducerID: p.ProducerID, ProducerEpoch: p.Epoch,
			BaseSequence: p.FirstSeq}
		if k := [2]int64{p.ProducerID, p.BaseOffset}; begins[k] {
			h.Attributes |= attrTransactional
			delete(begins, k)
		}
		out = append(out, h)
	}
	for _, t := range r.Txns {
		h := recbatch.Header{BaseOffset: t.Offset, PartitionLeaderEpoch: epochAt(t.Offset), Magic: 2,
			ProducerID: t.ProducerID, ProducerEpoch: t.Epoch, BaseSequence: recbatch.NoSequence, MaxTimestamp: r.MaxTimestamp}
		switch {
		case t.Kind != meta.TxnBegin:
			h.Attributes, h.Marker, h.CoordinatorEpoch = attrTransactional|attrControl, t.Marker(), t.CoordinatorEpoch
		case begins[[2]int64{t.ProducerID, t.Offset}]:
			h.Attributes = attrTransactional
		default:
			continue // merged into its producer batch above
		}
		out = append(out, h)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].BaseOffset < out[j].BaseOffset })
	return out
}

// ApplyRetention implements storage.Log: manifest entries wholly older
// than retentionMs, or beyond retentionBytes counted from the newest, are
// deleted by a trim to the end of the last of them (their objects become
// unreferenced and are collected).
func (l *Log) ApplyRetention(retentionMs, retentionBytes int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.e.opts.RPCTimeout)
	defer cancel()
	var all []meta.Coords
	if err := l.eachRange(ctx, l.start.Load(), func(r meta.Coords) error { all = append(all, r); return nil }); err != nil {
		return err
	}
	cutoff := -1 // delete all[:cutoff+1]
	if retentionMs >= 0 {
		limit := time.Now().UnixMilli() - retentionMs
		for i, r := range all {
			if r.MaxTimestamp < limit {
				cutoff = i
			} else {
				break
			}
		}
	}
	if retentionBytes >= 0 {
		var total int64
		for _, r := range all {
			total += r.Length
		}
		for i := 0; i < len(all) && total > retentionBytes; i++ {
			if total-all[i].Length < retentionBytes {
				break
			}
			total -= all[i].Length
			cutoff = max(cutoff, i)
		}
	}
	if cutoff < 0 {
		return nil
	}
	return l.trim(all[cutoff].LastOffset + 1)
}

// Size implements storage.Log: the byte lengths of the partition's
// committed manifest entries (its ranges in object storage), from memory
// without an etcd or object-store call. The entry holding the log start
// counts whole, as a local segment does.
func (l *Log) Size() int64 {
	start := l.start.Load()
	l.sizeMu.Lock()
	defer l.sizeMu.Unlock()
	drop := 0
	for drop < len(l.entries) && l.entries[drop].last < start {
		l.bytes -= l.entries[drop].length
		drop++
	}
	if drop > 0 {
		l.entries = append(l.entries[:0:0], l.entries[drop:]...)
	}
	return l.bytes
}

// reloadSizes reads the partition's manifest entries again after a trim:
// merges may have replaced the entries this leader committed with larger
// ones, and an entry is removed whole, so only the manifest says what is
// stored now. Entries committed meanwhile (above what was read) are kept.
// On an error the old view stays (Size is an estimate until the next trim).
func (l *Log) reloadSizes(ctx context.Context) {
	var entries []sizeEntry
	var bytes int64
	if err := l.eachRange(ctx, 0, func(r meta.Coords) error {
		entries = append(entries, sizeEntry{r.LastOffset, r.Length})
		bytes += r.Length
		return nil
	}); err != nil {
		return
	}
	read := int64(-1)
	if len(entries) > 0 {
		read = entries[len(entries)-1].last
	}
	l.sizeMu.Lock()
	defer l.sizeMu.Unlock()
	for _, e := range l.entries {
		if e.last > read {
			entries = append(entries, e)
			bytes += e.length
		}
	}
	l.entries, l.bytes = entries, bytes
}

// committed records a manifest entry committed for this partition.
func (l *Log) committed(last, length int64) {
	l.sizeMu.Lock()
	l.entries = append(l.entries, sizeEntry{last, length})
	l.bytes += length
	l.sizeMu.Unlock()
}

// publish makes a partition's batches of a flush readable once their
// commit succeeded: it advances the committed end and keeps them in the
// ring of recent batches. The commit loop calls it, one commit at a time
// and each partition's batches in offset order, before their results are
// delivered, so a producer's ack implies that its batch is readable.
// Offset order matters to the ring, which takes a batch at or below its
// last one for a rewound log and drops the partition's batches: done by
// each batch's own goroutine as its result arrived, whose scheduling order
// is not the delivery order, a partition with several batches in a flush
// lost its recent batches, and its tail reads went to object storage.
func (l *Log) publish(items []buffer.Item) {
	for _, it := range items {
		l.raiseEnd(it.LastOffset + 1)
		l.e.ring.Put(l.stream, it.BaseOffset, it.LastOffset, it.Data)
	}
}

// Close implements storage.Log.
func (l *Log) Close() error {
	l.e.mu.Lock()
	if l.e.logs[l.stream] == l {
		delete(l.e.logs, l.stream)
	}
	l.e.mu.Unlock()
	return nil
}

// Remove implements storage.Log: the topic's manifests went with it in etcd.
func (l *Log) Remove() error {
	l.e.ring.Drop(l.stream)
	return l.Close()
}

// The attribute bits of synthesized headers (recbatch's own are private).
const (
	attrTransactional int16 = 0x10
	attrControl       int16 = 0x20
)
