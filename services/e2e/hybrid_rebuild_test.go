package e2e

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamline-dev/streamline/gateway"
	"github.com/streamline-dev/streamline/logsvc"
	"github.com/streamline-dev/streamline/logsvc/storage/hybridstore"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
	"github.com/streamline-dev/streamline/uploader"
)

// TestHybridRebuildCopiesOnlyTheTail is issue 14's replica-rebuild line:
// the same 8 MiB go to a local and a hybrid topic (replication factor 2,
// 256 KiB segments) while their second replica's node is away; that node
// then starts on an empty disk and rebuilds both. The hybrid copy starts at
// the tier's end, so it moves at most a fifth of the bytes the local copy
// moves (streamline_logsvc_replication_bytes_total{direction="in"} on the
// rebuilt node), and the rebuilt node advertises that it lacks the local
// history of the hybrid partition (meta.LogNode.TailOnly), not of the
// local one. Then steady-state replication of 1 MiB more to each is
// reported: both replicate their whole tail.
func TestHybridRebuildCopiesOnlyTheTail(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	etcd := metatest.Start(t)
	bucket, err := objstorefs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	startNode := func(id string) *prometheus.Registry {
		reg := prometheus.NewRegistry()
		n, err := logsvc.New(logsvc.Config{ID: id, DataDir: t.TempDir(), Etcd: etcd.Client, SessionTTL: 2 * time.Second,
			ReplicaLagTime: time.Second, Objects: bucket, Logger: quiet, Metrics: reg,
			Hybrid: hybridstore.Options{UploadInterval: 50 * time.Millisecond}})
		if err == nil {
			err = n.Start(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return reg
	}
	startNode("first")
	up, err := uploader.New(uploader.Config{Etcd: etcd.Client, Objects: bucket, Logger: quiet})
	if err == nil {
		err = up.Start(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	gw, err := gateway.New(gateway.Config{NodeID: 1, ListenAddr: "127.0.0.1:0", Etcd: etcd.Client, Logger: quiet})
	if err == nil {
		err = gw.Start(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	addr := gw.Addr().String()

	// Both replicas are named at creation; "second" is not running, so it
	// leaves the ISR after a second and the first node goes on alone.
	store := meta.NewStore(etcd.Client, "")
	topics := map[meta.StorageMode]string{meta.StorageLocal: "rebuild-local", meta.StorageHybrid: "rebuild-hybrid"}
	for mode, name := range topics {
		tp := &meta.Topic{Name: name, Partitions: 1, ReplicationFactor: 2, StorageMode: mode,
			Configs: map[string]string{meta.ConfigSegmentBytes: "262144"}}
		if mode == meta.StorageHybrid {
			tp.Configs[meta.ConfigLocalRetentionBytes] = "524288"
		}
		if _, err := store.CreateTopic(ctx, tp, []meta.LogNode{{ID: "first"}, {ID: "second"}}); err != nil {
			t.Fatal(err)
		}
	}
	value := bytes.Repeat([]byte("r"), 32<<10)
	produce := func(mib int) {
		t.Helper()
		for _, name := range topics {
			prod := newClient(t, addr, kgo.DefaultProduceTopic(name), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
				kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(64<<10)) // several batches per segment
			var recs []*kgo.Record
			for range mib * 32 {
				recs = append(recs, &kgo.Record{Value: value})
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("produce to %s: %v", name, err)
			}
		}
	}
	produce(8)
	cache := meta.NewCache(store, quiet)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	isr := func(name string) []string {
		p, _ := cache.Partition(name, 0)
		return p.ISR
	}
	waitFor(ctx, t, func() bool {
		return !slices.Contains(isr(topics[meta.StorageLocal]), "second") && !slices.Contains(isr(topics[meta.StorageHybrid]), "second")
	}, "the away replica leaves the ISRs")
	waitFor(ctx, t, func() bool {
		end, _, err := store.CommittedEnd(ctx, mustTopicID(ctx, t, store, topics[meta.StorageHybrid]), 0)
		return err == nil && end >= 8*32-16 // all but the active segment's records
	}, "the hybrid topic's rolled segments are in the tier")

	reg := startNode("second")
	moved := func(mode meta.StorageMode) float64 {
		return gathered(t, reg, "streamline_logsvc_replication_bytes_total", map[string]string{"direction": "in", "storage_mode": string(mode)})
	}
	waitFor(ctx, t, func() bool {
		return slices.Contains(isr(topics[meta.StorageLocal]), "second") && slices.Contains(isr(topics[meta.StorageHybrid]), "second")
	}, "the rebuilt replica rejoins both ISRs")
	local, hybrid := moved(meta.StorageLocal), moved(meta.StorageHybrid)
	t.Logf("rebuilding 8 MiB: local topic moved %.0f bytes, hybrid topic %.0f bytes (%.1f%%)", local, hybrid, 100*hybrid/local)
	if local < 8<<20 {
		t.Fatalf("the local rebuild moved %.0f bytes, less than the 8 MiB stored", local)
	}
	if hybrid > 0.2*local {
		t.Fatalf("the hybrid rebuild moved %.0f bytes, more than 20%% of the local one's %.0f", hybrid, local)
	}

	// The rebuilt copy lacks the local history the leader keeps (512 KiB of
	// local retention below the tier's end): the node says so in its
	// registration, so the controller does not make it the leader.
	hyName := meta.PartitionName(topics[meta.StorageHybrid], 0)
	waitFor(ctx, t, func() bool {
		n, ok := cache.LogNode("second")
		return ok && slices.Contains(n.TailOnly, hyName)
	}, "the rebuilt node advertises the hybrid partition as tail-only")
	if n, _ := cache.LogNode("second"); slices.Contains(n.TailOnly, meta.PartitionName(topics[meta.StorageLocal], 0)) {
		t.Fatalf("the local partition is advertised tail-only: %v", n.TailOnly)
	}

	produce(1)
	waitFor(ctx, t, func() bool {
		return moved(meta.StorageLocal)-local >= 1<<20 && moved(meta.StorageHybrid)-hybrid >= 1<<20
	}, "the followers hold the new MiB")
	t.Logf("steady state, 1 MiB more to each: local replicated %.0f bytes, hybrid %.0f bytes",
		moved(meta.StorageLocal)-local, moved(meta.StorageHybrid)-hybrid)
}

func mustTopicID(ctx context.Context, t *testing.T, store *meta.Store, name string) meta.TopicID {
	t.Helper()
	tp, err := store.GetTopic(ctx, name)
	if err != nil || tp == nil {
		t.Fatalf("topic %s: %v", name, err)
	}
	return tp.ID
}

// gathered sums the samples of a registry's metric family whose labels
// include match.
func gathered(t *testing.T, reg *prometheus.Registry, name string, match map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range match {
				if labels[k] != v {
					continue next
				}
			}
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return sum
}
