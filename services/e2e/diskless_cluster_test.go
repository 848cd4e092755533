package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/services/cluster"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
)

// startDisklessCluster runs 3 log-service nodes and 2 uploaders sharing one
// object store (a directory every process on this machine can reach).
func startDisklessCluster(t *testing.T) *cluster.Cluster {
	c, _ := startDisklessClusterAt(t)
	return c
}

// startDisklessClusterAt also returns the object store directory. Uploaders
// collect garbage every 500 ms with a 4 s grace.
func startDisklessClusterAt(t *testing.T) (*cluster.Cluster, string) {
	t.Helper()
	dir := t.TempDir()
	store := "file://" + dir
	return cluster.StartCluster(t, cluster.ClusterOptions{
		SessionTTL: clusterTTL,
		Uploaders:  2,
		ExtraArgs: map[string][]string{
			"gateway":  {"--session-ttl", clusterTTL.String()},
			"logsvc":   {"--object-store", store, "--diskless-batch-timeout", "20ms"},
			"uploader": {"--object-store", store, "--gc-grace", "4s", "--gc-interval", "500ms", "--gc-linger", "1s"},
		},
	}), dir
}

// TestDisklessLeaderKillDuringLoad SIGKILLs the log-service node leading
// diskless partitions in the middle of an idempotent produce load. Its
// partitions move to live nodes at new epochs (the data is shared), the
// new leaders rebuild their log end and producer state from etcd, and
// every acknowledged record is read back at its acknowledged offset, none
// twice.
func TestDisklessLeaderKillDuringLoad(t *testing.T) {
	c := startDisklessCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, cache := watchMeta(t, c)
	const topic = "diskless-failover"
	adm := kadm.NewClient(bootstrapClient(t, c))
	resp, err := adm.CreateTopic(ctx, 6, 1, map[string]*string{"storage.mode": kmsg.StringPtr("diskless")}, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	await(t, cache, 10*time.Second, "partitions visible", func() bool { return len(cache.Partitions(topic)) == 6 })
	victim := ""
	epochs := map[int32]int32{}
	for _, p := range cache.Partitions(topic) {
		if victim == "" {
			victim = p.Leader
		}
		if p.Leader == victim {
			epochs[p.Partition] = p.LeaderEpoch
		}
	}

	acked := produceWhileKilling(ctx, t, c, topic, 12000, victim)
	await(t, cache, clusterTTL+5*time.Second, "victim's partitions led elsewhere at new epochs", func() bool {
		for _, p := range cache.Partitions(topic) {
			if e, ok := epochs[p.Partition]; ok && (p.Leader == victim || !p.Online() || p.LeaderEpoch <= e) {
				return false
			}
		}
		return true
	})
	readBackExactlyOnce(ctx, t, c, topic, acked)
}

// TestDisklessUploaderKillDuringLoad SIGKILLs an uploader in the middle of
// a produce load, so flushes die between PUT and commit: log-service nodes
// retry on the other uploader, no acknowledged record is lost or doubled.
// Orphaned objects (uploaded, never committed; one is planted to be sure
// there is one) are then collected by the surviving uploader, and every
// object left is referenced by etcd.
func TestDisklessUploaderKillDuringLoad(t *testing.T) {
	c, dir := startDisklessClusterAt(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic = "diskless-uploader-kill"
	adm := kadm.NewClient(bootstrapClient(t, c))
	resp, err := adm.CreateTopic(ctx, 4, 1, map[string]*string{"storage.mode": kmsg.StringPtr("diskless")}, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	acked := produceWhileKilling(ctx, t, c, topic, 12000, "uploader-1")
	readBackExactlyOnce(ctx, t, c, topic, acked)

	objects, err := objstorefs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	planted := fmt.Sprintf("beef/logsvc-9/%013d-%020d-0123456789ab.slo", time.Now().Add(-time.Hour).UnixMilli(), 1)
	if err := objects.Put(ctx, planted, []byte("an upload whose commit never came")); err != nil {
		t.Fatal(err)
	}
	awaitNoOrphans(ctx, t, meta.NewStore(c.Etcd(t), ""), objects)
	// The data is still all there after collection.
	readBackExactlyOnce(ctx, t, c, topic, acked)
}

// awaitNoOrphans waits up to 30 s until every object in the bucket is
// referenced by a manifest (and at least one is).
func awaitNoOrphans(ctx context.Context, t *testing.T, store *meta.Store, objects *objstorefs.Bucket) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		refs, err := store.ReferencedObjects(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var orphans []string
		_ = objects.Iter(ctx, "", func(k string) error {
			if _, ok := refs[k]; !ok {
				orphans = append(orphans, k)
			}
			return nil
		})
		if len(orphans) == 0 && len(refs) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphans not collected: %v", orphans)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// produceWhileKilling produces n idempotent records, SIGKILLing victim (if
// any) a third of the way, and requires every record to be acknowledged.
func produceWhileKilling(ctx context.Context, t *testing.T, c *cluster.Cluster, topic string, n int, victim string) map[string]produced {
	t.Helper()
	prod := bootstrapClient(t, c, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(2*time.Millisecond))
	var (
		mu    sync.Mutex
		acked = map[string]produced{}
		wg    sync.WaitGroup
		fails int
	)
	for i := 0; i < n; i++ {
		if i == n/3 && victim != "" {
			c.Kill(victim)
		}
		wg.Add(1)
		v := fmt.Sprintf("d%05d", i)
		prod.Produce(ctx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fails++
				return
			}
			acked[v] = produced{value: r.Value, offset: r.Offset, key: []byte(fmt.Sprint(r.Partition))}
		})
		if i%1000 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	wg.Wait()
	t.Logf("%d acknowledged, %d failed after killing %s", len(acked), fails, victim)
	if len(acked) != n {
		t.Fatalf("%d records not acknowledged although the cluster had live nodes", n-len(acked))
	}
	return acked
}

// readBackExactlyOnce consumes the topic and checks every acknowledged
// record is there once, at its acknowledged partition and offset.
func readBackExactlyOnce(ctx context.Context, t *testing.T, c *cluster.Cluster, topic string, acked map[string]produced) {
	t.Helper()
	n := len(acked)
	cons := bootstrapClient(t, c, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]bool{}
	for len(seen) < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d", len(seen), n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			if seen[v] {
				t.Fatalf("record %s stored twice", v)
			}
			seen[v] = true
			a, ok := acked[v]
			if !ok || a.offset != r.Offset || string(a.key) != fmt.Sprint(r.Partition) {
				t.Fatalf("record %s found at %d/%d, acknowledged at %s/%d", v, r.Partition, r.Offset, a.key, a.offset)
			}
		})
	}
}
