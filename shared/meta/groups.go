package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Consumer-group state lives in etcd, never on a gateway's disk:
//
//	groupshards/<%03d shard>                  owning gateway id, under that gateway's lease
//	groupmeta/<escaped group>                 GroupMeta: generation, protocol, members, assignments
//	groupoffsets/<escaped group>/<topic>/<%05d partition>  GroupOffset
//
// Groups are hashed onto GroupShards shards. A gateway coordinates the
// groups of a shard only while it holds the shard key under its lease, and
// every group write compares the key's create revision (a ShardGuard), so a
// gateway that lost the shard - a paused or partitioned process whose
// lease expired - cannot write a group another gateway now coordinates.
// Group names may hold any character, so they are path-escaped in keys.

// GroupShards is the number of coordinator shards. Fixed: changing it would
// move groups between shards while gateways of both layouts run.
const GroupShards = 64

// ErrNotCoordinator means the shard guard failed: another gateway owns the
// group's shard now (or nobody does).
var ErrNotCoordinator = errors.New("this gateway no longer coordinates the group's shard")

// GroupShard is the shard of a group.
func GroupShard(group string) int {
	h := fnv.New32a()
	h.Write([]byte(group))
	return int(h.Sum32() % GroupShards)
}

// ShardGuard proves ownership of a group shard: the shard key and the create
// revision of the claim. Zero means "no guard" and is refused by writes.
type ShardGuard struct {
	Shard          int
	CreateRevision int64
}

// GroupMeta is a group's coordination state as of its last persisted step
// (a completed join phase or a completed sync).
type GroupMeta struct {
	Group        string `json:"group"`
	ProtocolType string `json:"protocol_type,omitempty"`
	Protocol     string `json:"protocol,omitempty"`
	Leader       string `json:"leader,omitempty"`
	Generation   int32  `json:"generation"`
	// Stable is false while the members of Generation have joined but the
	// leader's assignment is not known yet.
	Stable  bool          `json:"stable"`
	Members []GroupMember `json:"members,omitempty"`
}

// GroupMember is one member of a classic group.
type GroupMember struct {
	ID                 string          `json:"id"`
	InstanceID         *string         `json:"instance_id,omitempty"`
	ClientID           string          `json:"client_id"`
	ClientHost         string          `json:"client_host"`
	SessionTimeoutMs   int32           `json:"session_timeout_ms"`
	RebalanceTimeoutMs int32           `json:"rebalance_timeout_ms"`
	Protocols          []GroupProtocol `json:"protocols"`
	Assignment         []byte          `json:"assignment,omitempty"`
}

// GroupProtocol is one protocol a member supports, with its metadata.
type GroupProtocol struct {
	Name     string `json:"name"`
	Metadata []byte `json:"metadata,omitempty"`
}

// GroupOffset is one committed offset.
type GroupOffset struct {
	Offset       int64   `json:"offset"`
	LeaderEpoch  int32   `json:"leader_epoch"`
	Metadata     *string `json:"metadata,omitempty"`
	CommitTimeMs int64   `json:"commit_time_ms"`
	// TopicID is the id of the topic committed to, and TopicRevision an
	// etcd revision at which the committing gateway saw it under that id.
	// Kafka deletes a topic's committed offsets with the topic; here they
	// stay in etcd, and a gateway whose cache is at TopicRevision or later
	// and shows the topic missing or under another id (deleted, maybe
	// re-created) treats the offset as not committed (see Stale). Zero in
	// offsets committed before these fields existed.
	TopicID       TopicID `json:"topic_id,omitzero"`
	TopicRevision int64   `json:"topic_rev,omitempty"`
}

