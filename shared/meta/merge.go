package meta

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Merging (the uploader fleet's merger, package uploader/merge) replaces
// runs of a partition's manifest entries with one entry for a segment
// object holding the same batches. The swap is one transaction whose
// compares make it win cleanly or change nothing, whatever ran meanwhile:
//
//   - the first and the last replaced key still exist at the revisions
//     the merger read them at: retention and DeleteRecords delete entries
//     from the bottom, so a source they removed fails the first compare;
//     another merge covering the last source deleted or rewrote it;
//   - no key between them was written since the merger read them: another
//     merge's result inside the run shows up as a newer revision.
//
// Those three compares cover every way a key in the run can change (keys
// are only deleted from the bottom or by a merge, which writes its own
// key in or after the run), so a successful swap replaced exactly the
// entries the merger read: never a gap, an overlap or a lost range. A
// commit never conflicts: it only writes above the committed end, and a
// merge only below it. Leader changes do not matter: a swap changes where
// committed bytes are, not which bytes are committed.

// ErrSwapConflict means the entries a merge read changed before its swap
// (retention, DeleteRecords, another merge, a deleted topic); nothing was
// written. The merge is dropped; its object becomes garbage.
var ErrSwapConflict = errors.New("manifest entries changed since they were read")

// RangeEntry is one committed manifest entry with the etcd revision it
// was last written at.
type RangeEntry struct {
	Coords
	ModRevision int64
}

// PartitionManifest is one partition's manifest as read in one snapshot.
type PartitionManifest struct {
	TopicID   TopicID
	Partition int32
	// Entries in offset order.
	Entries []RangeEntry
	// End is the committed end (-1 when the key is missing or corrupt).
	End int64
	// Bytes is the size of the manifest's keys and values in etcd.
	Bytes int64
}

// ScanManifests reads every partition's manifest at one etcd revision
// (paged, like ReferencedObjects) and calls fn once per partition, in key
// order. A range entry that does not decode is an error.
func (s *Store) ScanManifests(ctx context.Context, fn func(PartitionManifest) error) error {
	prefix := s.k.allManifests()
	end := clientv3.GetPrefixRangeEnd(prefix)
	from, rev := prefix, int64(0)
	var cur *PartitionManifest
	flush := func() error {
		if cur == nil {
			return nil
		}
		m := *cur
		cur = nil
		return fn(m)
	}
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(gcScanPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, from, opts...)
		if err != nil {
			return fmt.Errorf("meta: scan manifests: %w", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			id, p, rest, ok := parseManifestKey(string(kv.Key[len(prefix):]))
			if !ok {
				continue
			}
			if cur == nil || cur.TopicID != id || cur.Partition != p {
				if err := flush(); err != nil {
					return err
				}
				cur = &PartitionManifest{TopicID: id, Partition: p, End: -1}
			}
			cur.Bytes += int64(len(kv.Key) + len(kv.Value))
			switch {
			case rest == "e":
				if end, err := strconv.ParseInt(string(kv.Value), 10, 64); err == nil {
					cur.End = end // a corrupt end stays -1: the partition's opening reports it
				}
			case strings.HasPrefix(rest, "r/"):
				var c Coords
				if err := json.Unmarshal(kv.Value, &c); err != nil {
					return fmt.Errorf("meta: corrupt manifest %s: %w", kv.Key, err)
				}
				cur.Entries = append(cur.Entries, RangeEntry{Coords: c, ModRevision: kv.ModRevision})
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return flush()
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// parseManifestKey splits "<topicID hex>/<%05d partition>/<rest>".
func parseManifestKey(k string) (TopicID, int32, string, bool) {
	var id TopicID
	parts := strings.SplitN(k, "/", 3)
	if len(parts) != 3 {
		return id, 0, "", false
	}
	if raw, err := hex.DecodeString(parts[0]); err != nil || len(raw) != len(id) {
		return id, 0, "", false
	} else {
		copy(id[:], raw)
	}
	p, err := strconv.ParseInt(parts[1], 10, 32)
	if err != nil {
		return id, 0, "", false
	}
	return id, int32(p), parts[2], true
}

// Swap replaces Sources - consecutive entries of one partition as
// ScanManifests read them - with Merged, which must cover exactly their
// offsets.
type Swap struct {
	TopicID   TopicID
	Partition int32
	Sources   []RangeEntry
	Merged    Coords
}

// SwapRanges applies one swap (see the compares above). It returns
// ErrSwapConflict when any source changed since it was read.
func (s *Store) SwapRanges(ctx context.Context, id TopicID, p int32, sources []RangeEntry, merged Coords) error {
	return s.Swap(ctx, []Swap{{TopicID: id, Partition: p, Sources: sources, Merged: merged}})[0]
}

// Swap applies swaps, each all-or-nothing, grouped into as few
// transactions as etcd's operation limit allows (a merge pass swaps many
// partitions at once: one etcd write, one fsync, instead of one each).
// When a group fails, its swaps are retried one by one to tell which lost
// a race. The result has one error per swap, in order.
func (s *Store) Swap(ctx context.Context, swaps []Swap) []error {
	errs := make([]error, len(swaps))
	var group []int
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	flush := func() {
		if len(group) == 0 {
			return
		}
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		switch {
		case err != nil:
			for _, i := range group {
				errs[i] = err
			}
		case !resp.Succeeded && len(group) == 1:
			w := swaps[group[0]]
			errs[group[0]] = fmt.Errorf("%w: %s-%d %d..%d", ErrSwapConflict, w.TopicID, w.Partition, w.Merged.BaseOffset, w.Merged.LastOffset)
		case !resp.Succeeded:
			for _, i := range group {
				errs[i] = s.Swap(ctx, swaps[i:i+1])[0]
			}
		}
		group, cmps, ops = nil, nil, nil
	}
	for i, w := range swaps {
		c, o, err := s.swapOps(w)
		if err != nil {
			errs[i] = err
			continue
		}
		if len(cmps)+len(ops)+len(c)+len(o) > maxCommitOps {
			flush()
		}
		group, cmps, ops = append(group, i), append(cmps, c...), append(ops, o...)
	}
	flush()
	return errs
}

// swapOps are one swap's compares and operations.
func (s *Store) swapOps(w Swap) ([]clientv3.Cmp, []clientv3.Op, error) {
	id, p, sources, merged := w.TopicID, w.Partition, w.Sources, w.Merged
	if len(sources) == 0 {
		return nil, nil, errors.New("meta: swap of no entries")
	}
	for i := 1; i < len(sources); i++ {
		if sources[i].BaseOffset != sources[i-1].LastOffset+1 {
			return nil, nil, fmt.Errorf("meta: swap sources of %s-%d are not contiguous at %d", id, p, sources[i].BaseOffset)
		}
	}
	first, last := sources[0], sources[len(sources)-1]
	if merged.BaseOffset != first.BaseOffset || merged.LastOffset != last.LastOffset {
		return nil, nil, fmt.Errorf("meta: merged entry %d..%d does not cover its sources %d..%d", merged.BaseOffset, merged.LastOffset, first.BaseOffset, last.LastOffset)
	}
	firstKey, lastKey := s.k.manifestRange(id, p, first.LastOffset), s.k.manifestRange(id, p, last.LastOffset)
	newest := int64(0)
	for _, e := range sources {
		newest = max(newest, e.ModRevision)
	}
	return []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(firstKey), "=", first.ModRevision),
			clientv3.Compare(clientv3.ModRevision(lastKey), "=", last.ModRevision),
			clientv3.Compare(clientv3.ModRevision(firstKey), "<", newest+1).WithRange(lastKey + "\x00"),
		}, []clientv3.Op{
			clientv3.OpDelete(firstKey, clientv3.WithRange(lastKey)),
			clientv3.OpPut(lastKey, mustJSON(merged)),
		}, nil
}

// TopicNames maps the ids of existing topics to their names.
func (s *Store) TopicNames(ctx context.Context) (map[TopicID]string, error) {
	topics, err := s.TopicsByID(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[TopicID]string, len(topics))
	for id, t := range topics {
		out[id] = t.Name
	}
	return out, nil
}

// TopicsByID reads every topic record, keyed by topic id.
func (s *Store) TopicsByID(ctx context.Context) (map[TopicID]Topic, error) {
	resp, err := s.cli.Get(ctx, s.k.topics(), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make(map[TopicID]Topic, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var t Topic
		if json.Unmarshal(kv.Value, &t) == nil {
			out[t.ID] = t
		}
	}
	return out, nil
}
