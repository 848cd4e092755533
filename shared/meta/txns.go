package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Transaction coordinator state lives in etcd next to the groups':
//
//	txns/<escaped transactional id>            TxnMeta: Kafka's TransactionMetadata
//	txn-coordinator-epochs/<%03d shard>         id of the gateway that last took the shard; the key's etcd version is the coordinator epoch
//	grouptxnmarkers/<escaped group>/<producer id>  the end of a transaction for a group of it (grouptxn.go)
//
// A transactional id is coordinated by the gateway holding the group
// shard GroupShard(transactional id) (the same shard keys as groups: one
// ownership mechanism for both coordinators), and every write compares the
// shard key's create revision (a ShardGuard) as group writes do, so a
// gateway that lost the shard cannot write a transaction another gateway
// now coordinates. Each write also compares the transaction key's own
// ModRevision, so a write whose outcome was unknown (an etcd timeout) is
// never silently overtaken by a later one built on a stale read.

// TxnState is a transaction's state, named as Kafka names it
// (DescribeTransactions and ListTransactions show these names).
type TxnState string

// Kafka's TransactionState values (transaction version 1: no
// PrepareEpochFence is ever stored; a fence is written as PrepareAbort at
// the bumped epoch).
const (
	TxnEmpty          TxnState = "Empty"
	TxnOngoing        TxnState = "Ongoing"
	TxnPrepareCommit  TxnState = "PrepareCommit"
	TxnPrepareAbort   TxnState = "PrepareAbort"
	TxnCompleteCommit TxnState = "CompleteCommit"
	TxnCompleteAbort  TxnState = "CompleteAbort"
	TxnDead           TxnState = "Dead"
)

// TxnStates lists every state, in Kafka's order.
var TxnStates = []TxnState{TxnEmpty, TxnOngoing, TxnPrepareCommit, TxnPrepareAbort, TxnCompleteCommit, TxnCompleteAbort, TxnDead}

// NoProducerID and NoProducerEpoch are Kafka's "none" values
// (RecordBatch.NO_PRODUCER_ID, NO_PRODUCER_EPOCH).
const (
	NoProducerID    int64 = -1
	NoProducerEpoch int16 = -1
)

// TxnPartition is one partition of a transaction, with the id its topic
// had when the partition was added.
type TxnPartition struct {
	Topic     string  `json:"topic"`
	TopicID   TopicID `json:"topic_id,omitzero"`
	Partition int32   `json:"partition"`
}

// TxnMeta is a transactional id's coordinator state (Kafka's
// TransactionMetadata, as its transaction log stores it).
type TxnMeta struct {
	TransactionalID string `json:"transactional_id"`
	ProducerID      int64  `json:"producer_id"`
	ProducerEpoch   int16  `json:"producer_epoch"`
	// LastProducerID and LastProducerEpoch are the producer id and epoch
	// before the last rotation or bump (KIP-360): they let a producer that
	// retries an InitProducerId whose answer it lost be recognised instead
	// of fenced. NoProducerID / NoProducerEpoch when none.
	LastProducerID    int64          `json:"last_producer_id"`
	LastProducerEpoch int16          `json:"last_producer_epoch"`
	State             TxnState       `json:"state"`
	Partitions        []TxnPartition `json:"partitions,omitempty"`
	// Groups are the consumer groups whose offsets the transaction
	// commits (AddOffsetsToTxn): each gets a group marker when it ends.
	Groups    []string `json:"groups,omitempty"`
	TimeoutMs int32    `json:"timeout_ms"`
	// StartTimeMs is when the first partition joined the current (or
	// last) transaction; -1 before any.
	StartTimeMs      int64 `json:"start_time_ms"`
	LastUpdateTimeMs int64 `json:"last_update_time_ms"`
	// TxnVersion is the transaction version of the transaction being
	// ended (set with PrepareCommit/PrepareAbort): 2 when an EndTxn v5+
	// bumped the producer epoch to end it, which its markers tell the
	// partitions; 0 otherwise.
	TxnVersion int16 `json:"transaction_version,omitempty"`
}

