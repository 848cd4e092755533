package conformance

import (
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/logsvc/storage/disklessstore"
	"github.com/streamline-dev/streamline/logsvc/storage/hybridstore"
	"github.com/streamline-dev/streamline/logsvc/storage/localstore"
	"github.com/streamline-dev/streamline/logsvc/storage/storagetest"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/recbatch"
)

// hybridEngines is a hybrid engine with its local and tier engines, over
// one data directory, a real etcd, a directory object store and a real
// uploader. Opened logs lead at once (their high watermark is their end)
// and their topics get the configs of topicConfigs where not set.
type hybridEngines struct {
	*hybridstore.Engine
	local        *localstore.Engine
	tier         *disklessstore.Engine
	topicConfigs map[string]string
}

func (e *hybridEngines) Open(spec storage.PartitionSpec) (storage.Log, error) {
	spec.Topic.StorageMode = meta.StorageHybrid
	cfg := maps.Clone(e.topicConfigs)
	maps.Copy(cfg, spec.Topic.Configs)
	spec.Topic.Configs = cfg
	l, err := e.Engine.Open(spec)
	if err != nil {
		return nil, err
	}
	l.(storage.Tiered).Lead(l.EndOffset)
	return l, nil
}

func (e *hybridEngines) Close() error { return errors.Join(e.tier.Close(), e.local.Close()) }

func hybridHarness(t *testing.T, topicConfigs map[string]string) (storagetest.Harness, *meta.Store) {
	o := startObjectTier(t)
	store, bucket, uploaders := o.store, o.bucket, o.uploaders
	openAt := func(t *testing.T, dir string) storage.Engine {
		local, err := localstore.Open(localstore.Options{DataDir: dir, MinFreeBytes: -1, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		tier := disklessstore.New(disklessstore.Options{NodeID: "conformance", Store: store, Objects: bucket, Uploaders: uploaders, Logger: quiet})
		e := &hybridEngines{local: local, tier: tier, topicConfigs: topicConfigs,
			Engine: hybridstore.New(hybridstore.Options{Local: local, Tier: tier, Uploaders: uploaders, NodeID: "conformance",
				UploadInterval: 10 * time.Millisecond, Logger: quiet})}
		t.Cleanup(func() { e.Close() })
		return e
	}
	dirs := map[storage.Engine]string{}
	return storagetest.Harness{
		New: func(t *testing.T) storage.Engine {
			dir := t.TempDir()
			e := openAt(t, dir)
			dirs[e] = dir
			return e
		},
		Reopen: func(t *testing.T, e storage.Engine) storage.Engine {
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			ne := openAt(t, dirs[e])
			dirs[ne] = dirs[e]
			return ne
		},
	}, store
}

// TestHybridEngineConformance runs the storage suite against hybrid
// partitions whose segments roll at every batch and are uploaded as they
// roll (no time limit: the suite's records are from 1970; local retention
// keeps them locally too: the suite's Size counts local bytes).
func TestHybridEngineConformance(t *testing.T) {
	h, _ := hybridHarness(t, map[string]string{meta.ConfigSegmentBytes: "1024", meta.ConfigRetentionMs: "-1"})
	storagetest.Run(t, h)
}

// TestHybridReadsBelowLocalStartFromTier: with local.retention.bytes=0
// every uploaded segment leaves the local disk, and the log still reads
// whole from offset 0 (the tier), answers ListOffsets by time from the
// tier, rebuilds its headers (epochs, producers) from the manifest below
// the local copy, survives a reopen, and DeleteRecords inside the tier
// moves the start of both parts.
func TestHybridReadsBelowLocalStartFromTier(t *testing.T) {
	h, _ := hybridHarness(t, map[string]string{meta.ConfigSegmentBytes: "1024", meta.ConfigRetentionMs: "-1", meta.ConfigLocalRetentionBytes: "0"})
	e := h.New(t)
	spec := storagetest.Spec("tiered")
	l, err := e.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for i := 0; i < 40; i++ {
		next = storagetest.Append(t, l, next, int64(1000*(i+1)), "value-1", "value-2", "value-3")
	}
	// Wait until the local copy starts above offset 0: the start of the
	// log is then the tier's.
	local := func() int64 { return l.(interface{ TierStart() int64 }).TierStart() }
	deadline := time.Now().Add(30 * time.Second)
	for local() < 60 { // the active segment stays local; older ones are in the tier
		if time.Now().After(deadline) {
			t.Fatalf("tier start %d, log end %d: uploads did not catch up", local(), next)
		}
		time.Sleep(20 * time.Millisecond)
	}
	check := func(stage string, l storage.Log, start int64) {
		t.Helper()
		if l.StartOffset() != start || l.EndOffset() != next {
			t.Fatalf("%s: log [%d, %d), want [%d, %d)", stage, l.StartOffset(), l.EndOffset(), start, next)
		}
		var got []int64
		for o := start; o < next; {
			b, err := l.Read(o, 1<<20, next, true)
			if err != nil {
				t.Fatalf("%s: read at %d: %v", stage, o, err)
			}
			if len(b) == 0 {
				t.Fatalf("%s: read at %d: nothing", stage, o)
			}
			_, err = recbatch.Iterate(b, false, func(h recbatch.Header, _ []byte) error {
				got = append(got, h.BaseOffset)
				o = h.NextOffset()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		for i, base := range got {
			if want := start/3*3 + int64(3*i); base != want {
				t.Fatalf("%s: batch %d at %d, want %d", stage, i, base, want)
			}
		}
		if o, ts, ok, err := l.OffsetForTimestamp(2500); err != nil || !ok || (start <= 6 && (o != 6 || ts != 3000)) {
			t.Fatalf("%s: offset for timestamp 2500: %d %d %v %v, want 6 at 3000", stage, o, ts, ok, err)
		}
		var headers int
		if err := l.ScanHeaders(start, func(h recbatch.Header) error {
			if h.PartitionLeaderEpoch != -1 { // storagetest batches keep the unset epoch
				t.Fatalf("%s: header at %d has epoch %d", stage, h.BaseOffset, h.PartitionLeaderEpoch)
			}
			headers++
			return nil
		}); err != nil || headers == 0 {
			t.Fatalf("%s: scan headers: %d headers, %v", stage, headers, err)
		}
		if _, err := l.Read(start-1, 1<<20, next, true); start > 0 && !errors.Is(err, storage.ErrOffsetOutOfRange) {
			t.Fatalf("%s: read below the start: %v, want out of range", stage, err)
		}
	}
	check("led", l, 0)
	e = h.Reopen(t, e)
	if l, err = e.Open(spec); err != nil {
		t.Fatal(err)
	}
	check("reopened", l, 0)
	if err := l.DeleteRecords(31); err != nil {
		t.Fatal(err)
	}
	check("after DeleteRecords(31)", l, 31)
	e = h.Reopen(t, e)
	if l, err = e.Open(spec); err != nil {
		t.Fatal(err)
	}
	check("reopened after DeleteRecords", l, 31)
}
