package logrpc

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamline-dev/streamline/logsvc/partition"
	"github.com/streamline-dev/streamline/logsvc/storage/localstore"
	"github.com/streamline-dev/streamline/logsvc/storage/storagetest"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

func txnBatch(pid int64, epoch int16, seq int32, values ...string) []byte {
	s := recbatchtest.Values(time.Now().UnixMilli(), values...)
	s.ProducerID, s.ProducerEpoch, s.BaseSequence, s.Transactional = pid, epoch, seq, true
	return recbatchtest.Build(s)
}

func mustProduce(t *testing.T, p *partition.Partition, b []byte, want int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r := p.Produce(ctx, b); r.Err != nil || r.BaseOffset != want {
		t.Fatalf("produce: %+v, want offset %d", r, want)
	}
}

func errOf(c int32) *kerr.Error {
	if c == 0 {
		return nil
	}
	e, _ := kerr.ErrorForCode(int16(c)).(*kerr.Error)
	return e
}

// TestWriteTxnMarkers: one result per marker in request order, each routed
// and refused like a produce; the markers end the transactions, which
// Fetch (last_stable_offset at both levels, aborted_transactions for
// read_committed) and ListOffsets (read_committed latest) then reflect.
func TestWriteTxnMarkers(t *testing.T) {
	p := ledAt(t) // records 0-2
	id := p.Topic().ID
	other := meta.NewTopicID()
	s := NewServer(onePartition{p})
	ctx := context.Background()
	mustProduce(t, p, txnBatch(7, 1, 0, "t"), 3)

	markers := []struct {
		m       *logv1.TxnMarker
		wantErr *kerr.Error
		offset  int64
	}{
		{&logv1.TxnMarker{Topic: "t", TopicId: id[:], ProducerId: 7, ProducerEpoch: 1, Commit: false, CoordinatorEpoch: 9}, nil, 4},
		{&logv1.TxnMarker{Topic: "t", TopicId: id[:], Partition: 1, ProducerId: 7, ProducerEpoch: 1}, kerr.UnknownTopicOrPartition, -1},
		{&logv1.TxnMarker{Topic: "t", TopicId: other[:], ProducerId: 7, ProducerEpoch: 1}, kerr.UnknownTopicID, -1},
		{&logv1.TxnMarker{Topic: "t", ProducerId: 7, ProducerEpoch: 0}, kerr.InvalidProducerEpoch, -1},
		{&logv1.TxnMarker{Topic: "t", ProducerId: 8, ProducerEpoch: 0, Commit: true}, nil, 5}, // no open transaction: harmless
		{&logv1.TxnMarker{Topic: "t", ProducerId: 8, ProducerEpoch: 1 << 16}, kerr.InvalidRequest, -1},
	}
	req := &logv1.WriteTxnMarkersRequest{TimeoutMs: 10000}
	for _, c := range markers {
		req.Markers = append(req.Markers, c.m)
	}
	resp, err := s.WriteTxnMarkers(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResults()) != len(markers) {
		t.Fatalf("%d results for %d markers", len(resp.GetResults()), len(markers))
	}
	for i, c := range markers {
		r := resp.GetResults()[i]
		if r.GetTopic() != c.m.GetTopic() || r.GetPartition() != c.m.GetPartition() || r.GetProducerId() != c.m.GetProducerId() {
			t.Errorf("marker %d answered as %s-%d producer %d", i, r.GetTopic(), r.GetPartition(), r.GetProducerId())
		}
		if errOf(r.GetErrorCode()) != c.wantErr || r.GetOffset() != c.offset {
			t.Errorf("marker %d: %v %q offset %d, want %v offset %d", i, errOf(r.GetErrorCode()), r.GetErrorMessage(), r.GetOffset(), c.wantErr, c.offset)
		}
	}
	// The abort is stored as Kafka's marker with the coordinator epoch.
	rr := p.Read(4, 1<<20, true)
	if typ, ce, err := recbatch.ParseEndTxnMarker(rr.Records); err != nil || typ != recbatch.ControlAbort || ce != 9 {
		t.Fatalf("stored marker: type %d coordinator epoch %d %v", typ, ce, err)
	}

	// A second transaction stays open: the LSO holds at 6, below the
	// high watermark 7, at both isolation levels.
	mustProduce(t, p, txnBatch(9, 0, 0, "u"), 6)
	fetch := func(iso int32) *logv1.FetchPartitionResult {
		t.Helper()
		resp, err := s.Fetch(ctx, &logv1.FetchRequest{IsolationLevel: iso, MaxBytes: 1 << 20, Partitions: []*logv1.FetchPartition{
			{Topic: "t", TopicId: id[:], FetchOffset: 0, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1}}})
		if err != nil {
			t.Fatal(err)
		}
		r := resp.GetPartitions()[0]
		if r.GetErrorCode() != 0 {
			t.Fatalf("fetch: %v %s", errOf(r.GetErrorCode()), r.GetErrorMessage())
		}
		return r
	}
	lastOffset := func(b []byte) int64 {
		last := int64(-1)
		_, _ = recbatch.Iterate(b, false, func(h recbatch.Header, _ []byte) error { last = h.LastOffset(); return nil })
		return last
	}
	rc := fetch(1)
	if rc.GetHighWatermark() != 7 || rc.GetLastStableOffset() != 6 || lastOffset(rc.GetRecords()) != 5 {
		t.Fatalf("read_committed: HW %d LSO %d last record %d", rc.GetHighWatermark(), rc.GetLastStableOffset(), lastOffset(rc.GetRecords()))
	}
	if a := rc.GetAbortedTransactions(); len(a) != 1 || a[0].GetProducerId() != 7 || a[0].GetFirstOffset() != 3 {
		t.Fatalf("read_committed aborted transactions %v", a)
	}
	ru := fetch(0)
	if ru.GetHighWatermark() != 7 || ru.GetLastStableOffset() != 6 || lastOffset(ru.GetRecords()) != 6 || len(ru.GetAbortedTransactions()) != 0 {
		t.Fatalf("read_uncommitted: HW %d LSO %d last record %d aborted %v", ru.GetHighWatermark(), ru.GetLastStableOffset(),
			lastOffset(ru.GetRecords()), ru.GetAbortedTransactions())
	}
	for iso, want := range map[int32]int64{0: 7, 1: 6} {
		lo, err := s.ListOffsets(ctx, &logv1.ListOffsetsRequest{IsolationLevel: iso, Partitions: []*logv1.ListOffsetsPartition{
			{Topic: "t", TopicId: id[:], Timestamp: partition.LatestTimestamp, CurrentLeaderEpoch: -1}}})
		if err != nil {
			t.Fatal(err)
		}
		if r := lo.GetPartitions()[0]; r.GetErrorCode() != 0 || r.GetOffset() != want {
			t.Errorf("ListOffsets latest, isolation %d: %d %v, want %d", iso, r.GetOffset(), errOf(r.GetErrorCode()), want)
		}
	}
	if _, err := s.Fetch(ctx, &logv1.FetchRequest{IsolationLevel: 2}); err == nil {
		t.Fatal("fetch with isolation_level 2 accepted")
	}

	// Its commit releases the LSO.
	resp, err = s.WriteTxnMarkers(ctx, &logv1.WriteTxnMarkersRequest{Markers: []*logv1.TxnMarker{{Topic: "t", ProducerId: 9, ProducerEpoch: 0, Commit: true}}})
	if err != nil || resp.GetResults()[0].GetErrorCode() != 0 || resp.GetResults()[0].GetOffset() != 7 {
		t.Fatalf("commit: %v %v", resp, err)
	}
	if rc := fetch(1); rc.GetLastStableOffset() != 8 || lastOffset(rc.GetRecords()) != 7 {
		t.Fatalf("after the commit: LSO %d last record %d", rc.GetLastStableOffset(), lastOffset(rc.GetRecords()))
	}
}

