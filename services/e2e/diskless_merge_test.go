package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/streamline-dev/streamline/services/cluster"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
	"github.com/streamline-dev/streamline/uploader/merge"
)

// TestAllInOneMergeKeepsEtcdSmall is issue 12's measurement on the
// all-in-one: a diskless topic of 12 partitions with 20 ms batches under a
// steady produce load writes one manifest key per partition per flush;
// once the merge has caught up, etcd holds fewer than 400 keys in all, and
// every acknowledged record reads back byte for byte from offset 0, also
// after kill -9 and a restart. In CI it produces for 20 s with a 5 s merge
// age; STREAMLINE_LONG=1 runs the two minutes with a 20 s age, and
// STREAMLINE_SOAK=15m the soak: 50 partitions, 10 ms batches, a 1 min merge
// age, etcd's key count and size in use logged every 30 s (the limit is
// then 1,000 keys: 50 partitions keep a few segments each).
func TestAllInOneMergeKeepsEtcdSmall(t *testing.T) {
	produceFor, minAge, partitions, batch, limit := 20*time.Second, 5*time.Second, int32(12), "20ms", int64(400)
	if os.Getenv("STREAMLINE_LONG") != "" {
		produceFor, minAge = 2*time.Minute, 20*time.Second
	}
	if d, err := time.ParseDuration(os.Getenv("STREAMLINE_SOAK")); err == nil {
		produceFor, minAge, partitions, batch, limit = d, time.Minute, 50, "10ms", 1000
	}
	bin := cluster.Binary(t, "./services/cmd/streamline")
	dataDir := t.TempDir()
	ports := cluster.FreeAddrs(t, 5)
	addr, etcdAddr := ports[0], ports[1]
	args := []string{"--data-dir", dataDir, "--kafka-addr", addr, "--etcd-client-addr", etcdAddr, "--etcd-peer-addr", ports[2],
		"--admin-addr", ports[3], "--http-addr", ports[4], "--diskless-batch-timeout", batch,
		"--merge-min-age", minAge.String(), "--merge-interval", "1s"}
	proc := cluster.StartProcess(t, bin, readyMarker, args...)
	ctx, cancel := context.WithTimeout(context.Background(), produceFor+4*time.Minute)
	defer cancel()
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdAddr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	keys := func() int64 {
		t.Helper()
		resp, err := etcd.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return resp.Count
	}
	inUse := func() int64 {
		t.Helper()
		st, err := etcd.Status(ctx, etcdAddr)
		if err != nil {
			t.Fatal(err)
		}
		return st.DbSizeInUse
	}

	const topic = "merged"
	cl := newClient(t, addr, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	if resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, map[string]*string{"storage.mode": ptr("diskless")}, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	var (
		mu    sync.Mutex
		acked = map[int32]map[int64]produced{}
		fail  error
		wg    sync.WaitGroup
	)
	began := time.Now()
	// The key count is sampled on a clock, whatever the produce rate.
	var peak atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				if resp, err := etcd.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithCountOnly()); err == nil && resp.Count > peak.Load() {
					peak.Store(resp.Count)
				}
			}
		}
	}()
	nextRow := began
	t.Logf("| elapsed | etcd keys | etcd size in use |")
	for i := 0; time.Since(began) < produceFor; i++ {
		if time.Now().After(nextRow) {
			t.Logf("| %v | %d | %.1f MiB |", time.Since(began).Round(time.Second), keys(), float64(inUse())/(1<<20))
			nextRow = nextRow.Add(30 * time.Second)
		}
		wg.Add(1)
		r := &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i % 97)), Value: []byte(fmt.Sprintf("merged-%07d", i))}
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fail = err
				return
			}
			if acked[r.Partition] == nil {
				acked[r.Partition] = map[int64]produced{}
			}
			acked[r.Partition][r.Offset] = produced{key: r.Key, value: r.Value, offset: r.Offset}
		})
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	close(stopSampling)
	<-sampled
	if fail != nil {
		t.Fatalf("produce: %v", fail)
	}
	total := 0
	for _, m := range acked {
		total += len(m)
	}
	// The merge catches up: everything is older than the merge age after
	// that age, and a pass runs every second.
	settled := time.Now()
	n := keys()
	for n >= limit {
		if time.Since(settled) > minAge+90*time.Second {
			t.Fatalf("%d etcd keys %v after the load ended (peak %d): the merge did not catch up", n, time.Since(settled), peak.Load())
		}
		time.Sleep(time.Second)
		n = keys()
	}
	t.Logf("%d records acknowledged in %v; etcd keys: peak %d during the load, %d once merged (%v after the load); size in use %.1f MiB",
		total, produceFor, peak.Load(), n, time.Since(settled).Round(time.Second), float64(inUse())/(1<<20))
	if peak.Load() < limit {
		t.Fatalf("only %d keys at the peak: the load did not make the many small ranges this test is about", peak.Load())
	}
	consumeAndCompare(ctx, t, addr, topic, acked)

	proc.Signal(syscall.SIGKILL)
	if err := proc.Wait(30 * time.Second); err == nil {
		t.Fatal("process exited cleanly after SIGKILL?")
	}
	proc.Restart(readyMarker)
	consumeAndCompare(ctx, t, addr, topic, acked)
	// The settle loop above stops at the first count below the limit,
	// which may be mid-way through the merge's last passes; the restarted
	// merger finishes them (and the restart registers its services again).
	restarted := time.Now()
	for n = keys(); n >= limit; n = keys() {
		if time.Since(restarted) > minAge+60*time.Second {
			t.Fatalf("%d etcd keys %v after the restart", n, time.Since(restarted).Round(time.Second))
		}
		time.Sleep(time.Second)
	}
}

