package disklessstore

import (
	"container/list"
	"sync"

	"github.com/streamline-dev/streamline/shared/segobject"
)

// rangeKey names one committed range, segment chunk or window of a flush
// object (window: see intakeWindow): its object and position.
type rangeKey struct {
	object string
	pos    int64
	window bool
}

// rangeCache is a byte-bounded LRU of object ranges (read_cache_bytes).
// Ranges are immutable, so entries never go stale.
type rangeCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	ll    *list.List
	items map[rangeKey]*list.Element
	hits  uint64
	miss  uint64
}

type cacheEntry struct {
	key  rangeKey
	data []byte
	ix   *segobject.Index // a segment's parsed index (data is nil)
	size int64
}

func newRangeCache(max int64) *rangeCache {
	return &rangeCache{max: max, ll: list.New(), items: map[rangeKey]*list.Element{}}
}

func (c *rangeCache) get(k rangeKey) ([]byte, bool) {
	e, ok := c.lookup(k)
	if !ok {
		return nil, false
	}
	return e.data, true
}

// has reports whether k is cached, without counting a hit or a miss or
// refreshing its place in the LRU.
func (c *rangeCache) has(k rangeKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.items[k]
	return ok
}

func (c *rangeCache) lookup(k rangeKey) (*cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.ll.MoveToFront(el)
		c.hits++
		return el.Value.(*cacheEntry), true
	}
	c.miss++
	return nil, false
}

func (c *rangeCache) put(k rangeKey, data []byte) {
	c.insert(&cacheEntry{key: k, data: data, size: int64(len(data))})
}

// indexKey is where a segment's parsed index is cached.
func indexKey(object string) rangeKey { return rangeKey{object: object, pos: -1} }

func (c *rangeCache) getIndex(object string) (*segobject.Index, bool) {
	e, ok := c.lookup(indexKey(object))
	if !ok {
		return nil, false
	}
	return e.ix, true
}

// putIndex caches a parsed index, counted at twice its encoded size.
func (c *rangeCache) putIndex(object string, ix *segobject.Index, encoded int64) {
	c.insert(&cacheEntry{key: indexKey(object), ix: ix, size: 2 * encoded})
}

func (c *rangeCache) insert(e *cacheEntry) {
	if e.size > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[e.key]; ok {
		return
	}
	c.items[e.key] = c.ll.PushFront(e)
	c.size += e.size
	for c.size > c.max {
		el := c.ll.Back()
		old := el.Value.(*cacheEntry)
		c.ll.Remove(el)
		delete(c.items, old.key)
		c.size -= old.size
	}
}

// stats returns hits and misses.
func (c *rangeCache) stats() (hits, misses uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.miss
}
