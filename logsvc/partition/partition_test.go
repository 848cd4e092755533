package partition

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/logsvc/storage/localstore"
	"github.com/streamline-dev/streamline/logsvc/storage/storagetest"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

type fixture struct {
	t    *testing.T
	dir  string
	spec storage.PartitionSpec
	eng  *localstore.Engine
	log  storage.Log
	p    *Partition
	// epoch is the leader epoch open leads at (3 unless a test changes it
	// before reopen, as a leader change would).
	epoch int32
	// node and record are the leader's id and the partition record open
	// leads under (none: the leader alone).
	node   string
	record meta.Partition
	// checkpoint is the engine's checkpoint interval (0: its default).
	checkpoint time.Duration
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, dir: t.TempDir(), spec: storagetest.Spec("p"), epoch: 3}
	f.open()
	return f
}

func (f *fixture) open() {
	f.t.Helper()
	eng, err := localstore.Open(localstore.Options{DataDir: f.dir, Logger: quiet(), CheckpointInterval: f.checkpoint})
	if err != nil {
		f.t.Fatal(err)
	}
	f.eng = eng
	if f.log, err = eng.Open(f.spec); err != nil {
		f.t.Fatal(err)
	}
	if f.p, err = Open(Config{Topic: f.spec.Topic, LeaderEpoch: f.epoch, Log: f.log, Logger: quiet(), NodeID: f.node, Record: f.record}); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(f.close)
}

func (f *fixture) close() {
	f.p.Close()
	f.eng.Close()
}

func (f *fixture) reopen() {
	f.close()
	f.open()
}

func idem(pid int64, epoch int16, seq int32, values ...string) []byte {
	s := recbatchtest.Values(time.Now().UnixMilli(), values...)
	s.ProducerID, s.ProducerEpoch, s.BaseSequence = pid, epoch, seq
	return recbatchtest.Build(s)
}

func (f *fixture) produce(b []byte) ProduceResult {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return f.p.Produce(ctx, b)
}

func TestProduceAssignsOffsetsAndReads(t *testing.T) {
	f := newFixture(t)
	r1 := f.produce(idem(1, 0, 0, "a", "b"))
	r2 := f.produce(idem(1, 0, 2, "c"))
	if r1.Err != nil || r2.Err != nil || r1.BaseOffset != 0 || r2.BaseOffset != 2 {
		t.Fatalf("results %+v %+v", r1, r2)
	}
	if f.p.HighWatermark() != 3 {
		t.Fatalf("hwm %d", f.p.HighWatermark())
	}
	rr := f.p.Read(2, 1<<20, true)
	h, err := recbatch.Validate(rr.Records)
	if rr.Err != nil || err != nil || h.BaseOffset != 2 || h.PartitionLeaderEpoch != 3 {
		t.Fatalf("read %+v header %+v err %v", rr, h, err)
	}
	if rr := f.p.Read(4, 100, true); rr.Err != kerr.OffsetOutOfRange {
		t.Fatalf("read past end: %v", rr.Err)
	}
	if rr := f.p.Read(3, 100, true); rr.Err != nil || len(rr.Records) != 0 {
		t.Fatalf("read at end: %+v", rr)
	}
}

func TestIdempotenceSurvivesReopen(t *testing.T) {
	f := newFixture(t)
	first := f.produce(idem(7, 0, 0, "x", "y"))
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	// A retry is answered with the original offset and not written again.
	if dup := f.produce(idem(7, 0, 0, "x", "y")); dup.Err != nil || dup.BaseOffset != first.BaseOffset {
		t.Fatalf("duplicate: %+v", dup)
	}
	if f.p.HighWatermark() != 2 {
		t.Fatalf("duplicate was appended: hwm %d", f.p.HighWatermark())
	}
	f.reopen()
	if dup := f.produce(idem(7, 0, 0, "x", "y")); dup.Err != nil || dup.BaseOffset != first.BaseOffset {
		t.Fatalf("duplicate after reopen: %+v", dup)
	}
	if r := f.produce(idem(7, 0, 5, "z")); r.Err != kerr.OutOfOrderSequenceNumber {
		t.Fatalf("gap after reopen: %v", r.Err)
	}
	if r := f.produce(idem(7, 1, 0, "z")); r.Err != nil || r.BaseOffset != 2 {
		t.Fatalf("new epoch: %+v", r)
	}
	if r := f.produce(idem(7, 0, 2, "old")); r.Err != kerr.InvalidProducerEpoch {
		t.Fatalf("fenced epoch: %v", r.Err)
	}
}

func TestRejectsBadBatches(t *testing.T) {
	f := newFixture(t)
	good := recbatchtest.Build(recbatchtest.Values(1, "a"))
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)-1] ^= 1
	for name, c := range map[string]struct {
		b    []byte
		want *kerr.Error
	}{
		"corrupt":   {corrupt, kerr.CorruptMessage},
		"truncated": {good[:len(good)-2], kerr.InvalidRecord},
		"too large": {recbatchtest.Build(recbatchtest.Values(1, string(make([]byte, 2<<20)))), kerr.MessageTooLarge},
	} {
		if r := f.produce(c.b); r.Err != c.want {
			t.Errorf("%s: %v, want %v", name, r.Err, c.want)
		}
	}
	if f.p.HighWatermark() != 0 {
		t.Fatalf("rejected batches were written: hwm %d", f.p.HighWatermark())
	}
}

func TestLongPollWakesOnAppend(t *testing.T) {
	f := newFixture(t)
	ch, appended := f.p.Changed(), f.p.Appended()
	go f.produce(recbatchtest.Build(recbatchtest.Values(1, "a")))
	for _, c := range []<-chan struct{}{appended, ch} {
		select {
		case <-c:
		case <-time.After(10 * time.Second):
			t.Fatal("no wake-up after append")
		}
	}
	if f.p.HighWatermark() != 1 {
		t.Fatalf("hwm %d after wake-up", f.p.HighWatermark())
	}
}

// TestCloseWakesLongPolls: closing the partition wakes consumer fetches,
// acks=all waiters and follower fetches at once, so they answer
// NOT_LEADER instead of waiting out their timeouts.
func TestCloseWakesLongPolls(t *testing.T) {
	f := newFixture(t)
	hwm, appended := f.p.Changed(), f.p.Appended()
	f.p.Close()
	for name, ch := range map[string]<-chan struct{}{"Changed": hwm, "Appended": appended} {
		select {
		case <-ch:
		default:
			t.Errorf("%s not closed by Close", name)
		}
	}
}

func TestListOffset(t *testing.T) {
	f := newFixture(t)
	b := recbatchtest.Build(recbatchtest.Values(5000, "a", "b", "c"))
	if r := f.produce(b); r.Err != nil {
		t.Fatal(r.Err)
	}
	for _, c := range []struct{ ts, off int64 }{{LatestTimestamp, 3}, {EarliestTimestamp, 0}, {5001, 1}, {9999, -1}} {
		off, _, e, _ := f.p.ListOffset(c.ts)
		if e != nil || off != c.off {
			t.Errorf("ts %d: offset %d err %v, want %d", c.ts, off, e, c.off)
		}
	}
}
