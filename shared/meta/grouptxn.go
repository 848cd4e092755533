package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Offsets committed inside transactions (TxnOffsetCommit) and the
// transaction coordinator's decisions about them:
//
//	grouptxnoffsets/<escaped group>/<producer id>   GroupTxnOffsets: pending, invisible to OffsetFetch
//	grouptxnmarkers/<escaped group>/<producer id>   GroupTxnMarker: commit or abort of those offsets
//
// The group's coordinator writes the pending offsets (guarded by the
// group's shard key), the transaction's coordinator - usually another
// gateway - writes the marker when the transaction ends (guarded by the
// transactional id's shard key), and the group's coordinator, watching
// the markers, applies it: the pending offsets become committed offsets
// (commit) or are dropped (abort), and the pending and marker keys are
// deleted, in one transaction guarded by the group's shard key. etcd is
// the only channel between the two coordinators.
//
// Ordering: pending offsets are written only while no marker of the same
// (group, producer id) exists (the write compares the marker key absent),
// and a marker is written only if none exists. A marker that is still
// there when a later transaction of the producer ends therefore decides
// exactly the pending offsets of the earlier transaction, and the later
// transaction has no pending offsets in the group (any TxnOffsetCommit of
// it would have had to apply the earlier marker first), so the later
// marker is not needed.

// ErrGroupTxnMarkerPending means a marker of the same producer is waiting
// to be applied: apply it, then write the pending offsets again.
var ErrGroupTxnMarkerPending = errors.New("a transaction marker of the producer is not applied yet")

// GroupTxnOffset is one pending offset of a transaction.
type GroupTxnOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	GroupOffset
}

// GroupTxnOffsets is the pending offsets of one producer in one group.
type GroupTxnOffsets struct {
	TransactionalID string           `json:"transactional_id"`
	ProducerID      int64            `json:"producer_id"`
	ProducerEpoch   int16            `json:"producer_epoch"`
	Offsets         []GroupTxnOffset `json:"offsets"`
}

// Map returns the offsets by partition.
func (p *GroupTxnOffsets) Map() map[TopicPartition]GroupOffset {
	out := make(map[TopicPartition]GroupOffset, len(p.Offsets))
	for _, o := range p.Offsets {
		out[TopicPartition{o.Topic, o.Partition}] = o.GroupOffset
	}
	return out
}

// GroupTxnMarker is the end of a transaction as far as one group is
// concerned.
type GroupTxnMarker struct {
	TransactionalID string `json:"transactional_id"`
	ProducerID      int64  `json:"producer_id"`
	ProducerEpoch   int16  `json:"producer_epoch"`
	Commit          bool   `json:"commit"`
}

// StoredGroupTxnMarker is a marker as read, with its group and revision.
type StoredGroupTxnMarker struct {
	Group    string
	Marker   GroupTxnMarker
	Revision int64
}

func (k keys) groupTxnOffsetsPrefix() string { return k.prefix + "grouptxnoffsets/" }
func (k keys) groupTxnOffsetsOf(g string) string {
	return k.groupTxnOffsetsPrefix() + url.PathEscape(g) + "/"
}
func (k keys) groupTxnOffsets(g string, pid int64) string {
	return k.groupTxnOffsetsOf(g) + strconv.FormatInt(pid, 10)
}
func (k keys) groupTxnMarkersPrefix() string { return k.prefix + "grouptxnmarkers/" }
func (k keys) groupTxnMarkersOf(g string) string {
	return k.groupTxnMarkersPrefix() + url.PathEscape(g) + "/"
}
func (k keys) groupTxnMarker(g string, pid int64) string {
	return k.groupTxnMarkersOf(g) + strconv.FormatInt(pid, 10)
}

// GroupTxnMarkersPrefix is the key prefix of every group marker (for a
// watch).
func (s *Store) GroupTxnMarkersPrefix() string { return s.k.groupTxnMarkersPrefix() }

// GroupOfTxnMarkerKey returns the group a marker key belongs to.
func (s *Store) GroupOfTxnMarkerKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, s.k.groupTxnMarkersPrefix())
	if !ok {
		return "", false
	}
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		return "", false
	}
	g, err := url.PathUnescape(rest[:i])
	return g, err == nil
}