// Stale reports whether o was committed to a topic that no longer exists
// under the same id, given a cache at revision rev showing the topic now
// as current (ok false: missing). rev must be read before current, so
// that current is at least as new as rev.
func (o GroupOffset) Stale(rev int64, current Topic, ok bool) bool {
	if o.TopicID.IsZero() || rev < o.TopicRevision {
		return false // committed before ids were kept, or the cache lags
	}
	return !ok || current.ID != o.TopicID
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (k keys) groupShards() string         { return k.prefix + "groupshards/" }
func (k keys) groupShard(shard int) string { return fmt.Sprintf("%s%03d", k.groupShards(), shard) }
func (k keys) groupMetas() string          { return k.prefix + "groupmeta/" }
func (k keys) groupMeta(g string) string   { return k.groupMetas() + url.PathEscape(g) }
func (k keys) groupOffsets(g string) string {
	return k.prefix + "groupoffsets/" + url.PathEscape(g) + "/"
}
func (k keys) groupOffset(g, topic string, p int32) string {
	return fmt.Sprintf("%s%s/%05d", k.groupOffsets(g), topic, p)
}

func (k keys) parseGroupShardKey(key string) (int, bool) {
	rest, ok := strings.CutPrefix(key, k.groupShards())
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n >= 0 && n < GroupShards
}

// ClaimGroupShard puts the shard key under lease if nobody holds it. ok is
// false if another gateway holds it.
func (s *Store) ClaimGroupShard(ctx context.Context, lease clientv3.LeaseID, shard int, gatewayID string) (ShardGuard, bool, error) {
	key := s.k.groupShard(shard)
	tx, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, gatewayID, clientv3.WithLease(lease))).
		Commit()
	if err != nil || !tx.Succeeded {
		return ShardGuard{}, false, err
	}
	return ShardGuard{Shard: shard, CreateRevision: tx.Header.Revision}, true, nil
}

// GroupShardOwners returns the id of the gateway holding each held shard.
func (s *Store) GroupShardOwners(ctx context.Context) (map[int]string, error) {
	resp, err := s.cli.Get(ctx, s.k.groupShards(), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make(map[int]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if shard, ok := s.k.parseGroupShardKey(string(kv.Key)); ok {
			out[shard] = string(kv.Value)
		}
	}
	return out, nil
}

// GroupShardOwner returns the id of the gateway holding shard, "" if none.
func (s *Store) GroupShardOwner(ctx context.Context, shard int) (string, error) {
	resp, err := s.cli.Get(ctx, s.k.groupShard(shard))
	if err != nil || len(resp.Kvs) == 0 {
		return "", err
	}
	return string(resp.Kvs[0].Value), nil
}

// ReleaseGroupShard deletes the shard key if g still guards it.
func (s *Store) ReleaseGroupShard(ctx context.Context, g ShardGuard) error {
	key := s.k.groupShard(g.Shard)
	_, err := s.cli.Txn(ctx).If(s.guardCmp(g)).Then(clientv3.OpDelete(key)).Commit()
	return err
}

func (s *Store) guardCmp(g ShardGuard) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(s.k.groupShard(g.Shard)), "=", g.CreateRevision)
}

// guardedTxn commits ops if g still holds its shard; ErrNotCoordinator if not.
func (s *Store) guardedTxn(ctx context.Context, g ShardGuard, ops ...clientv3.Op) error {
	if g.CreateRevision == 0 {
		return ErrNotCoordinator
	}
	tx, err := s.cli.Txn(ctx).If(s.guardCmp(g)).Then(ops...).Commit()
	if err != nil {
		return err
	}
	if !tx.Succeeded {
		return ErrNotCoordinator
	}
	return nil
}

// LoadGroup reads a group's metadata (nil if never persisted) and its
// committed offsets. Undecodable values are reported with
// ErrCorruptGroupState alongside what did decode (see there).
func (s *Store) LoadGroup(ctx context.Context, group string) (*GroupMeta, map[TopicPartition]GroupOffset, error) {
	tx, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.k.groupMeta(group)),
		clientv3.OpGet(s.k.groupOffsets(group), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, nil, err
	}
	var gm *GroupMeta
	var corrupt []error
	if kvs := tx.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		gm = new(GroupMeta)
		if err := json.Unmarshal(kvs[0].Value, gm); err != nil || gm.Group != group {
			corrupt = append(corrupt, fmt.Errorf("group %q metadata (%q): %v", group, truncate(kvs[0].Value), err))
			gm = &GroupMeta{Group: group} // known to exist, state unknown: empty
		}
	}
	offsets := map[TopicPartition]GroupOffset{}
	prefix := s.k.groupOffsets(group)
	for _, kv := range tx.Responses[1].GetResponseRange().Kvs {
		rest := strings.TrimPrefix(string(kv.Key), prefix)
		i := strings.LastIndexByte(rest, '/')
		if i <= 0 {
			continue
		}
		p, err := strconv.ParseInt(rest[i+1:], 10, 32)
		if err != nil {
			continue
		}
		var o GroupOffset
		if err := json.Unmarshal(kv.Value, &o); err != nil {
			corrupt = append(corrupt, fmt.Errorf("offset %s (%q): %v", kv.Key, truncate(kv.Value), err))
			continue
		}
		offsets[TopicPartition{rest[:i], int32(p)}] = o
	}
	if len(corrupt) > 0 {
		return gm, offsets, fmt.Errorf("%w: %w", ErrCorruptGroupState, errors.Join(corrupt...))
	}
	return gm, offsets, nil
}