// TestWriteTxnMarkersTimeoutAndNotLeader: a marker waits for the high
// watermark like an acks=all produce, so with a follower in the ISR that
// never fetches it answers REQUEST_TIMED_OUT at timeout_ms; a partition no
// longer led answers NOT_LEADER_OR_FOLLOWER.
func TestWriteTxnMarkersTimeoutAndNotLeader(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := localstore.Open(localstore.Options{DataDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	spec := storagetest.Spec("t")
	lg, err := eng.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	p, err := partition.Open(partition.Config{Topic: spec.Topic, LeaderEpoch: 1, Log: lg, Logger: quiet, NodeID: "n1",
		Record: meta.Partition{Leader: "n1", LeaderEpoch: 1, Replicas: []string{"n1", "n2"}, ISR: []string{"n1", "n2"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	s := NewServer(onePartition{p})
	req := &logv1.WriteTxnMarkersRequest{TimeoutMs: 200, Markers: []*logv1.TxnMarker{{Topic: "t", ProducerId: 1, ProducerEpoch: 0, Commit: false}}}
	start := time.Now()
	resp, err := s.WriteTxnMarkers(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.GetResults()[0]; errOf(r.GetErrorCode()) != kerr.RequestTimedOut || r.GetOffset() != -1 {
		t.Fatalf("unreplicated marker: %v %q offset %d", errOf(r.GetErrorCode()), r.GetErrorMessage(), r.GetOffset())
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Fatalf("answered after %v, want about timeout_ms", d)
	}
	p.Close()
	resp, err = s.WriteTxnMarkers(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.GetResults()[0]; errOf(r.GetErrorCode()) != kerr.NotLeaderForPartition {
		t.Fatalf("closed partition: %v %q", errOf(r.GetErrorCode()), r.GetErrorMessage())
	}
}
