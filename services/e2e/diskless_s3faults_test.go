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
	"github.com/streamline-dev/streamline/shared/objstore/objstoretest"
)

// TestDisklessSurvivesS3Outage runs a diskless topic on a real S3-protocol
// server (gofakes3) behind a fault proxy, and makes S3 answer 503 SlowDown
// to everything for 10 s in the middle of an idempotent produce load.
// Producers see backpressure and retriable errors, never a false ack; once
// S3 is back everything resumes without a restart, and every acknowledged
// record is read back exactly once at its offset.
func TestDisklessSurvivesS3Outage(t *testing.T) {
	s3 := objstoretest.StartGofakes3(t)
	proxy, endpoint := objstoretest.StartFaultProxy(t, s3)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	url := fmt.Sprintf("s3://%s?endpoint=%s&region=us-east-1&path_style=true&max_attempts=3&attempt_timeout=2s&max_backoff=500ms",
		objstoretest.BucketName, endpoint)
	s := cluster.StartAllInOne(t, cluster.WithObjectStore(url))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic = "s3-outage"
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	resp, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"storage.mode": kmsg.StringPtr("diskless")}, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	prod := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))
	var (
		mu    sync.Mutex
		acked = map[int32]map[int64]produced{}
		wg    sync.WaitGroup
		fails int
	)
	produce := func(from, n int) {
		for i := from; i < from+n; i++ {
			wg.Add(1)
			prod.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("s3-%05d", i))}, func(r *kgo.Record, err error) {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					fails++
					return
				}
				if acked[r.Partition] == nil {
					acked[r.Partition] = map[int64]produced{}
				}
				acked[r.Partition][r.Offset] = produced{value: r.Value, offset: r.Offset}
			})
			time.Sleep(time.Millisecond)
		}
	}
	produce(0, 1000)
	proxy.InjectFor(objstoretest.SlowDown, 10*time.Second)
	outage := time.Now()
	produce(1000, 3000) // ~3+ s of produce into the outage
	wg.Wait()
	t.Logf("outage: %d SlowDowns injected; load finished %v after it began", proxy.Injected(objstoretest.SlowDown), time.Since(outage).Round(time.Millisecond))
	if proxy.Injected(objstoretest.SlowDown) == 0 {
		t.Fatal("the outage injected nothing: the test did not test anything")
	}
	if time.Since(outage) < 10*time.Second {
		t.Fatalf("produce load finished %v into a 10 s S3 outage: something was acknowledged without S3", time.Since(outage))
	}
	total := 0
	for _, m := range acked {
		total += len(m)
	}
	if total != 4000 || fails != 0 {
		t.Fatalf("%d acknowledged, %d failed: after S3 recovered every record should have gone through", total, fails)
	}
	consumeAndCompare(ctx, t, s.KafkaAddr(), topic, acked)
}

// TestDisklessHedgesAHungUpload makes the object store hold one PUT
// forever (until the client's 60 s attempt timeout). The produce waiting on
// that flush must still be acknowledged within 30 s, which only a hedged
// second upload of the same flush can do.
func TestDisklessHedgesAHungUpload(t *testing.T) {
	s3 := objstoretest.StartGofakes3(t)
	proxy, endpoint := objstoretest.StartFaultProxy(t, s3)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	url := fmt.Sprintf("s3://%s?endpoint=%s&region=us-east-1&path_style=true&attempt_timeout=60s", objstoretest.BucketName, endpoint)
	s := cluster.StartAllInOne(t, cluster.WithObjectStore(url))
	// Cleanups run last-in first-out: release a held PUT before the server
	// shuts down, so a failure here does not hang the shutdown.
	t.Cleanup(proxy.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"storage.mode": kmsg.StringPtr("diskless")}, "hedge")
	if err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	prod := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic("hedge"))
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("warm")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	proxy.InjectNext(objstoretest.Hang, 1)
	// Produce and wait at most 30 s (franz-go would wait for the hung
	// idempotent record's outcome forever, so don't use ProduceSync).
	type res struct {
		r   *kgo.Record
		err error
	}
	done := make(chan res, 1)
	prod.Produce(ctx, &kgo.Record{Value: []byte("hedged")}, func(r *kgo.Record, err error) { done <- res{r, err} })
	var r *kgo.Record
	select {
	case got := <-done:
		if got.err != nil {
			t.Fatalf("produce behind a hung PUT: %v", got.err)
		}
		r = got.r
	case <-time.After(30 * time.Second):
		t.Fatal("produce behind a hung PUT not acknowledged in 30 s: the upload was not hedged")
	}
	if proxy.Injected(objstoretest.Hang) != 1 {
		t.Fatalf("the hang was never injected (%d)", proxy.Injected(objstoretest.Hang))
	}
	if r.Offset != 1 {
		t.Fatalf("hedged record at offset %d, want 1", r.Offset)
	}
}
