package partition

import "sync"

// epochCache is a partition's leader-epoch history, the equivalent of
// Kafka's LeaderEpochFileCache (KIP-101): for each leader epoch that wrote
// records, the first offset written under it, in ascending epoch and
// offset order. It is not stored: Open rebuilds it from the
// partitionLeaderEpoch of the stored batch headers, and Submit extends it
// when the first batch of a newer epoch is appended.
//
// Batches stamped -1 (written before leader epochs were tracked) add no
// entry, and neither does an epoch older than the last one (a batch can
// only carry such an epoch if the log was written by a stale leader; the
// newer history wins, as in Kafka).
type epochCache struct {
	mu      sync.Mutex
	entries []epochEntry
}

type epochEntry struct {
	epoch int32
	start int64 // first offset written under epoch
}

// undefinedEpoch and undefinedOffset are Kafka's UNDEFINED_EPOCH and
// UNDEFINED_EPOCH_OFFSET: the requested epoch is unknown.
const (
	undefinedEpoch  int32 = -1
	undefinedOffset int64 = -1
)

// observe records a batch of epoch starting at base. Only an epoch newer
// than the last recorded one starts an entry.
func (c *epochCache) observe(epoch int32, base int64) {
	if epoch < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.entries); n > 0 && epoch <= c.entries[n-1].epoch {
		return
	}
	c.entries = append(c.entries, epochEntry{epoch: epoch, start: base})
}

// truncateStart drops the history below the log start, as Kafka's
// truncateFromStart does after retention: of the entries starting at or
// before logStart only the last survives, moved to logStart (its epoch
// still owns the first retained records). A cache rebuilt by Open from
// the retained batches gives the same list.
func (c *epochCache) truncateStart(logStart int64) {
	last := -1
	for i, e := range c.entries {
		if e.start > logStart {
			break
		}
		last = i
	}
	if last < 0 {
		return
	}
	c.entries = c.entries[last:]
	c.entries[0].start = logStart
}

// startOf returns the first offset written under epoch, or -1 if the
// history has no entry for it.
func (c *epochCache) startOf(epoch int32) (int32, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if e.epoch == epoch {
			return e.epoch, e.start
		}
	}
	return undefinedEpoch, undefinedOffset
}

// endOffsetFor is Kafka's LeaderEpochFileCache.endOffsetFor for a leader at
// epoch current whose log is [logStart, end): see EndOffsetForEpoch.
func (c *epochCache) endOffsetFor(requested, current int32, logStart, end int64) (int32, int64) {
	if requested < 0 {
		return undefinedEpoch, undefinedOffset
	}
	if requested == current {
		return current, end
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.truncateStart(logStart)
	entries := c.entries
	// The current epoch owns everything from its first batch on; before
	// its first write, from the end of the log (Kafka records the leader's
	// epoch at the log end offset when it becomes leader).
	if n := len(entries); current >= 0 && (n == 0 || entries[n-1].epoch < current) {
		entries = append(entries[:n:n], epochEntry{epoch: current, start: end})
	}
	// higher is the first entry of an epoch after requested.
	higher := len(entries)
	for i, e := range entries {
		if e.epoch > requested {
			higher = i
			break
		}
	}
	switch {
	case higher == len(entries):
		// Newer than any epoch this leader knows (including its own).
		return undefinedEpoch, undefinedOffset
	case higher == 0:
		// Older than the whole retained history: whatever requested
		// wrote ends where the history begins (Kafka answers the
		// requested epoch with the first known start offset, so a
		// consumer ahead of it sees the truncation).
		return requested, entries[0].start
	default:
		return entries[higher-1].epoch, entries[higher].start
	}
}

// EndOffsetForEpoch answers Kafka's OffsetForLeaderEpoch for this leader
// (KIP-101, KIP-320): the largest epoch at or below requested that wrote
// records, and the offset where that epoch's records end.
//
//   - requested == LeaderEpoch(): (LeaderEpoch(), durable log end), as
//     Kafka answers (its log end offset). Not the high watermark: a
//     leader that has just taken over (or reopened after losing etcd)
//     holds its high watermark back, down to the log start, until its
//     followers report, and a consumer told that its epoch ends there
//     would take the records it already read for lost and rewind
//     (franz-go resets to the answer with ErrDataLoss). A consumer never
//     read past a high watermark, and an ISR member's log end is at or
//     past every high watermark of the partition.
//   - an older epoch: the largest recorded epoch E <= requested and the
//     first offset of the next recorded epoch after requested (the current
//     epoch starts at its first batch, or at the log end while it has
//     written nothing).
//   - older than every retained epoch: (requested, start of the oldest
//     retained epoch), exactly as Kafka answers, so a consumer that read
//     past that offset detects the truncation. Retention moves the oldest
//     surviving entry to the log start.
//   - negative, or newer than LeaderEpoch(): (-1, -1), UNDEFINED.
func (p *Partition) EndOffsetForEpoch(requested int32) (epoch int32, endOffset int64) {
	return p.epochs.endOffsetFor(requested, p.cfg.LeaderEpoch, p.log.StartOffset(), p.leo.Load())
}
