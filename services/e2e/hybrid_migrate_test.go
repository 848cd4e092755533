package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestHybridLiveMigration changes a topic from local to hybrid and back
// with IncrementalAlterConfigs while an idempotent producer and a consumer
// group run: the group gets every acknowledged record once and in order;
// while hybrid, segments go to the object tier and the local copy shrinks
// to its local retention; back on local, the history in the tier still
// reads from offset 0, and every record is at its acknowledged offset.
func TestHybridLiveMigration(t *testing.T) {
	bin := cluster.Binary(t, "./services/cmd/streamline")
	dataDir := t.TempDir()
	addr, args := allInOneArgs(t, dataDir)
	cluster.StartProcess(t, bin, readyMarker, append(args, "--hybrid-upload-interval", "100ms")...)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const topic, parts = "migrating", 3
	adm := kadm.NewClient(newClient(t, addr))
	if resp, err := adm.CreateTopic(ctx, parts, 1, map[string]*string{"segment.bytes": kmsg.StringPtr("65536")}, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}

	// The producer: values carry a sequence number; acked[value] is where
	// it was acknowledged.
	type at struct {
		partition int32
		offset    int64
	}
	var (
		mu    sync.Mutex
		acked = map[string]at{}
		stop  = make(chan struct{})
		done  = make(chan struct{})
	)
	prod := newClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordDeliveryTimeout(time.Minute))
	pad := strings.Repeat("p", 1000)
	go func() {
		defer close(done)
		for seq := 0; ; seq += 50 {
			select {
			case <-stop:
				return
			default:
			}
			var recs []*kgo.Record
			for i := seq; i < seq+50; i++ {
				recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "%s-%09d-%s", topic, i, pad)})
			}
			for _, r := range prod.ProduceSync(ctx, recs...) {
				if r.Err != nil {
					t.Errorf("produce: %v", r.Err)
					return
				}
				mu.Lock()
				acked[string(r.Record.Value)] = at{r.Record.Partition, r.Record.Offset}
				mu.Unlock()
			}
		}
	}()

	// The group: every record once, each partition's in sequence order.
	var (
		cmu      sync.Mutex
		consumed = map[string]int{}
		lastSeq  = map[int32]int{}
		orderErr error
	)
	cons := newClient(t, addr, kgo.ConsumerGroup("migrating-group"), kgo.ConsumeTopics(topic), kgo.FetchMaxWait(200*time.Millisecond))
	consDone := make(chan struct{})
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	go func() {
		defer close(consDone)
		for cctx.Err() == nil {
			fs := cons.PollFetches(cctx)
			fs.EachRecord(func(r *kgo.Record) {
				seq, _ := strconv.Atoi(strings.Split(string(r.Value), "-")[1])
				cmu.Lock()
				consumed[string(r.Value)]++
				if last, ok := lastSeq[r.Partition]; ok && seq <= last && orderErr == nil {
					orderErr = fmt.Errorf("partition %d: seq %d at offset %d after seq %d", r.Partition, seq, r.Offset, last)
				}
				lastSeq[r.Partition] = seq
				cmu.Unlock()
			})
		}
	}()

	alter := func(configs ...kadm.AlterConfig) {
		t.Helper()
		resp, err := adm.AlterTopicConfigs(ctx, configs, topic)
		if err == nil {
			err = resp[0].Err
		}
		if err != nil {
			t.Fatalf("alter %+v: %v", configs, err)
		}
	}
	objects := func() int64 { return dirBytes(t, filepath.Join(dataDir, "objects"), ".slo") }
	time.Sleep(2 * time.Second)
	alter(kadm.AlterConfig{Name: "storage.mode", Value: kmsg.StringPtr("hybrid")},
		kadm.AlterConfig{Name: "local.retention.bytes", Value: kmsg.StringPtr("131072")})
	waitFor(ctx, t, func() bool { return objects() > 1<<20 }, "segments of the migrated topic in the object store")
	time.Sleep(2 * time.Second)
	alter(kadm.AlterConfig{Name: "storage.mode", Value: kmsg.StringPtr("local")})
	time.Sleep(2 * time.Second)
	close(stop)
	<-done
	if t.Failed() {
		return
	}

	mu.Lock()
	total := len(acked)
	mu.Unlock()
	waitFor(ctx, t, func() bool {
		cmu.Lock()
		defer cmu.Unlock()
		return len(consumed) >= total || orderErr != nil
	}, "the group consumed all %d acknowledged records", total)
	ccancel()
	<-consDone
	cmu.Lock()
	if orderErr != nil {
		t.Fatal(orderErr)
	}
	for v, n := range consumed {
		if n != 1 {
			t.Fatalf("%.20s consumed %d times", v, n)
		}
		if _, ok := acked[v]; !ok {
			t.Fatalf("%.20s consumed but never acknowledged", v)
		}
	}
	cmu.Unlock()

	// From offset 0, back on local: the tier's history and the local tail.
	byOffset := map[at]string{}
	for v, a := range acked {
		byOffset[a] = v
	}
	starts := listOffsets(ctx, t, adm, topic, true)
	ends := listOffsets(ctx, t, adm, topic, false)
	read := 0
	rd := newClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for read < total {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from offset 0 (starts %v, ends %v)", read, total, starts, ends)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetch partition %d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if want := byOffset[at{r.Partition, r.Offset}]; want != string(r.Value) {
				t.Fatalf("partition %d offset %d holds %.20s, acknowledged there: %.20s", r.Partition, r.Offset, r.Value, want)
			}
			read++
		})
	}
	for p := int32(0); p < parts; p++ {
		if starts[p] != 0 {
			t.Fatalf("partition %d starts at %d after the migrations, want 0", p, starts[p])
		}
	}
	t.Logf("%d records through local -> hybrid -> local; %d bytes in the object store", total, objects())
}
