package partition

import (
	"strings"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/logsvc/storage/storagetest"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

type epochAnswer struct {
	epoch int32
	end   int64
}

// TestEpochCacheSemantics pins Kafka's LeaderEpochFileCache.endOffsetFor
// rules on a hand-built history.
func TestEpochCacheSemantics(t *testing.T) {
	history := []epochEntry{{0, 0}, {2, 10}, {5, 30}}
	for _, c := range []struct {
		name      string
		entries   []epochEntry
		requested int32
		current   int32
		logStart  int64
		end       int64
		want      epochAnswer
	}{
		{"current epoch ends at the log end", history, 5, 5, 0, 40, epochAnswer{5, 40}},
		{"epoch between entries: floor epoch, next start", history, 4, 5, 0, 40, epochAnswer{2, 30}},
		{"recorded older epoch", history, 2, 5, 0, 40, epochAnswer{2, 30}},
		{"gap after the first epoch", history, 1, 5, 0, 40, epochAnswer{0, 10}},
		{"first epoch", history, 0, 5, 0, 40, epochAnswer{0, 10}},
		{"negative is undefined", history, -1, 5, 0, 40, epochAnswer{-1, -1}},
		{"newer than the leader is undefined", history, 6, 5, 0, 40, epochAnswer{-1, -1}},
		// A new leader that has not written yet: its epoch starts at the
		// log end.
		{"last written epoch under a newer leader", history, 5, 7, 0, 40, epochAnswer{5, 40}},
		{"skipped epoch under a newer leader", history, 6, 7, 0, 40, epochAnswer{5, 40}},
		{"new leader's own epoch", history, 7, 7, 0, 40, epochAnswer{7, 40}},
		// Retention moved the log start to 15: epoch 0 is gone and epoch 2
		// now starts at 15.
		{"retention: removed epoch", history, 0, 5, 15, 40, epochAnswer{0, 15}},
		{"retention: removed gap", history, 1, 5, 15, 40, epochAnswer{1, 15}},
		{"retention: clamped epoch", history, 2, 5, 15, 40, epochAnswer{2, 30}},
		{"retention at an epoch start", history, 0, 5, 10, 40, epochAnswer{0, 10}},
		{"retention of everything", history, 2, 5, 40, 40, epochAnswer{2, 40}},
		// Nothing recorded (empty log, or only pre-epoch batches).
		{"empty: current", nil, 0, 0, 0, 0, epochAnswer{0, 0}},
		{"empty: older than the leader", nil, 1, 3, 0, 8, epochAnswer{1, 8}},
		{"empty: newer than the leader", nil, 4, 3, 0, 8, epochAnswer{-1, -1}},
		{"empty: negative", nil, -1, 3, 0, 8, epochAnswer{-1, -1}},
	} {
		ec := &epochCache{entries: append([]epochEntry(nil), c.entries...)}
		e, off := ec.endOffsetFor(c.requested, c.current, c.logStart, c.end)
		if got := (epochAnswer{e, off}); got != c.want {
			t.Errorf("%s: epoch %d in %v (current %d, log [%d, %d)): got %+v, want %+v",
				c.name, c.requested, c.entries, c.current, c.logStart, c.end, got, c.want)
		}
	}
}

func TestEpochCacheObserve(t *testing.T) {
	var ec epochCache
	for _, b := range []epochEntry{
		{-1, 0},        // before epochs: no entry
		{1, 4}, {1, 6}, // same epoch: only its first batch counts
		{0, 8}, // older epoch: ignored
		{4, 9},
		{4, 12},
	} {
		ec.observe(b.epoch, b.start)
	}
	want := []epochEntry{{1, 4}, {4, 9}}
	if len(ec.entries) != len(want) || ec.entries[0] != want[0] || ec.entries[1] != want[1] {
		t.Fatalf("entries %v, want %v", ec.entries, want)
	}
}

func (f *fixture) wantEpochs(when string, want map[int32]epochAnswer) {
	f.t.Helper()
	for requested, w := range want {
		e, off := f.p.EndOffsetForEpoch(requested)
		if got := (epochAnswer{e, off}); got != w {
			f.t.Errorf("%s: epoch %d: got %+v, want %+v", when, requested, got, w)
		}
	}
}

func (f *fixture) mustProduce(b []byte) int64 {
	f.t.Helper()
	r := f.produce(b)
	if r.Err != nil {
		f.t.Fatalf("produce: %v %s", r.Err, r.Message)
	}
	return r.BaseOffset
}

// TestEndOffsetForEpochAcrossLeaderChanges leads one log at epochs 3, 5
// and 7 (a reopen is a leader change) and checks the history is kept by
// Submit and rebuilt by Open from the stored batches.
func TestEndOffsetForEpochAcrossLeaderChanges(t *testing.T) {
	f := newFixture(t)
	f.mustProduce(recbatchtest.Build(recbatchtest.Values(1, "a", "b")))
	f.mustProduce(recbatchtest.Build(recbatchtest.Values(1, "c")))
	f.wantEpochs("epoch 3", map[int32]epochAnswer{3: {3, 3}, 2: {2, 0}, 4: {-1, -1}, -1: {-1, -1}})

	f.epoch = 5
	f.reopen()
	// Epoch 5 has written nothing yet: epoch 3 ends at the log end.
	f.wantEpochs("epoch 5 before writing", map[int32]epochAnswer{5: {5, 3}, 4: {3, 3}, 3: {3, 3}, 2: {2, 0}, 6: {-1, -1}})
	if base := f.mustProduce(recbatchtest.Build(recbatchtest.Values(1, "d", "e"))); base != 3 {
		t.Fatalf("epoch 5 wrote at %d", base)
	}
	f.mustProduce(recbatchtest.Build(recbatchtest.Values(1, "f")))
	f.wantEpochs("epoch 5", map[int32]epochAnswer{5: {5, 6}, 4: {3, 3}, 3: {3, 3}, 2: {2, 0}, 6: {-1, -1}})

	f.epoch = 7
	f.reopen()
	f.wantEpochs("epoch 7", map[int32]epochAnswer{7: {7, 6}, 6: {5, 6}, 5: {5, 6}, 4: {3, 3}, 3: {3, 3}, 2: {2, 0}, 8: {-1, -1}})

	// The stored batches carry the epochs the history was built from.
	rr := f.p.Read(0, 1<<20, true)
	var epochs []int32
	if _, err := recbatch.Iterate(rr.Records, true, func(h recbatch.Header, _ []byte) error {
		epochs = append(epochs, h.PartitionLeaderEpoch)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(epochs) != 4 || epochs[0] != 3 || epochs[1] != 3 || epochs[2] != 5 || epochs[3] != 5 {
		t.Fatalf("stored batch epochs %v", epochs)
	}
}

// TestEndOffsetForEpochWhileHighWatermarkIsHeldBack: a leader that takes
// over with followers in its ISR holds its high watermark at the log start
// until they report; its epochs still end at its log end (Kafka's answer),
// or a consumer that read up to the old high watermark would be told its
// records were truncated and rewind (the campaign's committed-offset
// regression).
func TestEndOffsetForEpochWhileHighWatermarkIsHeldBack(t *testing.T) {
	f := newFixture(t)
	f.mustProduce(recbatchtest.Build(recbatchtest.Values(1, "a", "b")))
	f.mustProduce(recbatchtest.Build(recbatchtest.Values(1, "c")))
	f.epoch, f.node = 5, "n1"
	f.record = meta.Partition{Leader: "n1", LeaderEpoch: 5, Replicas: []string{"n1", "n2"}, ISR: []string{"n1", "n2"}}
	f.reopen()
	if hw := f.p.HighWatermark(); hw != 0 {
		t.Fatalf("high watermark %d before the follower reports, want 0 (held back)", hw)
	}
	f.wantEpochs("held back", map[int32]epochAnswer{5: {5, 3}, 4: {3, 3}, 3: {3, 3}, 6: {-1, -1}})
}

// TestEndOffsetForEpochPreEpochBatches: batches stamped -1 (written before
// leader epochs) start no history entry.
func TestEndOffsetForEpochPreEpochBatches(t *testing.T) {
	f := newFixture(t)
	f.epoch = -1
	f.reopen()
	f.mustProduce(recbatchtest.Build(recbatchtest.Values(1, "a", "b")))
	f.wantEpochs("leader without epochs", map[int32]epochAnswer{-1: {-1, -1}, 0: {-1, -1}})

	f.epoch = 2
	f.reopen()
	f.mustProduce(recbatchtest.Build(recbatchtest.Values(1, "c")))
	f.epoch = 3
	f.reopen()
	// Epoch 2 starts at its first batch (2), not at the log start: the
	// -1 batches before it belong to no epoch.
	f.wantEpochs("epoch 3", map[int32]epochAnswer{3: {3, 3}, 2: {2, 3}, 1: {1, 2}, 0: {0, 2}, -1: {-1, -1}})
}

// TestEndOffsetForEpochAfterRetention: retention removes the segment of
// the oldest batch; the oldest surviving epoch then starts at the new log
// start, both in the running partition and after a reopen.
func TestEndOffsetForEpochAfterRetention(t *testing.T) {
	f := &fixture{t: t, dir: t.TempDir(), spec: storagetest.Spec("p"), epoch: 3}
	// One batch per segment; retention by age removes the old one.
	f.spec.Topic.Configs = map[string]string{meta.ConfigSegmentBytes: "1024", meta.ConfigRetentionMs: "3600000"}
	f.open()
	big := strings.Repeat("x", 400)
	now := time.Now().UnixMilli()
	f.mustProduce(recbatchtest.Build(recbatchtest.Values(1000, big, big))) // 0-1, old
	f.mustProduce(recbatchtest.Build(recbatchtest.Values(now, big)))       // 2
	f.epoch = 5
	f.reopen()
	f.mustProduce(recbatchtest.Build(recbatchtest.Values(now, big))) // 3
	before := map[int32]epochAnswer{5: {5, 4}, 4: {3, 3}, 3: {3, 3}, 2: {2, 0}}
	f.wantEpochs("before retention", before)

	if err := f.p.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	if s := f.p.LogStartOffset(); s != 2 {
		t.Fatalf("log start %d after retention, want 2", s)
	}
	after := map[int32]epochAnswer{5: {5, 4}, 4: {3, 3}, 3: {3, 3}, 2: {2, 2}, 0: {0, 2}}
	f.wantEpochs("after retention", after)
	f.reopen()
	f.wantEpochs("reopened after retention", after)
}
