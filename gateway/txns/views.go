package txns

import (
	"context"
	"sort"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Description is one transactional id's state (DescribeTransactions).
type Description struct {
	ProducerID    int64
	ProducerEpoch int16
	State         meta.TxnState
	TimeoutMs     int32
	// StartTimeMs is when the current (or last) transaction started, -1
	// if none did.
	StartTimeMs int64
	Partitions  []meta.TopicPartition
}

// Describe answers one DescribeTransactions entry: NOT_COORDINATOR if
// another gateway coordinates id, TRANSACTIONAL_ID_NOT_FOUND if it has no
// state, INVALID_REQUEST for an empty id.
func (c *Coordinator) Describe(ctx context.Context, id string) (Description, *kerr.Error) {
	if id == "" {
		return Description{}, kerr.InvalidRequest
	}
	t, e := c.txn(ctx, id, false)
	if e != nil {
		return Description{}, e
	}
	if t == nil {
		return Description{}, kerr.TransactionalIDNotFound
	}
	if e := c.use(t); e != nil {
		return Description{}, e
	}
	defer t.mu.Unlock()
	m := t.m
	if m == nil || m.State == meta.TxnDead {
		return Description{}, kerr.TransactionalIDNotFound
	}
	d := Description{
		ProducerID: m.ProducerID, ProducerEpoch: m.ProducerEpoch, State: m.State,
		TimeoutMs: m.TimeoutMs, StartTimeMs: m.StartTimeMs,
	}
	for _, p := range m.Partitions {
		d.Partitions = append(d.Partitions, meta.TopicPartition{Topic: p.Topic, Partition: p.Partition})
	}
	return d, nil
}

// ListFilter selects transactions (ListTransactions): every filter that is
// set must match.
type ListFilter struct {
	// States are state names (meta.TxnState); names Kafka does not know
	// match nothing and are reported back.
	States []string
	// ProducerIDs are producer ids.
	ProducerIDs []int64
	// MinDurationMs (v1), when >= 0, keeps only transactions started more
	// than that long ago (as Kafka compares it, also against a start time
	// of -1, which every transaction that never started passes).
	MinDurationMs int64
}

// Listing is one ListTransactions entry.
type Listing struct {
	TransactionalID string
	ProducerID      int64
	State           meta.TxnState
}

// List answers ListTransactions for the transactional ids this gateway
// coordinates (a Kafka broker lists those of the __transaction_state
// partitions it leads; clients ask every broker), sorted by id, with the
// state filters that name no state. While a shard of this gateway is
// loading: COORDINATOR_LOAD_IN_PROGRESS, as Kafka.
func (c *Coordinator) List(f ListFilter) ([]Listing, []string, *kerr.Error) {
	states := map[meta.TxnState]bool{}
	var unknown []string
	for _, s := range f.States {
		if known(meta.TxnState(s)) {
			states[meta.TxnState(s)] = true
		} else {
			unknown = append(unknown, s)
		}
	}
	pids := map[int64]bool{}
	for _, id := range f.ProducerIDs {
		pids[id] = true
	}
	c.mu.Lock()
	var ts []*txn
	for _, sh := range c.shards {
		if sh.txns == nil {
			c.mu.Unlock()
			return nil, unknown, kerr.CoordinatorLoadInProgress
		}
		for _, t := range sh.txns {
			ts = append(ts, t)
		}
	}
	c.mu.Unlock()
	now := time.Now().UnixMilli()
	out := []Listing{}
	for _, t := range ts {
		t.mu.Lock()
		m, gone := t.m, t.dead || t.sh.ctx.Err() != nil
		t.mu.Unlock()
		switch {
		case gone, m == nil, m.State == meta.TxnDead,
			len(f.ProducerIDs) > 0 && !pids[m.ProducerID],
			len(f.States) > 0 && !states[m.State],
			f.MinDurationMs >= 0 && now-m.StartTimeMs <= f.MinDurationMs:
			continue
		}
		out = append(out, Listing{TransactionalID: t.id, ProducerID: m.ProducerID, State: m.State})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TransactionalID < out[j].TransactionalID })
	return out, unknown, nil
}

func known(s meta.TxnState) bool {
	for _, k := range meta.TxnStates {
		if k == s {
			return true
		}
	}
	return false
}