// ErrCorruptGroupState reports group values in etcd that do not decode
// (written by hand, or garbage). LoadGroup and ListGroupMetas return it
// together with everything that did decode: an undecodable group metadata
// reads as an empty group, an undecodable offset as no commit, so one bad
// value never takes a group (or its shard's other groups) out of service;
// the next write of the group replaces the bad value.
var ErrCorruptGroupState = errors.New("undecodable group state in etcd")

// truncate bounds a bad value quoted in an error.
func truncate(b []byte) string {
	const limit = 64
	if len(b) > limit {
		return string(b[:limit]) + "..."
	}
	return string(b)
}

// SaveGroupMeta stores gm if g still guards the group's shard.
func (s *Store) SaveGroupMeta(ctx context.Context, g ShardGuard, gm *GroupMeta) error {
	return s.guardedTxn(ctx, g, clientv3.OpPut(s.k.groupMeta(gm.Group), mustJSON(gm)))
}

// maxGroupOpsPerTxn stays under etcd's default --max-txn-ops (128).
const maxGroupOpsPerTxn = 100

// CommitGroupOffsets stores offsets (and, if meta is not nil, the group
// metadata in the first transaction) while g guards the shard. More than
// maxGroupOpsPerTxn partitions are written in several transactions, each
// guarded: a commit is per partition in Kafka too.
func (s *Store) CommitGroupOffsets(ctx context.Context, g ShardGuard, group string, meta *GroupMeta, offsets map[TopicPartition]GroupOffset) error {
	ops := make([]clientv3.Op, 0, len(offsets)+1)
	if meta != nil {
		ops = append(ops, clientv3.OpPut(s.k.groupMeta(group), mustJSON(meta)))
	}
	for tp, o := range offsets {
		ops = append(ops, clientv3.OpPut(s.k.groupOffset(group, tp.Topic, tp.Partition), mustJSON(o)))
	}
	return s.guardedChunks(ctx, g, ops)
}

// DeleteGroupOffsets removes committed offsets of one group.
func (s *Store) DeleteGroupOffsets(ctx context.Context, g ShardGuard, group string, tps []TopicPartition) error {
	ops := make([]clientv3.Op, 0, len(tps))
	for _, tp := range tps {
		ops = append(ops, clientv3.OpDelete(s.k.groupOffset(group, tp.Topic, tp.Partition)))
	}
	return s.guardedChunks(ctx, g, ops)
}

func (s *Store) guardedChunks(ctx context.Context, g ShardGuard, ops []clientv3.Op) error {
	for len(ops) > 0 {
		n := min(len(ops), maxGroupOpsPerTxn)
		if err := s.guardedTxn(ctx, g, ops[:n]...); err != nil {
			return err
		}
		ops = ops[n:]
	}
	return nil
}

// DeleteGroup removes a group's metadata and all its offsets in one
// transaction.
func (s *Store) DeleteGroup(ctx context.Context, g ShardGuard, group string) error {
	return s.guardedTxn(ctx, g,
		clientv3.OpDelete(s.k.groupMeta(group)),
		clientv3.OpDelete(s.k.groupOffsets(group), clientv3.WithPrefix()))
}

// ListGroupMetas returns the persisted metadata of every group whose shard
// is in shards (all groups if shards is nil). Undecodable values are
// listed as empty groups and reported with ErrCorruptGroupState.
func (s *Store) ListGroupMetas(ctx context.Context, shards map[int]bool) ([]GroupMeta, error) {
	resp, err := s.cli.Get(ctx, s.k.groupMetas(), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]GroupMeta, 0, len(resp.Kvs))
	var corrupt []error
	for _, kv := range resp.Kvs {
		var gm GroupMeta
		if err := json.Unmarshal(kv.Value, &gm); err != nil || gm.Group == "" {
			name, uerr := url.PathUnescape(strings.TrimPrefix(string(kv.Key), s.k.groupMetas()))
			if uerr != nil {
				corrupt = append(corrupt, fmt.Errorf("group key %s: %v", kv.Key, uerr))
				continue
			}
			corrupt = append(corrupt, fmt.Errorf("group %q metadata (%q): %v", name, truncate(kv.Value), err))
			gm = GroupMeta{Group: name} // listed as an empty group
		}
		if shards == nil || shards[GroupShard(gm.Group)] {
			out = append(out, gm)
		}
	}
	if len(corrupt) > 0 {
		return out, fmt.Errorf("%w: %w", ErrCorruptGroupState, errors.Join(corrupt...))
	}
	return out, nil
}
