package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Manifests are the coordinates of committed data in object storage for
// partitions whose log lives there (diskless, and later hybrid segments).
// The keys of one partition are
//
//	manifests/<topicID>/<%05d partition>/e            next offset (decimal): the committed log end
//	manifests/<topicID>/<%05d partition>/r/<%020d>    Coords of a range, keyed by its last offset
//	manifests/<topicID>/<%05d partition>/s            log start offset (decimal) set by DeleteRecords,
//	                                                  retention and commits across a gap (ExpectedEnd)
//
// Keying a range by its last offset means the range holding offset X is the
// first key at or after r/<X>: one range read with limit 1.
//
// Commits write e as the range's last offset + 1, never "0": a partition
// with nothing committed has no e key at all.

// ErrCommitFenced means the partition's leader epoch moved on since the
// committer's leader took over: the commit is refused (DESIGN invariant 2).
var ErrCommitFenced = errors.New("commit fenced: the partition record changed (a newer leader epoch, or an ISR change the committer has not seen)")

// ErrCommitOutOfOrder means the commit does not start at the partition's
// committed end: an earlier commit failed or is missing (invariant 3).
var ErrCommitOutOfOrder = errors.New("commit does not start at the committed log end")

// Coords locate one committed range of a partition's batches.
type Coords struct {
	Object       string `json:"object"`
	Position     int64  `json:"pos"`
	Length       int64  `json:"len"`
	BaseOffset   int64  `json:"base"`
	LastOffset   int64  `json:"last"`
	MaxTimestamp int64  `json:"max_ts"`
	LeaderEpoch  int32  `json:"epoch"`
	// Producers holds the idempotent-producer facts of the range's batches,
	// so a new leader rebuilds producer state from etcd alone. A merged
	// segment keeps only each producer's last ProducerWindow batches: all
	// the sequence checks of a new leader ever look at.
	Producers []ProducerBatch `json:"producers,omitempty"`
	// Segment is set on the entry of a merged segment object (package
	// segobject): where its index is, so a reader finds any offset's block
	// with one cached index read and one range GET. Position and Length
	// are then the object's batch data.
	Segment *SegmentRef `json:"seg,omitempty"`
	// Epochs lists the leader epochs that start inside the entry after
	// LeaderEpoch (the epoch of its first batch), in offset order: a merged
	// segment can span leader changes, and OffsetForLeaderEpoch needs them.
	Epochs []EpochStart `json:"epochs,omitempty"`
	// Txns are the transaction facts of the entry's batches, in offset
	// order (TxnRecorder builds them): where a producer's transaction
	// begins and its markers, so a new leader rebuilds open transactions
	// and the aborted list from etcd alone. Bounded by the markers, not by
	// the batches: one begin per producer per marker (and per entry).
	Txns []TxnEvent `json:"txns,omitempty"`
}

// SegmentRef locates a segment object's index (entries and CRC).
type SegmentRef struct {
	IndexPos int64 `json:"ipos"`
	IndexLen int64 `json:"ilen"`
}

// EpochStart is the first offset written under a leader epoch.
type EpochStart struct {
	Epoch int32 `json:"e"`
	Start int64 `json:"o"`
}

// ProducerWindow is how many of a producer's latest batches a merged
// entry keeps: Kafka's in-flight limit for idempotent producers
// (max.in.flight.requests.per.connection <= 5), which is all a leader's
// duplicate and sequence checks look at (logsvc/producerstate.Window).
const ProducerWindow = 5

// LastPerProducer keeps each producer's last n batches of batches (in
// offset order), in offset order: what a merged or uploaded segment's
// entry keeps (n = ProducerWindow). Callers that see batches one by one
// may call it on what they collected so far whenever it grows, and once
// more at the end: the result is the same, and memory stays bounded by
// the number of producers.
func LastPerProducer(batches []ProducerBatch, n int) []ProducerBatch {
	count := map[int64]int{}
	keep := make([]bool, len(batches))
	for i := len(batches) - 1; i >= 0; i-- {
		if count[batches[i].ProducerID] < n {
			count[batches[i].ProducerID]++
			keep[i] = true
		}
	}
	var out []ProducerBatch
	for i, b := range batches {
		if keep[i] {
			out = append(out, b)
		}
	}
	return out
}

// ProducerBatch is one idempotent batch's producer facts.
type ProducerBatch struct {
	ProducerID int64 `json:"pid"`
	Epoch      int16 `json:"pepoch"`
	FirstSeq   int32 `json:"first_seq"`
	LastSeq    int32 `json:"last_seq"`
	BaseOffset int64 `json:"base"`
	LastOffset int64 `json:"last"`
}

