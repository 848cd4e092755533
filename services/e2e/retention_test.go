package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/gateway"
	"github.com/streamline-dev/streamline/logsvc"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
)

// TestRetentionDeletesOldSegments runs etcd, a log service checking
// retention every 200 ms and a gateway in-process, and proves through the
// Kafka protocol and on disk that:
//   - retention.bytes deletes whole old segments, keeping at least
//     retention.bytes and at most one segment more; the log start offset
//     moves to the first kept segment, consumers from the start see only
//     the newest records, all of them, and a fetch at 0 is
//     OFFSET_OUT_OF_RANGE;
//   - retention.ms deletes every segment (the active one too) whose
//     records are older than the limit: start == end, the end is
//     unchanged, and the next record gets the old end offset;
//   - both logs keep their start and end offsets across a log-service
//     restart (the WAL still holds the deleted records).
func TestRetentionDeletesOldSegments(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	etcd := metatest.Start(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dataDir := t.TempDir()
	startNode := func() *logsvc.Node {
		n, err := logsvc.New(logsvc.Config{ID: "logsvc-1", DataDir: dataDir, Etcd: etcd.Client,
			RetentionCheckInterval: 200 * time.Millisecond, Logger: quiet})
		if err == nil {
			err = n.Start(ctx)
		}
		if err != nil {
			t.Fatalf("start logsvc: %v", err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	node := startNode()
	gw, err := gateway.New(gateway.Config{NodeID: 1, ListenAddr: "127.0.0.1:0", AutoCreateTopics: true, Etcd: etcd.Client, Logger: quiet})
	if err == nil {
		err = gw.Start(ctx)
	}
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	t.Cleanup(func() { gw.Close() })
	addr := gw.Addr().String()
	adm := kadm.NewClient(newClient(t, addr))
	create := func(topic string, configs map[string]*string) string {
		resp, err := adm.CreateTopic(ctx, 1, 1, configs, topic)
		if err != nil || resp.Err != nil {
			t.Fatalf("create %s: %v %v", topic, err, resp.Err)
		}
		return filepath.Join(dataDir, "partitions", hex.EncodeToString(resp.ID[:])+"-0")
	}
	s := func(v string) *string { return &v }
	prod := newClient(t, addr, kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))

	// retention.bytes: one 256-byte record per batch (~330 bytes), so a
	// 1 KiB segment holds 3 batches and 256 records roll ~85 segments.
	const bytesTopic, n = "ret-bytes", 256
	dir := create(bytesTopic, map[string]*string{"segment.bytes": s("1024"), "retention.bytes": s("4096")})
	values := map[int64]string{}
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("%05d-%0251d", i, 0)
		r, err := prod.ProduceSync(ctx, &kgo.Record{Topic: bytesTopic, Value: []byte(v)}).First()
		if err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		values[r.Offset] = v
	}
	start := waitStart(ctx, t, adm, bytesTopic, func(o int64) bool { return o > 0 })
	if end := listOffsets(ctx, t, adm, bytesTopic, false)[0]; end != n {
		t.Fatalf("end offset %d after retention, want %d", end, n)
	}
	segs, sizes := logFiles(t, dir)
	total := int64(0)
	for _, sz := range sizes {
		total += sz
	}
	if segs[0] != fmt.Sprintf("%020d.log", start) {
		t.Errorf("oldest segment file %s, want the one at log start %d", segs[0], start)
	}
	if total < 4096 || total-sizes[0] >= 4096 {
		t.Errorf("%d segments hold %d bytes (oldest %d): want >= 4096 kept and the oldest needed for that", len(segs), total, sizes[0])
	}
	t.Logf("retention.bytes: start %d, %d segments, %d bytes kept", start, len(segs), total)

	cons := newClient(t, addr, kgo.ConsumeTopics(bytesTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	for next := start; next < n; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed up to %d of [%d, %d)", next, start, n)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset != next || string(r.Value) != values[r.Offset] {
				t.Fatalf("consumed offset %d (%.5s), want %d (%.5s)", r.Offset, r.Value, next, values[next])
			}
			next++
		})
	}
	expectOutOfRange(t, addr, bytesTopic, 0, start)

	// retention.ms: records an hour old all go, the active segment too.
	const msTopic = "ret-ms"
	create(msTopic, map[string]*string{"retention.ms": s("1000")})
	old := time.Now().Add(-time.Hour)
	produceAll(ctx, t, prod, 100, func(i int) *kgo.Record {
		return &kgo.Record{Topic: msTopic, Value: []byte(fmt.Sprint(i)), Timestamp: old}
	})
	if got := waitStart(ctx, t, adm, msTopic, func(o int64) bool { return o == 100 }); got != 100 {
		t.Fatalf("start offset %d", got)
	}
	if end := listOffsets(ctx, t, adm, msTopic, false)[0]; end != 100 {
		t.Fatalf("end offset %d after time retention, want 100", end)
	}
	expectOutOfRange(t, addr, msTopic, 0, 100)

	// Restart the log service: offsets survive, nothing deleted comes back.
	node.Close()
	startNode()
	for topic, want := range map[string][2]int64{bytesTopic: {start, n}, msTopic: {100, 100}} {
		got := [2]int64{waitStart(ctx, t, adm, topic, func(int64) bool { return true }), listOffsets(ctx, t, adm, topic, false)[0]}
		if got != want {
			t.Errorf("%s after restart: [start, end] = %v, want %v", topic, got, want)
		}
	}
	// A future timestamp keeps it clear of retention.ms.
	r, err := prod.ProduceSync(ctx, &kgo.Record{Topic: msTopic, Value: []byte("new"), Timestamp: time.Now().Add(time.Hour)}).First()
	if err != nil || r.Offset != 100 {
		t.Fatalf("record after time retention: offset %v, err %v; want offset 100", r, err)
	}
}

// waitStart polls the log start offset of partition 0 until ok holds and
// it has not changed for a second (five retention checks), or fails after
// 30 s.
func waitStart(ctx context.Context, t testing.TB, adm *kadm.Client, topic string, ok func(int64) bool) int64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last, since := int64(-1), time.Now()
	for {
		o := int64(-1)
		lo, err := adm.ListStartOffsets(ctx, topic)
		if err == nil && lo.Error() == nil {
			o = lo[topic][0].Offset
		}
		if o != last {
			last, since = o, time.Now()
		}
		if ok(o) && time.Since(since) >= time.Second {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: log start offset %d after 30s (err %v)", topic, o, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logFiles lists a partition directory's segment .log files, oldest first,
// with their sizes.
func logFiles(t testing.TB, dir string) ([]string, []int64) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no segments in %s: %v", dir, err)
	}
	sort.Strings(names)
	sizes := make([]int64, len(names))
	for i, name := range names {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		names[i], sizes[i] = filepath.Base(name), fi.Size()
	}
	return names, sizes
}

// expectOutOfRange fetches partition 0 at offset (Fetch v11, by topic
// name) and expects OFFSET_OUT_OF_RANGE with the given log start offset.
func expectOutOfRange(t testing.TB, addr, topic string, offset, logStart int64) {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.SessionEpoch = -1, 0, 1, 1<<20, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch, rp.LogStartOffset = 0, offset, 1<<20, -1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := dialRaw(t, addr).roundTrip(req).(*kmsg.FetchResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch %s@%d: malformed response %+v", topic, offset, resp)
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != kerr.OffsetOutOfRange || p.LogStartOffset != logStart {
		t.Fatalf("fetch %s@%d: error %v, log start %d; want OFFSET_OUT_OF_RANGE, %d", topic, offset, err, p.LogStartOffset, logStart)
	}
}
