package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestConsumerResumesAcrossHandoff keeps a franz-go consumer polling while
// a log-service node is killed, its partitions are fenced at a new epoch,
// and it comes back at a newer one: the consumer rides through the
// retriable errors (KIP-320 epochs in Metadata, Fetch and
// OffsetForLeaderEpoch) and ends with every acknowledged record exactly
// once, in order.
func TestConsumerResumesAcrossHandoff(t *testing.T) {
	c := startTestCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, cache := watchMeta(t, c)
	const topic = "handoff"
	createTopic(ctx, t, c, topic, 3)
	await(t, cache, 10*time.Second, "partitions visible", func() bool { return len(cache.Partitions(topic)) == 3 })

	var (
		mu   sync.Mutex
		seen = map[string]int64{}
		last = map[int32]int64{}
		errs []error
	)
	cons := bootstrapClient(t, c, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	cctx, stopConsumer := context.WithCancel(ctx)
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for cctx.Err() == nil {
			fs := cons.PollFetches(cctx)
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				if prev, ok := last[r.Partition]; ok && r.Offset <= prev {
					errs = append(errs, fmt.Errorf("partition %d went back from %d to %d", r.Partition, prev, r.Offset))
				}
				last[r.Partition] = r.Offset
				if _, dup := seen[string(r.Value)]; dup {
					errs = append(errs, fmt.Errorf("record %s consumed twice", r.Value))
				}
				seen[string(r.Value)] = r.Offset
			})
			mu.Unlock()
		}
	}()

	prod := bootstrapClient(t, c, kgo.DefaultProduceTopic(topic))
	produceBatch := func(from, n int) map[int32]map[int64]produced {
		return produceAll(ctx, t, prod, n, func(i int) *kgo.Record {
			return &kgo.Record{Value: []byte(fmt.Sprintf("h%05d", from+i))}
		})
	}
	acked := []map[int32]map[int64]produced{produceBatch(0, 1000)}
	c.Kill("logsvc-1")
	await(t, cache, clusterTTL+5*time.Second, "logsvc-1 fenced", func() bool {
		for _, p := range cache.Partitions(topic) {
			if p.Home == "logsvc-1" && p.Online() {
				return false
			}
		}
		return true
	})
	c.Restart("logsvc-1")
	acked = append(acked, produceBatch(1000, 1000))

	want := 0
	for _, a := range acked {
		for _, m := range a {
			want += len(m)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer has %d of %d records", n, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopConsumer()
	<-consumed
	mu.Lock()
	defer mu.Unlock()
	for _, err := range errs {
		t.Error(err)
	}
	for _, a := range acked {
		for p, m := range a {
			for off, r := range m {
				if got, ok := seen[string(r.value)]; !ok || got != off {
					t.Fatalf("record %s acknowledged at %d/%d, consumed at %d (%v)", r.value, p, off, got, ok)
				}
			}
		}
	}
}
