package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/metadata"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Cache is an in-memory copy of the metadata, loaded once and kept current
// by an etcd watch. Gateways answer Metadata from it and log-service nodes
// learn their partition assignments from it. Reads never touch etcd.
type Cache struct {
	store *Store
	log   *slog.Logger

	mu         sync.RWMutex
	rev        int64
	topics     map[string]Topic
	byID       map[TopicID]string
	partitions map[string]map[int32]Partition
	logNodes   map[string]LogNode
	gateways   map[string]Gateway
	uploaders  map[string]Uploader
	shards     map[int]string   // group shard -> coordinating gateway id
	brokerIDs  map[string]int32 // log-service node -> broker id (brokerids.go)
	changed    chan struct{}    // closed and replaced on every applied change

	cancel context.CancelFunc
	done   chan struct{}
}

// NewCache returns a cache over store's keys. Call Start before reading.
func NewCache(store *Store, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.Default()
	}
	return &Cache{store: store, log: log, changed: make(chan struct{})}
}

// Start loads the current metadata and keeps watching until Close.
func (c *Cache) Start(ctx context.Context) error {
	if err := c.load(ctx); err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.done = make(chan struct{})
	go c.watchLoop(wctx)
	return nil
}

// Close stops the watch. It is safe to call more than once.
func (c *Cache) Close() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
}

// cachedPrefixes are the key spaces the cache holds (applyPut's cases).
// load reads only these: the rest of the metadata (manifests above all: a
// diskless partition has a key per flush until merged, hundreds of
// thousands on a busy cluster; group offsets) is not cached, and reading
// it all on every start and re-list cost time and memory for nothing.
func (c *Cache) cachedPrefixes() []string {
	k := c.store.k
	return []string{k.topics(), k.partitions(), k.prefix + "nodes/", k.brokerIDs(), k.groupShards()}
}

func (c *Cache) load(ctx context.Context) error {
	// One snapshot: every prefix is read at the revision of the first.
	var kvs []*mvccpb.KeyValue
	rev := int64(0)
	for _, prefix := range c.cachedPrefixes() {
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := c.store.cli.Get(ctx, prefix, opts...)
		if err != nil {
			return err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		kvs = append(kvs, resp.Kvs...)
	}
	c.mu.Lock()
	c.topics = map[string]Topic{}
	c.byID = map[TopicID]string{}
	c.partitions = map[string]map[int32]Partition{}
	c.logNodes = map[string]LogNode{}
	c.gateways = map[string]Gateway{}
	c.uploaders = map[string]Uploader{}
	c.shards = map[int]string{}
	c.brokerIDs = map[string]int32{}
	for _, kv := range kvs {
		c.applyPut(string(kv.Key), kv.Value, kv.ModRevision)
	}
	c.rev = rev
	c.notifyLocked()
	c.mu.Unlock()
	return nil
}

// watchStallTimeout is how long a watch may stay silent, despite progress
// requests, before it is re-created. etcd answers a progress request only
// once every watch of the stream has caught up, so a watch stuck catching
// up (seen with watches created while the cluster writes many keys at
// once, at start) shows as silence; a new watch from the same revision
// recovers it.
const watchStallTimeout = 3 * time.Second

func (c *Cache) watchLoop(ctx context.Context) {
	defer close(c.done)
	var stalls int
	for gen := 0; ctx.Err() == nil; gen++ {
		if stalls > 1 {
			// Silent twice in a row: read everything again, in case the
			// watch lost events rather than only progress notifications.
			c.log.Warn("metadata watch silent after being re-created; reloading the metadata", "stalls", stalls)
			c.reloadWithRetry(ctx)
		}
		c.mu.RLock()
		from := c.rev + 1
		c.mu.RUnlock()
		// etcd's client multiplexes the watches whose contexts carry the
		// same metadata onto one gRPC stream, and the server answers a
		// progress request only once every watch of the stream has caught
		// up: each generation gets a stream of its own, so a stream that
		// wedged (or a neighbour that never catches up) is left behind.
		sctx := metadata.AppendToOutgoingContext(clientv3.WithRequireLeader(ctx), "streamline-metadata-watch", strconv.Itoa(gen))
		wctx, cancel := context.WithCancel(sctx)
		wch := c.store.cli.Watch(wctx, c.store.k.all(), clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithProgressNotify())
		var heard atomic.Int64 // unix nanos of the last response
		heard.Store(time.Now().UnixNano())
		var stalled atomic.Bool
		stopDog := make(chan struct{})
		go c.watchdog(wctx, cancel, &heard, &stalled, stopDog)
		for wr := range wch {
			heard.Store(time.Now().UnixNano())
			if err := wr.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) {
					c.log.Warn("metadata watch compacted, reloading", "rev", from)
					c.reloadWithRetry(ctx)
				} else {
					c.log.Warn("metadata watch error, restarting", "err", err)
				}
				break
			}
			c.mu.Lock()
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					c.applyDelete(string(ev.Kv.Key))
				} else {
					c.applyPut(string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision)
				}
			}
			// A response covers the store up to its header revision
			// only once it carries no more catch-up events; take the
			// last event's revision otherwise, so a restarted watch
			// never skips events.
			rev := wr.Header.Revision
			if n := len(wr.Events); n > 0 && wr.Events[n-1].Kv.ModRevision < rev && !wr.IsProgressNotify() {
				rev = max(wr.Events[n-1].Kv.ModRevision, c.rev)
			}
			if rev > c.rev {
				c.rev = rev
			}
			c.notifyLocked()
			c.mu.Unlock()
		}
		close(stopDog)
		cancel()
		if stalled.Load() {
			stalls++
		} else {
			stalls = 0
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond): // do not spin if etcd is unreachable
		}
	}
}