// PartitionCommit is one partition's part of a commit.
type PartitionCommit struct {
	Topic     string
	TopicID   TopicID
	Partition int32
	// LeaderRevision is the etcd ModRevision of the partition record at
	// which the committing leader took over: any leadership change since
	// (an epoch bump) changes it, and the commit is fenced.
	LeaderRevision int64
	// Ranges to commit, contiguous and in offset order; the first must
	// start at the partition's committed end, unless ExpectedEnd is set.
	Ranges []Coords
	// ExpectedEnd, when set, lets the first range start above the
	// committed end: the offsets in between are below the log start
	// (hybrid topics whose log start moved past the tier's end, or whose
	// tier starts at a non-zero offset). The commit is then refused with
	// ErrCommitOutOfOrder unless the committed end is exactly
	// *ExpectedEnd when it is applied (0: no end key, nothing ever
	// committed; commits never store an end of 0) or if the first range
	// starts below it. A first range starting above *ExpectedEnd also
	// raises the log start (key s) to its base offset and deletes the
	// entries wholly below it, as AdvanceLogStart does, in the same
	// transaction; a stored log start already at or above the base offset
	// is left as it is (the log start then falls inside or above the
	// range, as after DeleteRecords). Nil: the first range must start at
	// the committed end.
	ExpectedEnd *int64
}

// logStartRead is a partition's log start key as read before a commit
// across a gap: the commit's transaction compares it is unchanged when it
// raises it.
type logStartRead struct {
	value  int64 // 0 when the key is absent
	modRev int64 // 0 when the key is absent
}

// gap reports whether c's first range starts above its expected end.
func (c PartitionCommit) gap() bool {
	return c.ExpectedEnd != nil && len(c.Ranges) > 0 && c.Ranges[0].BaseOffset > *c.ExpectedEnd
}

// errLogStartMoved means a commit across a gap failed only because the log
// start changed after it was read (a trim ran meanwhile): Commit retries.
var errLogStartMoved = errors.New("meta: log start changed during the commit")

// topicManifests is every manifest key of one topic; manifests one
// partition's.
func (k keys) topicManifests(id TopicID) string { return k.allManifests() + id.String() + "/" }
func (k keys) manifests(id TopicID, p int32) string {
	return fmt.Sprintf("%s%05d/", k.topicManifests(id), p)
}
func (k keys) manifestEnd(id TopicID, p int32) string   { return k.manifests(id, p) + "e" }
func (k keys) manifestStart(id TopicID, p int32) string { return k.manifests(id, p) + "s" }
func (k keys) manifestRanges(id TopicID, p int32) string {
	return k.manifests(id, p) + "r/"
}
func (k keys) manifestRange(id TopicID, p int32, last int64) string {
	return fmt.Sprintf("%s%020d", k.manifestRanges(id, p), last)
}

// commitOps are the compares and puts of one partition's commit; ls is the
// log start read before it, used only when c.gap().
func (s *Store) commitOps(c PartitionCommit, ls logStartRead) ([]clientv3.Cmp, []clientv3.Op, error) {
	if len(c.Ranges) == 0 {
		return nil, nil, errors.New("meta: empty commit")
	}
	for i := 1; i < len(c.Ranges); i++ {
		if c.Ranges[i].BaseOffset != c.Ranges[i-1].LastOffset+1 {
			return nil, nil, fmt.Errorf("meta: commit ranges of %s-%d are not contiguous", c.Topic, c.Partition)
		}
	}
	endKey := s.k.manifestEnd(c.TopicID, c.Partition)
	start := c.Ranges[0].BaseOffset
	expected := start
	if c.ExpectedEnd != nil {
		expected = *c.ExpectedEnd
		switch {
		case expected < 0:
			return nil, nil, fmt.Errorf("meta: commit of %s-%d expects a negative committed end %d", c.Topic, c.Partition, expected)
		case start < expected:
			return nil, nil, fmt.Errorf("%w: %s-%d commit starts at %d, below the expected committed end %d", ErrCommitOutOfOrder, c.Topic, c.Partition, start, expected)
		}
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.k.partition(c.Topic, c.Partition)), "=", c.LeaderRevision)}
	if expected == 0 {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(endKey), "=", 0))
	} else {
		cmps = append(cmps, clientv3.Compare(clientv3.Value(endKey), "=", strconv.FormatInt(expected, 10)))
	}
	var ops []clientv3.Op
	if c.gap() && ls.value < start {
		// Raise the log start over the gap, as AdvanceLogStart would, if
		// nothing moved it since it was read.
		startKey := s.k.manifestStart(c.TopicID, c.Partition)
		if ls.modRev == 0 {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(startKey), "=", 0))
		} else {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(startKey), "=", ls.modRev))
		}
		ops = append(ops,
			clientv3.OpPut(startKey, strconv.FormatInt(start, 10)),
			clientv3.OpDelete(s.k.manifestRange(c.TopicID, c.Partition, 0), clientv3.WithRange(s.k.manifestRange(c.TopicID, c.Partition, start))))
	}
	for _, r := range c.Ranges {
		ops = append(ops, clientv3.OpPut(s.k.manifestRange(c.TopicID, c.Partition, r.LastOffset), mustJSON(r)))
	}
	ops = append(ops, clientv3.OpPut(endKey, strconv.FormatInt(c.Ranges[len(c.Ranges)-1].LastOffset+1, 10)))
	return cmps, ops, nil
}

