package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamline-dev/streamline/services/cluster"
)

// mountTmpfs mounts a size-limited tmpfs (root only; the test is skipped,
// saying why, elsewhere) and unmounts it when the test ends, after the
// processes are gone.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a size-limited tmpfs here (needs root): %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fillTo writes a file in dir until at most leave bytes are free (0: until
// ENOSPC) and returns its path.
func fillTo(t *testing.T, dir string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		free := int64(st.Bavail) * int64(st.Bsize)
		if leave > 0 && free <= leave {
			return path
		}
		chunk := buf
		if leave > 0 && free-leave < int64(len(buf)) {
			chunk = buf[:free-leave]
		}
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return path
			}
			t.Fatal(err)
		}
	}
}

// TestLocalDiskFull fills the data disk of the only log-service node under
// an idempotent acks=all producer, in three ways: down to the free-space
// reserve (--min-free-bytes), and past it to a real ENOSPC (reserve off),
// where either the WAL's own write fails (--wal-preallocate=false) or, with
// the WAL file preallocated (its writes need no new blocks), the segment
// write does: that batch's ack waits for space while the partition refuses
// new batches. Either way produce answers KAFKA_STORAGE_ERROR while the
// disk is full, nothing acknowledged is lost, writes resume by themselves
// once the filler is deleted, and after a SIGKILL the node recovers every
// acknowledged record (no corrupt WAL or segment).
func TestLocalDiskFull(t *testing.T) {
	for _, tc := range []struct {
		name        string
		minFree     string
		leave       int64
		preallocate bool
		// refusedIn bounds the wait for KAFKA_STORAGE_ERROR. A partition
		// whose segment write failed stalls the probe's batch until the
		// probe gives up (two produce timeouts) and refuses the next one:
		// up to one stall per partition.
		refusedIn time.Duration
	}{
		{"reserve", "16777216", 4 << 20, true, 30 * time.Second},
		{"enospc", "-1", 0, false, 30 * time.Second},
		{"enospc-preallocated", "-1", 0, true, 100 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := mountTmpfs(t, "96m")
			c := cluster.StartCluster(t, cluster.ClusterOptions{LogServices: 1, Gateways: 1, Uploaders: -1, SessionTTL: clusterTTL,
				ExtraArgs: map[string][]string{"logsvc-1": {"--data-dir", disk, "--min-free-bytes", tc.minFree,
					fmt.Sprintf("--wal-preallocate=%t", tc.preallocate)}}})
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			const topic = "full"
			adm := kadm.NewClient(bootstrapClient(t, c))
			for _, name := range []string{topic, "probe"} {
				if resp, err := adm.CreateTopic(ctx, 3, 1, nil, name); err != nil || resp.Err != nil {
					t.Fatalf("create %s: %v %v", name, err, resp.Err)
				}
			}
			prod := bootstrapClient(t, c, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
				kgo.RecordDeliveryTimeout(2*time.Minute), kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
			var (
				mu    sync.Mutex
				acked = map[string]produced{}
				wg    sync.WaitGroup
			)
			send := func(from, to int) {
				for i := from; i < to; i++ {
					v := fmt.Sprintf("v%05d", i)
					wg.Add(1)
					prod.Produce(ctx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
						defer wg.Done()
						if err != nil {
							t.Errorf("record %s failed: %v", v, err)
							return
						}
						mu.Lock()
						acked[v] = produced{value: r.Value, offset: r.Offset, key: []byte(fmt.Sprint(r.Partition))}
						mu.Unlock()
					})
				}
			}
			send(0, 500)
			wg.Wait()

			filler := fillTo(t, disk, tc.leave)
			// A producer without retries sees what the disk-full node answers
			// (on a topic of its own: what it sent may be stored or not).
			probe := bootstrapClient(t, c, kgo.DefaultProduceTopic("probe"), kgo.RecordRetries(1), kgo.DisableIdempotentWrite(),
				kgo.RequiredAcks(kgo.AllISRAcks()))
			deadline := time.Now().Add(tc.refusedIn)
			for {
				err := probe.ProduceSync(ctx, &kgo.Record{Value: []byte("probe")}).FirstErr()
				if errors.Is(err, kerr.KafkaStorageError) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("produce to a full disk: %v, want KAFKA_STORAGE_ERROR", err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			// The idempotent producer keeps retrying while the disk is full...
			send(500, 1000)
			time.Sleep(2 * time.Second)
			mu.Lock()
			during := len(acked)
			mu.Unlock()
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			// ...and everything is acknowledged once space is back, without a restart.
			wg.Wait()
			if t.Failed() {
				return
			}
			t.Logf("%d acknowledged before the disk filled up, %d while full, %d after it was freed", 500, during-500, len(acked)-during)
			readBackExactlyOnce(ctx, t, c, topic, acked)

			c.Kill("logsvc-1")
			c.Restart("logsvc-1")
			readBackExactlyOnce(ctx, t, c, topic, acked)
		})
	}
}
