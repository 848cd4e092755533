package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamline-dev/streamline/services/cluster"
)

// produced is what the broker acknowledged: the record and its offset.
type produced struct {
	key, value []byte
	headers    []kgo.RecordHeader
	offset     int64
}

// TestFranzGoRoundTripAllCodecs produces records with keys, headers and
// null values through an idempotent franz-go producer with each compression
// codec, and reads every one back byte-for-byte, in order, at the offset it
// was acknowledged with.
func TestFranzGoRoundTripAllCodecs(t *testing.T) {
	s := cluster.StartAllInOne(t)
	perCodec := 20000
	if !testing.Short() {
		perCodec = 100000
	}
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			topic := "roundtrip-" + name
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
			resp, err := adm.CreateTopic(ctx, 3, 1, nil, topic)
			if err != nil || resp.Err != nil {
				t.Fatalf("create topic: %v %v", err, resp.Err)
			}
			prod := newClient(t, s.KafkaAddr(), kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(topic))
			acked := produceAll(ctx, t, prod, perCodec, func(i int) *kgo.Record {
				r := &kgo.Record{Key: []byte("key-" + strconv.Itoa(i%97)), Value: []byte(fmt.Sprintf("value-%d-%s", i, bytes.Repeat([]byte("x"), i%50)))}
				switch i % 10 {
				case 0:
					r.Value = nil // null value (a tombstone)
				case 1:
					r.Key = nil
				}
				if i%3 == 0 {
					r.Headers = []kgo.RecordHeader{{Key: "h", Value: []byte(strconv.Itoa(i))}, {Key: "empty", Value: nil}}
				}
				return r
			})
			consumeAndCompare(ctx, t, s.KafkaAddr(), topic, acked)
			t.Logf("%s: %d records produced and read back in %d partitions", name, perCodec, len(acked))
		})
	}
}

func newClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produceAll produces n records and returns the acknowledged ones per
// partition, indexed by offset.
func produceAll(ctx context.Context, t testing.TB, cl *kgo.Client, n int, mk func(i int) *kgo.Record) map[int32]map[int64]produced {
	t.Helper()
	type ack struct {
		r   *kgo.Record
		err error
	}
	acks := make(chan ack, n)
	for i := 0; i < n; i++ {
		cl.Produce(ctx, mk(i), func(r *kgo.Record, err error) { acks <- ack{r, err} })
	}
	out := map[int32]map[int64]produced{}
	for i := 0; i < n; i++ {
		a := <-acks
		if a.err != nil {
			t.Fatalf("produce: %v", a.err)
		}
		m := out[a.r.Partition]
		if m == nil {
			m = map[int64]produced{}
			out[a.r.Partition] = m
		}
		if _, dup := m[a.r.Offset]; dup {
			t.Fatalf("two records acknowledged at %d/%d", a.r.Partition, a.r.Offset)
		}
		m[a.r.Offset] = produced{key: a.r.Key, value: a.r.Value, headers: a.r.Headers, offset: a.r.Offset}
	}
	return out
}

// consumeAndCompare reads every partition from the start and checks that
// each acknowledged record is there, byte for byte, at its offset, and that
// offsets within a partition are strictly increasing.
func consumeAndCompare(ctx context.Context, t testing.TB, addr, topic string, acked map[int32]map[int64]produced) {
	t.Helper()
	want := 0
	for _, m := range acked {
		want += len(m)
	}
	cons := newClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
	last := map[int32]int64{}
	got := 0
	for got < want {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("timed out after %d of %d records", got, want)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if prev, ok := last[r.Partition]; ok && r.Offset <= prev {
				t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, prev)
			}
			last[r.Partition] = r.Offset
			w, ok := acked[r.Partition][r.Offset]
			if !ok {
				t.Fatalf("record at %d/%d was never acknowledged", r.Partition, r.Offset)
			}
			if !bytes.Equal(w.key, r.Key) || !bytes.Equal(w.value, r.Value) || (w.value == nil) != (r.Value == nil) || (w.key == nil) != (r.Key == nil) {
				t.Fatalf("record %d/%d differs: key %q/%q value %q/%q", r.Partition, r.Offset, w.key, r.Key, w.value, r.Value)
			}
			if len(w.headers) != len(r.Headers) {
				t.Fatalf("record %d/%d: %d headers, want %d", r.Partition, r.Offset, len(r.Headers), len(w.headers))
			}
			for i := range w.headers {
				if w.headers[i].Key != r.Headers[i].Key || !bytes.Equal(w.headers[i].Value, r.Headers[i].Value) {
					t.Fatalf("record %d/%d header %d differs", r.Partition, r.Offset, i)
				}
			}
			got++
		})
	}
	if got != want {
		t.Fatalf("consumed %d, want %d", got, want)
	}
}
