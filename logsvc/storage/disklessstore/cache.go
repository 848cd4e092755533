package disklessstore

import (
	"container/list"
	"sync"
)

// rangeKey names one committed range: its object and position.
type rangeKey struct {
	object string
	pos    int64
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
}

func newRangeCache(max int64) *rangeCache {
	return &rangeCache{max: max, ll: list.New(), items: map[rangeKey]*list.Element{}}
}

func (c *rangeCache) get(k rangeKey) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.ll.MoveToFront(el)
		c.hits++
		return el.Value.(*cacheEntry).data, true
	}
	c.miss++
	return nil, false
}

func (c *rangeCache) put(k rangeKey, data []byte) {
	if int64(len(data)) > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; ok {
		return
	}
	c.items[k] = c.ll.PushFront(&cacheEntry{key: k, data: data})
	c.size += int64(len(data))
	for c.size > c.max {
		el := c.ll.Back()
		e := el.Value.(*cacheEntry)
		c.ll.Remove(el)
		delete(c.items, e.key)
		c.size -= int64(len(e.data))
	}
}

// stats returns hits and misses.
func (c *rangeCache) stats() (hits, misses uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.miss
}