// watchdog asks etcd for a progress notification now and then and
// cancels the watch if nothing at all arrives for watchStallTimeout.
func (c *Cache) watchdog(wctx context.Context, cancel context.CancelFunc, heard *atomic.Int64, stalled *atomic.Bool, stop <-chan struct{}) {
	t := time.NewTicker(watchStallTimeout / 6)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-wctx.Done():
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, heard.Load())) > watchStallTimeout {
			c.log.Warn("metadata watch silent despite progress requests; re-creating it")
			stalled.Store(true)
			cancel()
			return
		}
		_ = c.store.cli.RequestProgress(wctx)
	}
}

func (c *Cache) reloadWithRetry(ctx context.Context) {
	for ctx.Err() == nil {
		if err := c.load(ctx); err == nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (c *Cache) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// applyPut and applyDelete run with c.mu held.
func (c *Cache) applyPut(key string, val []byte, rev int64) {
	k := c.store.k
	decode := func(v any) bool {
		if err := json.Unmarshal(val, v); err != nil {
			c.log.Error("undecodable metadata value ignored", "key", key, "err", err)
			return false
		}
		return true
	}
	switch {
	case strings.HasPrefix(key, k.topics()):
		var t Topic
		if decode(&t) {
			if old, ok := c.topics[t.Name]; ok && old.ID != t.ID {
				delete(c.byID, old.ID)
			}
			c.topics[t.Name] = t
			c.byID[t.ID] = t.Name
		}
	case strings.HasPrefix(key, k.partitions()):
		var p Partition
		if decode(&p) {
			p.ModRevision = rev
			m := c.partitions[p.Topic]
			if m == nil {
				m = map[int32]Partition{}
				c.partitions[p.Topic] = m
			}
			m[p.Partition] = p
		}
	case strings.HasPrefix(key, k.nodes(kindLogsvc)):
		var n LogNode
		if decode(&n) {
			c.logNodes[n.ID] = n
		}
	case strings.HasPrefix(key, k.nodes(kindGateway)):
		var g Gateway
		if decode(&g) {
			c.gateways[g.ID] = g
		}
	case strings.HasPrefix(key, k.nodes(kindUploader)):
		var u Uploader
		if decode(&u) {
			c.uploaders[u.ID] = u
		}
	case strings.HasPrefix(key, k.brokerIDs()):
		if node, ok := k.parseBrokerIDKey(key); ok {
			if id, err := parseBrokerID(string(val)); err == nil {
				c.brokerIDs[node] = id
			}
		}
	case strings.HasPrefix(key, k.groupShards()):
		if n, ok := k.parseGroupShardKey(key); ok {
			c.shards[n] = string(val)
		}
	}
}

func (c *Cache) applyDelete(key string) {
	k := c.store.k
	switch {
	case strings.HasPrefix(key, k.topics()):
		name := strings.TrimPrefix(key, k.topics())
		if t, ok := c.topics[name]; ok {
			delete(c.byID, t.ID)
		}
		delete(c.topics, name)
	case strings.HasPrefix(key, k.partitions()):
		if t, p, ok := k.parsePartitionKey(key); ok {
			delete(c.partitions[t], p)
			if len(c.partitions[t]) == 0 {
				delete(c.partitions, t)
			}
		}
	case strings.HasPrefix(key, k.nodes(kindLogsvc)):
		delete(c.logNodes, strings.TrimPrefix(key, k.nodes(kindLogsvc)))
	case strings.HasPrefix(key, k.nodes(kindGateway)):
		delete(c.gateways, strings.TrimPrefix(key, k.nodes(kindGateway)))
	case strings.HasPrefix(key, k.nodes(kindUploader)):
		delete(c.uploaders, strings.TrimPrefix(key, k.nodes(kindUploader)))
	case strings.HasPrefix(key, k.groupShards()):
		if n, ok := k.parseGroupShardKey(key); ok {
			delete(c.shards, n)
		}
	}
}

// GroupCoordinator is the live gateway holding group's coordinator shard.
func (c *Cache) GroupCoordinator(group string) (Gateway, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	id, ok := c.shards[GroupShard(group)]
	if !ok {
		return Gateway{}, false
	}
	g, ok := c.gateways[id]
	return g, ok
}

// GroupShardOwner is the id of the gateway holding shard ("" if none).
func (c *Cache) GroupShardOwner(shard int) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.shards[shard]
}

// Revision is the etcd revision the cache reflects.
func (c *Cache) Revision() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev
}