// maxCommitOps keeps a grouped commit under etcd's default limit of 128
// operations per transaction.
const maxCommitOps = 120

// Commit applies partition commits atomically per partition: each
// partition's ranges are all committed or none. Partitions are grouped
// into as few transactions as etcd's operation limit allows; when a group
// fails, its partitions are retried one by one to tell which one is fenced
// or out of order. The result has one error (nil = committed) per commit,
// in order.
//
// A commit across a gap (PartitionCommit.ExpectedEnd) reads the log start
// first; if a trim moves it before the transaction, that commit is
// retried (up to a few times, then ErrConflict).
func (s *Store) Commit(ctx context.Context, commits []PartitionCommit) []error {
	errs := s.commitOnce(ctx, commits)
	for i, err := range errs {
		for attempt := 1; errors.Is(err, errLogStartMoved) && attempt < maxUpdateAttempts; attempt++ {
			err = s.commitOnce(ctx, commits[i:i+1])[0]
		}
		if errors.Is(err, errLogStartMoved) {
			err = fmt.Errorf("%w: log start of %s-%d kept changing", ErrConflict, commits[i].Topic, commits[i].Partition)
		}
		errs[i] = err
	}
	return errs
}

// commitOnce is one try of Commit; a commit across a gap may fail with
// errLogStartMoved.
func (s *Store) commitOnce(ctx context.Context, commits []PartitionCommit) []error {
	errs := make([]error, len(commits))
	type prepared struct {
		i    int
		cmps []clientv3.Cmp
		ops  []clientv3.Op
	}
	var group []prepared
	nops := 0
	flush := func() {
		if len(group) == 0 {
			return
		}
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		for _, g := range group {
			cmps, ops = append(cmps, g.cmps...), append(ops, g.ops...)
		}
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		switch {
		case err != nil:
			for _, g := range group {
				errs[g.i] = err
			}
		case !resp.Succeeded && len(group) == 1:
			errs[group[0].i] = s.whyRefused(ctx, commits[group[0].i])
		case !resp.Succeeded:
			for _, g := range group { // find the culprit(s)
				errs[g.i] = s.commitOnce(ctx, []PartitionCommit{commits[g.i]})[0]
			}
		}
		group, nops = nil, 0
	}
	for i, c := range commits {
		var ls logStartRead
		if c.gap() {
			var err error
			if ls, err = s.readLogStart(ctx, c.TopicID, c.Partition); err != nil {
				errs[i] = err
				continue
			}
		}
		cmps, ops, err := s.commitOps(c, ls)
		if err != nil {
			errs[i] = err
			continue
		}
		if n := len(cmps) + len(ops); nops+n > maxCommitOps {
			flush()
		}
		group = append(group, prepared{i, cmps, ops})
		nops += len(cmps) + len(ops)
	}
	flush()
	return errs
}

// readLogStart reads a partition's log start key.
func (s *Store) readLogStart(ctx context.Context, id TopicID, p int32) (logStartRead, error) {
	resp, err := s.cli.Get(ctx, s.k.manifestStart(id, p))
	if err != nil || len(resp.Kvs) == 0 {
		return logStartRead{}, err
	}
	v, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
	if err != nil {
		return logStartRead{}, fmt.Errorf("meta: corrupt log start of %s-%d: %w", id, p, err)
	}
	return logStartRead{value: v, modRev: resp.Kvs[0].ModRevision}, nil
}