// Clone is a deep copy of m.
func (m *TxnMeta) Clone() *TxnMeta {
	c := *m
	c.Partitions = append([]TxnPartition(nil), m.Partitions...)
	c.Groups = append([]string(nil), m.Groups...)
	return &c
}

// StoredTxn is one transaction key as read: Meta is nil when the value
// does not decode (see ErrCorruptTxnState); Revision is the key's
// ModRevision, the compare token of the next SaveTxn (0: no key).
type StoredTxn struct {
	TransactionalID string
	Meta            *TxnMeta
	Revision        int64
}

// ErrCorruptTxnState reports transaction values in etcd that do not decode
// (written by hand, or garbage). LoadTxn and ListTxns return it with
// everything that did decode; an undecodable transaction reads as no state
// (its next InitProducerId starts it over with a new producer id, which
// replaces the bad value).
var ErrCorruptTxnState = errors.New("undecodable transaction state in etcd")

func (k keys) txns() string         { return k.prefix + "txns/" }
func (k keys) txn(id string) string { return k.txns() + url.PathEscape(id) }
func (k keys) txnCoordinatorEpochs() string {
	return k.prefix + "txn-coordinator-epochs/"
}
func (k keys) txnCoordinatorEpoch(shard int) string {
	return fmt.Sprintf("%s%03d", k.txnCoordinatorEpochs(), shard)
}

// decodeTxn decodes one transaction value of key.
func (s *Store) decodeTxn(kv []byte, key string) (StoredTxn, error) {
	id, err := url.PathUnescape(strings.TrimPrefix(key, s.k.txns()))
	if err != nil {
		return StoredTxn{}, fmt.Errorf("transaction key %s: %v", key, err)
	}
	out := StoredTxn{TransactionalID: id}
	m := new(TxnMeta)
	if err := json.Unmarshal(kv, m); err != nil || m.TransactionalID != id {
		return out, fmt.Errorf("transaction %q (%q): %v", id, truncate(kv), err)
	}
	out.Meta = m
	return out, nil
}

// LoadTxn reads one transactional id's state: Meta nil and Revision 0 if
// it has none. An undecodable value is Meta nil with its Revision and
// ErrCorruptTxnState.
func (s *Store) LoadTxn(ctx context.Context, id string) (StoredTxn, error) {
	resp, err := s.cli.Get(ctx, s.k.txn(id))
	if err != nil {
		return StoredTxn{}, err
	}
	if len(resp.Kvs) == 0 {
		return StoredTxn{TransactionalID: id}, nil
	}
	kv := resp.Kvs[0]
	st, err := s.decodeTxn(kv.Value, string(kv.Key))
	st.TransactionalID, st.Revision = id, kv.ModRevision
	if err != nil {
		return st, fmt.Errorf("%w: %w", ErrCorruptTxnState, err)
	}
	return st, nil
}

// ListTxns reads the state of every transactional id whose shard is in
// shards (all if nil). Undecodable values are listed with a nil Meta and
// reported with ErrCorruptTxnState.
func (s *Store) ListTxns(ctx context.Context, shards map[int]bool) ([]StoredTxn, error) {
	resp, err := s.cli.Get(ctx, s.k.txns(), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]StoredTxn, 0, len(resp.Kvs))
	var corrupt []error
	for _, kv := range resp.Kvs {
		st, err := s.decodeTxn(kv.Value, string(kv.Key))
		if st.TransactionalID == "" && err != nil {
			corrupt = append(corrupt, err) // the key itself does not decode
			continue
		}
		if shards != nil && !shards[GroupShard(st.TransactionalID)] {
			continue
		}
		if err != nil {
			corrupt = append(corrupt, err)
		}
		st.Revision = kv.ModRevision
		out = append(out, st)
	}
	if len(corrupt) > 0 {
		return out, fmt.Errorf("%w: %w", ErrCorruptTxnState, errors.Join(corrupt...))
	}
	return out, nil
}

