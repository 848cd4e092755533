package e2e

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamline-dev/streamline/services/cluster"
)

const readyMarker = "Streamline is ready"

// allInOneArgs returns flags for an all-in-one process on free ports.
func allInOneArgs(t testing.TB, dataDir string) (kafkaAddr string, args []string) {
	ports := cluster.FreeAddrs(t, 5)
	kafkaAddr = ports[0]
	return kafkaAddr, []string{
		"--data-dir", dataDir, "--kafka-addr", kafkaAddr,
		"--etcd-client-addr", ports[1], "--etcd-peer-addr", ports[2], "--admin-addr", ports[3],
		"--http-addr", ports[4],
	}
}

// TestCrashRecoveryKeepsAcknowledgedRecords SIGKILLs the all-in-one (and so
// its log service) in the middle of an idempotent produce load, restarts it
// on the same data directory, and checks that every acknowledged record is
// back at the offset it was acknowledged with and that no record is stored
// twice (retries of unacknowledged batches are deduplicated by the rebuilt
// producer state).
func TestCrashRecoveryKeepsAcknowledgedRecords(t *testing.T) {
	bin := cluster.Binary(t, "./services/cmd/streamline")
	addr, args := allInOneArgs(t, t.TempDir())
	proc := cluster.StartProcess(t, bin, readyMarker, args...)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const topic = "crash"
	adm := kadm.NewClient(newClient(t, addr))
	if resp, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}

	prod := newClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.RecordDeliveryTimeout(2*time.Minute),
		kgo.ProducerLinger(time.Millisecond), kgo.RequiredAcks(kgo.AllISRAcks()))
	var (
		mu       sync.Mutex
		acked    = map[string]produced{} // by value
		ackedPer = map[int32]int{}
		failed   int
		wg       sync.WaitGroup
	)
	// Kill three times, each while batches are in flight: a batch that is
	// durable but not yet acknowledged at the kill is what tests the
	// rebuilt idempotence state, and each kill is a fresh chance of one.
	const total = 40000
	killAts := []int{5000, 15000, 25000}
	killed := make([]chan struct{}, len(killAts))
	for k := range killed {
		killed[k] = make(chan struct{})
	}
	next := 0 // index of the next kill, guarded by mu
	for i := 0; i < total; i++ {
		wg.Add(1)
		v := []byte(fmt.Sprintf("v-%06d", i))
		prod.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i % 7)), Value: v}, func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			acked[string(r.Value)] = produced{value: r.Value, offset: r.Offset, key: []byte(strconv.Itoa(int(r.Partition)))}
			ackedPer[r.Partition]++
			if next < len(killAts) && len(acked) == killAts[next] {
				close(killed[next])
				next++
			}
		})
		if k := killIndex(killAts, i-2000); k >= 0 {
			// Keep producing while the kill happens, so batches are in flight.
			<-killed[k]
			proc.Signal(syscall.SIGKILL)
			if err := proc.Wait(30 * time.Second); err == nil {
				t.Fatal("process exited cleanly after SIGKILL?")
			}
			proc.Restart(readyMarker)
		}
	}
	wg.Wait()
	mu.Lock()
	t.Logf("acknowledged %d records (%v per partition), %d failed", len(acked), ackedPer, failed)
	if len(acked) < killAts[len(killAts)-1] {
		t.Fatalf("only %d records acknowledged", len(acked))
	}
	mu.Unlock()

	// Read everything back.
	cons := newClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(300*time.Millisecond))
	seen := map[string]int64{}
	found := 0
	for found < len(acked) {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read back %d of %d acknowledged records", found, len(acked))
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			if prev, dup := seen[v]; dup {
				t.Fatalf("record %s stored twice (offsets %d and %d/%d)", v, prev, r.Partition, r.Offset)
			}
			seen[v] = r.Offset
			if a, ok := acked[v]; ok {
				if a.offset != r.Offset || string(a.key) != strconv.Itoa(int(r.Partition)) {
					t.Fatalf("record %s acknowledged at %s/%d, found at %d/%d", v, a.key, a.offset, r.Partition, r.Offset)
				}
				found++
			}
		})
	}
}

func killIndex(at []int, i int) int {
	for k, a := range at {
		if a == i {
			return k
		}
	}
	return -1
}