// LoadGroupTxnOffsets reads the pending transactional offsets of group by
// producer id. Undecodable values are skipped and reported with
// ErrCorruptGroupState.
func (s *Store) LoadGroupTxnOffsets(ctx context.Context, group string) (map[int64]*GroupTxnOffsets, error) {
	resp, err := s.cli.Get(ctx, s.k.groupTxnOffsetsOf(group), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := map[int64]*GroupTxnOffsets{}
	var corrupt []error
	for _, kv := range resp.Kvs {
		p := new(GroupTxnOffsets)
		if err := json.Unmarshal(kv.Value, p); err != nil {
			corrupt = append(corrupt, fmt.Errorf("pending offsets %s (%q): %v", kv.Key, truncate(kv.Value), err))
			continue
		}
		out[p.ProducerID] = p
	}
	if len(corrupt) > 0 {
		return out, fmt.Errorf("%w: %w", ErrCorruptGroupState, errors.Join(corrupt...))
	}
	return out, nil
}

// SaveGroupTxnOffsets stores the pending offsets of p's producer in group
// (replacing what was pending: callers merge) while g guards the group's
// shard and no marker of the producer waits to be applied
// (ErrGroupTxnMarkerPending).
func (s *Store) SaveGroupTxnOffsets(ctx context.Context, g ShardGuard, group string, p *GroupTxnOffsets) error {
	if g.CreateRevision == 0 {
		return ErrNotCoordinator
	}
	mk := s.k.groupTxnMarker(group, p.ProducerID)
	tx, err := s.cli.Txn(ctx).
		If(s.guardCmp(g), clientv3.Compare(clientv3.CreateRevision(mk), "=", 0)).
		Then(clientv3.OpPut(s.k.groupTxnOffsets(group, p.ProducerID), mustJSON(p))).
		Else(clientv3.OpGet(s.k.groupShard(g.Shard))).
		Commit()
	if err != nil {
		return err
	}
	if tx.Succeeded {
		return nil
	}
	if s.guardFailure(g, tx) == ErrNotCoordinator {
		return ErrNotCoordinator
	}
	return ErrGroupTxnMarkerPending
}

// WriteGroupTxnMarker records the end of m's transaction for group,
// guarded by g, the shard of the transactional id. A marker of the
// producer that is already there (not applied yet) is left as it is and
// wrote is false: it is this transaction's own (a retry) or an earlier
// one's, and then this transaction has no pending offsets in the group
// (see the ordering note above).
func (s *Store) WriteGroupTxnMarker(ctx context.Context, g ShardGuard, group string, m GroupTxnMarker) (wrote bool, err error) {
	if g.CreateRevision == 0 || GroupShard(m.TransactionalID) != g.Shard {
		return false, ErrNotCoordinator
	}
	key := s.k.groupTxnMarker(group, m.ProducerID)
	tx, err := s.cli.Txn(ctx).
		If(s.guardCmp(g), clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, mustJSON(m))).
		Else(clientv3.OpGet(s.k.groupShard(g.Shard))).
		Commit()
	if err != nil {
		return false, err
	}
	if tx.Succeeded {
		return true, nil
	}
	if s.guardFailure(g, tx) == ErrNotCoordinator {
		return false, ErrNotCoordinator
	}
	return false, nil
}

// ListGroupTxnMarkers reads every group marker, and the revision read at.
func (s *Store) ListGroupTxnMarkers(ctx context.Context) ([]StoredGroupTxnMarker, int64, error) {
	resp, err := s.cli.Get(ctx, s.k.groupTxnMarkersPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	out := make([]StoredGroupTxnMarker, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if st, ok := s.decodeGroupTxnMarker(kv.Key, kv.Value, kv.ModRevision); ok {
			out = append(out, st)
		}
	}
	return out, resp.Header.Revision, nil
}

// LoadGroupTxnMarkers reads the markers of one group.
func (s *Store) LoadGroupTxnMarkers(ctx context.Context, group string) ([]StoredGroupTxnMarker, error) {
	resp, err := s.cli.Get(ctx, s.k.groupTxnMarkersOf(group), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]StoredGroupTxnMarker, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if st, ok := s.decodeGroupTxnMarker(kv.Key, kv.Value, kv.ModRevision); ok {
			out = append(out, st)
		}
	}
	return out, nil
}

// decodeGroupTxnMarker decodes one marker key. A value that does not
// decode keeps the producer id of its key and reads as an abort: the
// pending offsets it would decide are dropped, never made visible.
func (s *Store) decodeGroupTxnMarker(key, value []byte, rev int64) (StoredGroupTxnMarker, bool) {
	g, ok := s.GroupOfTxnMarkerKey(string(key))
	if !ok {
		return StoredGroupTxnMarker{}, false
	}
	pid, err := strconv.ParseInt(string(key[strings.LastIndexByte(string(key), '/')+1:]), 10, 64)
	if err != nil {
		return StoredGroupTxnMarker{}, false
	}
	var m GroupTxnMarker
	if json.Unmarshal(value, &m) != nil {
		m = GroupTxnMarker{}
	}
	m.ProducerID = pid
	return StoredGroupTxnMarker{Group: g, Marker: m, Revision: rev}, true
}

// ApplyGroupTxnMarker applies mk to its group while g guards the group's
// shard: with commit, offsets (the producer's pending ones) become
// committed offsets (and gm, if not nil, is stored as the group's
// metadata); the pending key and the marker are deleted. The last (or
// only) transaction compares the marker's revision, so a marker is
// applied once. More than maxGroupOpsPerTxn offsets are written in
// several guarded transactions first (an interrupted apply repeats them
// with the same values).
func (s *Store) ApplyGroupTxnMarker(ctx context.Context, g ShardGuard, mk StoredGroupTxnMarker, gm *GroupMeta, offsets map[TopicPartition]GroupOffset) error {
	if g.CreateRevision == 0 {
		return ErrNotCoordinator
	}
	group, pid := mk.Group, mk.Marker.ProducerID
	var ops []clientv3.Op
	if gm != nil {
		ops = append(ops, clientv3.OpPut(s.k.groupMeta(group), mustJSON(gm)))
	}
	for tp, o := range offsets {
		ops = append(ops, clientv3.OpPut(s.k.groupOffset(group, tp.Topic, tp.Partition), mustJSON(o)))
	}
	for len(ops) > maxGroupOpsPerTxn-2 {
		n := min(len(ops), maxGroupOpsPerTxn)
		if err := s.guardedTxn(ctx, g, ops[:n]...); err != nil {
			return err
		}
		ops = ops[n:]
	}
	key := s.k.groupTxnMarker(group, pid)
	ops = append(ops, clientv3.OpDelete(s.k.groupTxnOffsets(group, pid)), clientv3.OpDelete(key))
	tx, err := s.cli.Txn(ctx).
		If(s.guardCmp(g), clientv3.Compare(clientv3.ModRevision(key), "=", mk.Revision)).
		Then(ops...).
		Else(clientv3.OpGet(s.k.groupShard(g.Shard))).
		Commit()
	if err != nil {
		return err
	}
	if tx.Succeeded {
		return nil
	}
	if s.guardFailure(g, tx) == ErrNotCoordinator {
		return ErrNotCoordinator
	}
	return ErrConflict // applied meanwhile
}