// whyRefused tells a fenced commit from an out-of-order one (and, for a
// commit across a gap, from one whose log start compare failed:
// errLogStartMoved).
func (s *Store) whyRefused(ctx context.Context, c PartitionCommit) error {
	resp, err := s.cli.Get(ctx, s.k.partition(c.Topic, c.Partition))
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].ModRevision != c.LeaderRevision {
		return fmt.Errorf("%w: %s-%d", ErrCommitFenced, c.Topic, c.Partition)
	}
	end, _, err := s.CommittedEnd(ctx, c.TopicID, c.Partition)
	if err != nil {
		return err
	}
	if c.ExpectedEnd != nil {
		if end == *c.ExpectedEnd && c.gap() {
			return errLogStartMoved
		}
		return fmt.Errorf("%w: %s-%d commit starts at %d and expects the committed end %d, committed end is %d",
			ErrCommitOutOfOrder, c.Topic, c.Partition, c.Ranges[0].BaseOffset, *c.ExpectedEnd, end)
	}
	return fmt.Errorf("%w: %s-%d commit starts at %d, committed end is %d", ErrCommitOutOfOrder, c.Topic, c.Partition, c.Ranges[0].BaseOffset, end)
}

// CommittedEnd returns a partition's committed log end (0 when nothing was
// ever committed) and the etcd revision it was read at.
func (s *Store) CommittedEnd(ctx context.Context, id TopicID, p int32) (int64, int64, error) {
	resp, err := s.cli.Get(ctx, s.k.manifestEnd(id, p))
	if err != nil {
		return 0, 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, resp.Header.Revision, nil
	}
	end, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("meta: corrupt committed end of %s-%d: %w", id, p, err)
	}
	return end, resp.Header.Revision, nil
}

// RangesFrom returns up to limit committed ranges of a partition, starting
// with the one that contains offset.
func (s *Store) RangesFrom(ctx context.Context, id TopicID, p int32, offset int64, limit int64) ([]Coords, error) {
	resp, err := s.cli.Get(ctx, s.k.manifestRange(id, p, max(offset, 0)),
		clientv3.WithRange(clientv3.GetPrefixRangeEnd(s.k.manifestRanges(id, p))), clientv3.WithLimit(limit))
	if err != nil {
		return nil, err
	}
	out := make([]Coords, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var c Coords
		if err := json.Unmarshal(kv.Value, &c); err != nil {
			return nil, fmt.Errorf("meta: corrupt manifest %s: %w", kv.Key, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// LogStart returns a partition's log start offset as set by
// AdvanceLogStart, or 0 when none was set. The effective log start is the
// larger of it and the first remaining range's base offset.
func (s *Store) LogStart(ctx context.Context, id TopicID, p int32) (int64, error) {
	resp, err := s.cli.Get(ctx, s.k.manifestStart(id, p))
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	start, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("meta: corrupt log start of %s-%d: %w", id, p, err)
	}
	return start, nil
}

// AdvanceLogStart raises a partition's stored log start offset to start
// (Kafka DeleteRecords, retention) and deletes the manifest entries wholly below it,
// in one transaction that also compares the partition's leader revision
// (as commits do: a deposed leader gets ErrCommitFenced). A stored start
// at or above start is left as it is. It returns the stored start after
// the call. The caller checks start against the committed end.
func (s *Store) AdvanceLogStart(ctx context.Context, topic string, id TopicID, p int32, leaderRevision, start int64) (int64, error) {
	key := s.k.manifestStart(id, p)
	for attempt := 0; attempt < maxUpdateAttempts; attempt++ {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return 0, err
		}
		cur := int64(0)
		cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		if len(resp.Kvs) > 0 {
			if cur, err = strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64); err != nil {
				return 0, fmt.Errorf("meta: corrupt log start of %s-%d: %w", topic, p, err)
			}
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)
		}
		if cur >= start {
			return cur, nil
		}
		tx, err := s.cli.Txn(ctx).
			If(cmp, clientv3.Compare(clientv3.ModRevision(s.k.partition(topic, p)), "=", leaderRevision)).
			Then(
				clientv3.OpPut(key, strconv.FormatInt(start, 10)),
				clientv3.OpDelete(s.k.manifestRange(id, p, 0), clientv3.WithRange(s.k.manifestRange(id, p, start))),
			).Commit()
		if err != nil {
			return 0, err
		}
		if tx.Succeeded {
			return start, nil
		}
		pr, err := s.cli.Get(ctx, s.k.partition(topic, p))
		if err != nil {
			return 0, err
		}
		if len(pr.Kvs) == 0 || pr.Kvs[0].ModRevision != leaderRevision {
			return 0, fmt.Errorf("%w: %s-%d", ErrCommitFenced, topic, p)
		}
	}
	return 0, fmt.Errorf("%w: log start of %s-%d kept changing", ErrConflict, topic, p)
}
