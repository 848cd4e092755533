package disklessstore

import (
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
)

// TestTopicBatchDelay: a topic's batch timeout becomes the buffer's delay;
// one stored before meta.MaxBatchTimeout existed (or written to etcd by
// hand) is held to it, so its produces are still answered within a
// client's request timeout.
func TestTopicBatchDelay(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"":                    0, // unset: the node's --diskless-batch-timeout
		"0":                   time.Nanosecond,
		"250":                 250 * time.Millisecond,
		"3600000":             meta.MaxBatchTimeout,
		"9223372036854775807": meta.MaxBatchTimeout, // would overflow as a Duration
		"-5":                  0,
		"soon":                0,
	} {
		topic := meta.Topic{Configs: map[string]string{}}
		if v != "" {
			topic.Configs[meta.ConfigBatchTimeoutMs] = v
		}
		if got := time.Duration(topicBatchDelay(topic)); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
}

// TestPageServes: a cached manifest page answers a read only when it is
// as good for it as a fresh page: half a page of entries or more, the
// read's byte budget, or everything up to the committed end. Otherwise
// the read would stop short of data it could have returned.
func TestPageServes(t *testing.T) {
	entries := func(n int, length int64) []meta.Coords {
		rs := make([]meta.Coords, n)
		for i := range rs {
			rs[i] = meta.Coords{BaseOffset: int64(i) * 10, LastOffset: int64(i)*10 + 9, Length: length}
		}
		return rs
	}
	for _, c := range []struct {
		name     string
		rs       []meta.Coords
		maxBytes int
		end      int64
		want     bool
	}{
		{"half a page", entries(pageReuse, 1), 1 << 20, 1 << 40, true},
		{"one short of half a page", entries(pageReuse-1, 1), 1 << 20, 1 << 40, false},
		{"reaches the committed end", entries(3, 1), 1 << 20, 30, true},
		{"the end moved past it", entries(3, 1), 1 << 20, 31, false},
		{"holds the byte budget", entries(3, 400), 1000, 1 << 40, true},
		{"just under the budget", entries(3, 333), 1000, 1 << 40, false},
	} {
		if got := pageServes(c.rs, c.maxBytes, c.end); got != c.want {
			t.Errorf("%s: pageServes = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestLatePrefetchKeepsTheReadersPage: a prefetch that ran late, its read
// long answered, fetches a page behind the one the reader's later reads
// cached; it must not put it back (the next reads would fetch again). A
// read's own page always replaces the cached one (a reader may seek back).
func TestLatePrefetchKeepsTheReadersPage(t *testing.T) {
	page := func(base int64) []meta.Coords {
		return []meta.Coords{{BaseOffset: base, LastOffset: base + 9}}
	}
	var l Log
	l.keepPage(page(100), false)
	l.keepPage(page(50), true)
	if l.page[0].BaseOffset != 100 {
		t.Fatalf("a late prefetch replaced the page at 100 with one at %d", l.page[0].BaseOffset)
	}
	l.keepPage(page(150), true)
	if l.page[0].BaseOffset != 150 {
		t.Fatalf("a prefetch ahead of the page did not replace it: %d", l.page[0].BaseOffset)
	}
	l.keepPage(page(20), false)
	if l.page[0].BaseOffset != 20 {
		t.Fatalf("a read's page (a seek back) did not replace it: %d", l.page[0].BaseOffset)
	}
}