// Changed returns a channel closed at the next applied change.
func (c *Cache) Changed() <-chan struct{} {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.changed
}

// WaitRevision blocks until the cache reflects etcd revision rev, so a
// caller that just wrote metadata reads its own write.
func (c *Cache) WaitRevision(ctx context.Context, rev int64) error {
	for {
		c.mu.RLock()
		cur, ch := c.rev, c.changed
		c.mu.RUnlock()
		if cur >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Topic returns a topic by name.
func (c *Cache) Topic(name string) (Topic, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.topics[name]
	return t, ok
}

// TopicByID returns a topic by id.
func (c *Cache) TopicByID(id TopicID) (Topic, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	name, ok := c.byID[id]
	if !ok {
		return Topic{}, false
	}
	t, ok := c.topics[name]
	return t, ok
}

// Topics returns every topic, sorted by name.
func (c *Cache) Topics() []Topic {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Topic, 0, len(c.topics))
	for _, t := range c.topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Partition returns one partition's assignment.
func (c *Cache) Partition(topic string, p int32) (Partition, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	pa, ok := c.partitions[topic][p]
	return pa, ok
}

// Partitions returns a topic's partitions sorted by number.
func (c *Cache) Partitions(topic string) []Partition {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Partition, 0, len(c.partitions[topic]))
	for _, p := range c.partitions[topic] {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out
}

// AllPartitions returns every partition of every topic.
func (c *Cache) AllPartitions() []Partition {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []Partition
	for _, m := range c.partitions {
		for _, p := range m {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

// LogNode returns a live log-service node by id.
func (c *Cache) LogNode(id string) (LogNode, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n, ok := c.logNodes[id]
	return n, ok
}

// LogNodes returns the live log-service nodes sorted by id.
func (c *Cache) LogNodes() []LogNode {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]LogNode, 0, len(c.logNodes))
	for _, n := range c.logNodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// LogNodesByLoad returns the live log-service nodes, those leading or
// homing the fewest partitions first (ties by id): the order new partitions
// are placed in.
func (c *Cache) LogNodesByLoad() []LogNode {
	c.mu.RLock()
	load := map[string]int{}
	for _, m := range c.partitions {
		for _, p := range m {
			owner := p.Home
			if owner == "" {
				owner = p.Leader
			}
			load[owner]++
		}
	}
	c.mu.RUnlock()
	nodes := c.LogNodes()
	sort.SliceStable(nodes, func(i, j int) bool { return load[nodes[i].ID] < load[nodes[j].ID] })
	return nodes
}

// Gateways returns the live gateways sorted by Kafka node id.
func (c *Cache) Gateways() []Gateway {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Gateway, 0, len(c.gateways))
	for _, g := range c.gateways {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// Uploaders returns the live uploaders sorted by id.
func (c *Cache) Uploaders() []Uploader {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Uploader, 0, len(c.uploaders))
	for _, u := range c.uploaders {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ErrNoObjectStore means the cluster cannot serve topics that keep data in
// object storage (hybrid, diskless) now.
var ErrNoObjectStore = errors.New("no object store configured")

// ObjectStoreReady reports whether the cluster can serve topics that keep
// data in object storage (StorageMode.NeedsObjectStore: hybrid and
// diskless): every live log-service node and at least one live uploader
// have an object store configured. The error says what is missing.
func (c *Cache) ObjectStoreReady() error {
	nodes, ups := c.LogNodes(), c.Uploaders()
	for _, n := range nodes {
		if !n.ObjectStore {
			return fmt.Errorf("%w: log-service node %s has none (start it with --object-store)", ErrNoObjectStore, n.ID)
		}
	}
	for _, u := range ups {
		if u.ObjectStore {
			return nil
		}
	}
	if len(ups) == 0 {
		return fmt.Errorf("%w: no uploader is running (start one with --object-store)", ErrNoObjectStore)
	}
	return fmt.Errorf("%w: no live uploader has one (start uploaders with --object-store)", ErrNoObjectStore)
}

// CollidingTopic returns an existing topic other than name whose name
// collides with name's ('.' and '_' are the same; see collision.go), so
// a request can be refused before any write. Store.CreateTopic enforces
// the rule regardless of how current this cache is.
func (c *Cache) CollidingTopic(name string) (string, bool) {
	want := TopicCollisionName(name)
	c.mu.RLock()
	defer c.mu.RUnlock()
	for other := range c.topics {
		if other != name && TopicCollisionName(other) == want {
			return other, true
		}
	}
	return "", false
}