// SaveTxn stores m if g still guards the shard of m's transactional id and
// the key is still at prevRev (0: absent), and returns the new revision.
// ErrNotCoordinator if the guard failed, ErrConflict if only the revision
// did.
func (s *Store) SaveTxn(ctx context.Context, g ShardGuard, m *TxnMeta, prevRev int64) (int64, error) {
	key := s.k.txn(m.TransactionalID)
	return s.guardedTxnWrite(ctx, g, m.TransactionalID, prevRev, clientv3.OpPut(key, mustJSON(m)))
}

// DeleteTxn removes transactional id id's state if g still guards its
// shard and the key is still at prevRev: the coordinator's expiry of an id
// unused for transactional.id.expiration.ms. ErrNotCoordinator if the
// guard failed, ErrConflict if only the revision did (the id was used
// meanwhile).
func (s *Store) DeleteTxn(ctx context.Context, g ShardGuard, id string, prevRev int64) error {
	_, err := s.guardedTxnWrite(ctx, g, id, prevRev, clientv3.OpDelete(s.k.txn(id)))
	return err
}

// guardedTxnWrite applies op to id's key if g guards id's shard and the
// key is at prevRev, and returns the revision written.
func (s *Store) guardedTxnWrite(ctx context.Context, g ShardGuard, id string, prevRev int64, op clientv3.Op) (int64, error) {
	if g.CreateRevision == 0 || GroupShard(id) != g.Shard {
		return 0, ErrNotCoordinator
	}
	tx, err := s.cli.Txn(ctx).
		If(s.guardCmp(g), clientv3.Compare(clientv3.ModRevision(s.k.txn(id)), "=", prevRev)).
		Then(op).
		Else(clientv3.OpGet(s.k.groupShard(g.Shard))).
		Commit()
	if err != nil {
		return 0, err
	}
	if tx.Succeeded {
		return tx.Header.Revision, nil
	}
	return 0, s.guardFailure(g, tx)
}

// guardFailure tells which compare of a failed guarded transaction failed:
// tx's Else branch read the shard key.
func (s *Store) guardFailure(g ShardGuard, tx *clientv3.TxnResponse) error {
	kvs := tx.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 || kvs[0].CreateRevision != g.CreateRevision {
		return ErrNotCoordinator
	}
	return ErrConflict
}

// BumpTxnCoordinatorEpoch is called by a gateway that has just taken shard
// g as transaction coordinator: it rewrites the shard's
// txn-coordinator-epochs key (guarded by g) and returns the key's new etcd
// version, which counts the takeovers of the shard. That is the
// coordinator epoch the gateway writes into its transaction markers
// (Kafka's coordinator_epoch, the leader epoch of a __transaction_state
// partition): it grows with every takeover, so a partition leader can
// refuse a deposed coordinator's late marker. It stays far below
// math.MaxInt32 (one per takeover), unlike an etcd revision.
func (s *Store) BumpTxnCoordinatorEpoch(ctx context.Context, g ShardGuard, gatewayID string) (int32, error) {
	if g.CreateRevision == 0 {
		return 0, ErrNotCoordinator
	}
	key := s.k.txnCoordinatorEpoch(g.Shard)
	tx, err := s.cli.Txn(ctx).
		If(s.guardCmp(g)).
		Then(clientv3.OpPut(key, gatewayID), clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return 0, err
	}
	if !tx.Succeeded {
		return 0, ErrNotCoordinator
	}
	kvs := tx.Responses[1].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return 0, fmt.Errorf("meta: coordinator epoch key of shard %d vanished within its own transaction", g.Shard)
	}
	v := kvs[0].Version
	if v > math.MaxInt32 {
		v = math.MaxInt32
	}
	return int32(v), nil
}