func ptr[T any](v T) *T { return &v }

// TestMergingUploaderKilledAtEachStep SIGKILLs the merging uploader (a
// failpoint in the binary, STREAMLINE_FAILPOINT) before its PUT, after the
// PUT and after the swap, and restarts it: every acknowledged record reads
// back exactly once, the merge completes, and no object is left
// unreferenced once the garbage collector's grace and linger have passed.
func TestMergingUploaderKilledAtEachStep(t *testing.T) {
	for _, step := range []string{merge.FailBeforePut, merge.FailAfterPut, merge.FailAfterSwap} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			store := "file://" + dir
			c := cluster.StartCluster(t, cluster.ClusterOptions{
				SessionTTL: clusterTTL,
				ExtraArgs: map[string][]string{
					"gateway": {"--session-ttl", clusterTTL.String()},
					"logsvc":  {"--object-store", store, "--diskless-batch-timeout", "20ms"},
					"uploader": {"--object-store", store, "--gc-grace", "4s", "--gc-interval", "500ms", "--gc-linger", "1s",
						"--merge-min-age", "1s", "--merge-interval", "300ms"},
				},
			})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			up := c.Node("uploader-1")
			up.Env = []string{"STREAMLINE_FAILPOINT=" + step}
			c.Restart("uploader-1") // nothing to merge yet: it starts
			const topic = "merge-crash"
			adm := kadm.NewClient(bootstrapClient(t, c))
			createTopicWhenReady(ctx, t, adm, 3, 1, map[string]*string{"storage.mode": ptr("diskless")}, topic)
			acked := produceWhileKilling(ctx, t, c, topic, 3000, "")
			deadline := time.Now().Add(60 * time.Second)
			for !up.Exited() {
				if time.Now().After(deadline) {
					t.Fatalf("the uploader did not reach failpoint %s", step)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if b, _ := os.ReadFile(up.LogPath()); !strings.Contains(string(b), "failpoint "+step) {
				t.Fatalf("the uploader exited, but not at failpoint %s", step)
			}
			up.Env = nil
			c.Restart("uploader-1")

			// The merge completes: every entry becomes a segment.
			store2 := meta.NewStore(c.Etcd(t), "")
			for {
				intake := 0
				if err := store2.ScanManifests(ctx, func(pm meta.PartitionManifest) error {
					for _, e := range pm.Entries {
						if e.Segment == nil {
							intake++
						}
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if intake == 0 {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("%d ranges never merged", intake)
				}
				time.Sleep(200 * time.Millisecond)
			}
			readBackExactlyOnce(ctx, t, c, topic, acked)
			objects, err := objstorefs.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			awaitNoOrphans(ctx, t, store2, objects)
			readBackExactlyOnce(ctx, t, c, topic, acked)
		})
	}
}
