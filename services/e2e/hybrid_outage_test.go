package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/logsvc/storage/hybridstore"
	"github.com/streamline-dev/streamline/services/allinone"
	"github.com/streamline-dev/streamline/services/cluster"
	"github.com/streamline-dev/streamline/shared/objstore/objstoretest"
)

// TestHybridSurvivesS3Outage: a hybrid topic on a real S3-protocol server
// (gofakes3) behind a fault proxy, with a 512 KiB bound on the bytes its
// partition may hold that the tier does not have. During a 15 s outage
// (every S3 request answered 503 SlowDown) produce goes on until the local
// copy reaches the bound; then produce is held back and a producer that
// does not retry gets KAFKA_STORAGE_ERROR - never a false ack. Once S3 is
// back uploads resume by themselves, the retrying producer's records all
// go through, and every acknowledged record reads back once from offset 0.
func TestHybridSurvivesS3Outage(t *testing.T) {
	s3 := objstoretest.StartGofakes3(t)
	proxy, endpoint := objstoretest.StartFaultProxy(t, s3)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	url := fmt.Sprintf("s3://%s?endpoint=%s&region=us-east-1&path_style=true&max_attempts=2&attempt_timeout=2s&max_backoff=200ms",
		objstoretest.BucketName, endpoint)
	dataDir := t.TempDir()
	const bound = 512 << 10
	s := cluster.StartAllInOne(t, cluster.WithObjectStore(url), cluster.WithDataDir(dataDir), func(c *allinone.Config) {
		c.Hybrid = hybridstore.Options{MaxPendingBytes: bound, UploadInterval: 50 * time.Millisecond}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const topic = "hybrid-outage"
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"storage.mode": kmsg.StringPtr("hybrid"),
		"segment.bytes": kmsg.StringPtr("65536"), "local.retention.bytes": kmsg.StringPtr("65536")}, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	var (
		mu    sync.Mutex
		acked = map[int32]map[int64]produced{}
	)
	record := func(r *kgo.Record) {
		mu.Lock()
		defer mu.Unlock()
		if acked[r.Partition] == nil {
			acked[r.Partition] = map[int64]produced{}
		}
		acked[r.Partition][r.Offset] = produced{value: r.Value, offset: r.Offset}
	}
	value := func(i int) []byte { return fmt.Appendf(nil, "outage-%06d-%01000d", i, 0) }
	prod := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordDeliveryTimeout(3*time.Minute))
	produce := func(from, n int) {
		for i := from; i < from+n; i += 20 {
			var recs []*kgo.Record
			for j := i; j < i+20; j++ {
				recs = append(recs, &kgo.Record{Value: value(j)})
			}
			for _, r := range prod.ProduceSync(ctx, recs...) {
				if r.Err != nil {
					t.Fatalf("retrying producer: %v", r.Err)
				}
				record(r.Record)
			}
		}
	}
	produce(0, 400)

	proxy.InjectFor(objstoretest.SlowDown, 15*time.Second)
	outage := time.Now()
	// A producer that does not retry reaches the bound and is refused.
	probe := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.LeaderAck()), kgo.RecordRetries(0))
	refused := 0
	for i := 100000; refused == 0 && time.Since(outage) < 12*time.Second; i++ {
		r := probe.ProduceSync(ctx, &kgo.Record{Value: value(i)})[0]
		switch {
		case r.Err == nil:
			record(r.Record)
		case errors.Is(r.Err, kerr.KafkaStorageError):
			refused++
		default:
			t.Fatalf("probe produce during the outage: %v", r.Err)
		}
	}
	if refused == 0 {
		t.Fatalf("no KAFKA_STORAGE_ERROR within 12 s of an S3 outage with a %d-byte bound", bound)
	}
	local := dirBytes(t, filepath.Join(dataDir, "logsvc", "partitions"), ".log")
	t.Logf("refused %v into the outage with %d bytes of local segments (bound %d)", time.Since(outage).Round(time.Millisecond), local, bound)
	if local > bound+3*65536 {
		t.Fatalf("local segments hold %d bytes, beyond the %d-byte bound plus the segments being written", local, bound)
	}
	// The retrying producer rides the outage out: held back, then through.
	produce(1000, 400)
	if time.Since(outage) < 15*time.Second && proxy.Injected(objstoretest.SlowDown) == 0 {
		t.Fatal("the outage injected nothing")
	}
	waitFor(ctx, t, func() bool {
		return dirBytes(t, filepath.Join(dataDir, "logsvc", "partitions"), ".log") <= 4*65536
	}, "the local copy shrinks back once uploads resume")
	consumeAndCompare(ctx, t, s.KafkaAddr(), topic, acked)
}
