package e2e

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/logsvc/storage/hybridstore"
	"github.com/streamline-dev/streamline/services/cluster"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
	"github.com/streamline-dev/streamline/uploader/uploadrpc"
)

// TestHybridUploadKilledAtEachStep is issue 14's crash line: kill -9 of the
// uploader (before and after its PUT of a segment object) or of the
// partition's leader (uploaded but not committed, committed but its tier
// view not updated, about to delete uploaded local segments) in the middle
// of an idempotent acks=all load on a hybrid topic (3 partitions,
// replication factor 3, 64 KiB segments, 128 KiB of local retention), via
// the binaries' STREAMLINE_FAILPOINT. The killed process is restarted and
// more is produced; then every acknowledged record reads back exactly once
// at its offset from offset 0 (the older ones from the object tier), each
// partition's committed tier end reaches its active segment, its leader's
// local copy is bounded by local retention, and once the collector's grace
// and linger have passed no object in the bucket is unreferenced and no
// spool file is left on the uploader's disk.
func TestHybridUploadKilledAtEachStep(t *testing.T) {
	for _, tc := range []struct{ step, victim string }{
		{uploadrpc.FailSegmentBeforePut, "uploader-1"},
		{uploadrpc.FailSegmentAfterPut, "uploader-1"},
		{hybridstore.FailBeforeCommit, "logsvc-1"},
		{hybridstore.FailAfterCommit, "logsvc-1"},
		{hybridstore.FailBeforeLocalDelete, "logsvc-1"},
	} {
		if strings.HasPrefix(tc.victim, "uploader") {
			t.Run(tc.step, func(t *testing.T) { hybridUploadCrash(t, tc.step, tc.victim, false) })
			continue
		}
		// The leader restarted at once leads its partitions again (its
		// lease has not expired); kept down, they move to a follower,
		// which carries on from the manifest.
		t.Run(tc.step+"/restart", func(t *testing.T) { hybridUploadCrash(t, tc.step, tc.victim, false) })
		t.Run(tc.step+"/failover", func(t *testing.T) { hybridUploadCrash(t, tc.step, tc.victim, true) })
	}
}

func hybridUploadCrash(t *testing.T, step, victim string, failover bool) {
	const (
		topic        = "hybrid-crash"
		partitions   = 3
		segmentBytes = 64 << 10
		localBytes   = 128 << 10
		valueBytes   = 1 << 10
		before       = 4500 // produced while the victim reaches its failpoint
		after        = 1500 // produced once it is back
		// A rolled segment is uploaded; the active one (at most 64 KiB,
		// in batches of at most 16 KiB) is not.
		maxUntiered = segmentBytes/valueBytes + 16
		// The leader keeps local retention, the active segment and what
		// is rolled but not uploaded yet.
		maxLocal = localBytes + 3*segmentBytes
	)
	dir, spool := t.TempDir(), t.TempDir()
	store := "file://" + dir
	c := cluster.StartCluster(t, cluster.ClusterOptions{
		SessionTTL: clusterTTL,
		ExtraArgs: map[string][]string{
			"gateway": {"--session-ttl", clusterTTL.String()},
			// A follower on the killed node leaves the ISR quickly, so
			// acks=all does not wait on it for 30 s.
			"logsvc": {"--object-store", store, "--hybrid-upload-interval", "100ms", "--replica-lag-time-max", "2s"},
			"uploader": {"--object-store", store, "--gc-grace", "4s", "--gc-interval", "500ms", "--gc-linger", "1s",
				"--merge=false", "--spool-dir", spool},
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	proc := c.Node(victim)
	proc.Env = []string{"STREAMLINE_FAILPOINT=" + step}
	c.Restart(victim) // no topic yet: nothing to upload, it starts

	adm := kadm.NewClient(bootstrapClient(t, c))
	createTopicWhenReady(ctx, t, adm, partitions, 3, map[string]*string{
		"storage.mode": ptr("hybrid"), "segment.bytes": ptr(fmt.Sprint(segmentBytes)),
		"local.retention.bytes": ptr(fmt.Sprint(localBytes)),
	}, topic)
	metaStore, cache := watchMeta(t, c)
	await(t, cache, 10*time.Second, "partitions led", func() bool {
		ps := cache.Partitions(topic)
		for _, p := range ps {
			if p.Leader == "" {
				return false
			}
		}
		return len(ps) == partitions
	})
	led := map[int32]int32{} // the victim's partitions and their epochs
	for _, p := range cache.Partitions(topic) {
		if p.Leader == victim {
			led[p.Partition] = p.LeaderEpoch
		}
	}
	if strings.HasPrefix(victim, "logsvc") && len(led) == 0 {
		t.Fatalf("%s leads no partition of %s: its failpoint would never be reached", victim, topic)
	}
	tp, err := metaStore.GetTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	objects, err := objstorefs.New(dir)
	if err != nil {
		t.Fatal(err)
	}

	// Idempotent acks=all, uncompressed, in batches of at most 16 KiB so
	// segments roll at their size.
	prod := bootstrapClient(t, c, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2*time.Millisecond), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(16<<10), kgo.MetadataMinAge(250*time.Millisecond))
	type ack struct {
		r   *kgo.Record
		err error
	}
	acks := make(chan ack, before+after)
	send := func(from, n int) {
		pad := strings.Repeat("x", valueBytes-8)
		for i := from; i < from+n; i++ {
			prod.Produce(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%07d|%s", i, pad)}, func(r *kgo.Record, err error) { acks <- ack{r, err} })
		}
	}
	acked := map[int32]map[int64]produced{}
	collect := func(n int) {
		t.Helper()
		for range n {
			var a ack
			select {
			case a = <-acks:
			case <-ctx.Done():
				t.Fatalf("records not acknowledged: %v", ctx.Err())
			}
			if a.err != nil {
				t.Fatalf("produce: %v", a.err)
			}
			m := acked[a.r.Partition]
			if m == nil {
				m = map[int64]produced{}
				acked[a.r.Partition] = m
			}
			if _, dup := m[a.r.Offset]; dup {
				t.Fatalf("two records acknowledged at %d/%d", a.r.Partition, a.r.Offset)
			}
			m[a.r.Offset] = produced{value: a.r.Value, offset: a.r.Offset}
		}
	}

	// The load runs in the client while the victim reaches its step.
	began := time.Now()
	send(0, before)
	deadline := time.Now().Add(90 * time.Second)
	for !proc.Exited() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach failpoint %s", victim, step)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b, _ := os.ReadFile(proc.LogPath()); !strings.Contains(string(b), "failpoint "+step) {
		t.Fatalf("%s exited, but not at failpoint %s", victim, step)
	}
	orphans := unreferencedObjects(ctx, t, metaStore, objects)
	t.Logf("%s killed at %s %v into the load; %d objects unreferenced right after", victim, step, time.Since(began).Round(time.Millisecond), len(orphans))
	if (step == uploadrpc.FailSegmentAfterPut || step == hybridstore.FailBeforeCommit) && len(orphans) == 0 {
		t.Fatalf("killed at %s, yet the bucket holds no uploaded-but-uncommitted object", step)
	}
	if failover {
		took := await(t, cache, clusterTTL+10*time.Second, "the killed leader's partitions led elsewhere", func() bool {
			for _, p := range cache.Partitions(topic) {
				if e, ok := led[p.Partition]; ok && (p.Leader == victim || p.Leader == "" || p.LeaderEpoch <= e) {
					return false
				}
			}
			return true
		})
		t.Logf("its partitions %v moved to other leaders %v after the kill", slices.Sorted(maps.Keys(led)), took.Round(time.Millisecond))
	}
	proc.Env = nil
	c.Restart(victim)
	collect(before)
	send(before, after)
	collect(after)
	t.Logf("%d records acknowledged in %v", before+after, time.Since(began).Round(time.Millisecond))

	// The tier catches up to each partition's active segment, and each
	// leader's local copy shrinks to local retention.
	ends := listOffsets(ctx, t, adm, topic, false)
	caughtUp := time.Now()
	for {
		var lag []string
		for p := range int32(partitions) {
			committed, _, err := metaStore.CommittedEnd(ctx, tp.ID, p)
			if err != nil {
				t.Fatal(err)
			}
			if committed > ends[p] {
				t.Fatalf("partition %d: tier committed to %d, past the log end %d", p, committed, ends[p])
			}
			leader := ""
			for _, pp := range cache.Partitions(topic) {
				if pp.Partition == p {
					leader = pp.Leader
				}
			}
			local := int64(-1)
			if leader != "" {
				local = localSegmentBytes(t, filepath.Join(c.DataDir(leader), "partitions", storage.StreamName(tp.ID, p)))
			}
			if ends[p]-committed > maxUntiered || local < 0 || local > maxLocal {
				lag = append(lag, fmt.Sprintf("partition %d: log end %d, tier end %d, %d local bytes on its leader %s", p, ends[p], committed, local, leader))
			}
		}
		if len(lag) == 0 {
			break
		}
		if time.Since(caughtUp) > 60*time.Second {
			t.Fatalf("the tier did not catch up: %s", strings.Join(lag, "; "))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("tier caught up %v after the load", time.Since(caughtUp).Round(time.Millisecond))
	// Each partition's tier is one run of segments from offset 0 to its
	// committed end: no range uploaded twice, none missing.
	if err := metaStore.ScanManifests(ctx, func(pm meta.PartitionManifest) error {
		if pm.TopicID != tp.ID {
			return nil
		}
		next := int64(0)
		for _, e := range pm.Entries {
			if e.BaseOffset != next {
				t.Errorf("partition %d: tier entry [%d, %d] (%s) follows the tier up to %d", pm.Partition, e.BaseOffset, e.LastOffset, e.Object, next)
			}
			next = e.LastOffset + 1
		}
		if next != pm.End {
			t.Errorf("partition %d: tier entries end at %d, committed end %d", pm.Partition, next, pm.End)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	checkAll := func(stage string) {
		t.Helper()
		starts, ends := listOffsets(ctx, t, adm, topic, true), listOffsets(ctx, t, adm, topic, false)
		for p := range int32(partitions) {
			if starts[p] != 0 || ends[p] != int64(len(acked[p])) {
				t.Fatalf("%s: partition %d holds [%d, %d), %d records were acknowledged there", stage, p, starts[p], ends[p], len(acked[p]))
			}
		}
		consumeAndCompare(ctx, t, c.Bootstrap()[0], topic, acked)
	}
	checkAll("after the crash")
	awaitNoOrphans(ctx, t, metaStore, objects)
	checkAll("after garbage collection")
	// Nor is anything left in the uploader's spool directory: a segment
	// spooled by an uploader killed before or after its PUT is garbage
	// on the uploader's disk.
	if left, _ := filepath.Glob(filepath.Join(spool, "*")); len(left) > 0 {
		for i, f := range left {
			if info, err := os.Stat(f); err == nil {
				left[i] = fmt.Sprintf("%s (%d bytes, %s)", filepath.Base(f), info.Size(), info.ModTime().Format(time.StampMilli))
			}
		}
		t.Errorf("the uploader's spool directory still holds %d files after the uploads completed: %s", len(left), strings.Join(left, ", "))
	}
}

// unreferencedObjects lists the bucket's objects no manifest references.
func unreferencedObjects(ctx context.Context, t *testing.T, store *meta.Store, objects *objstorefs.Bucket) []string {
	t.Helper()
	refs, err := store.ReferencedObjects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if err := objects.Iter(ctx, "", func(k string) error {
		if _, ok := refs[k]; !ok {
			out = append(out, k)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// localSegmentBytes sums the sizes of a partition directory's segment
// files, some of which local retention may delete meanwhile.
func localSegmentBytes(t *testing.T, dir string) int64 {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, s := range segs {
		if info, err := os.Stat(s); err == nil {
			n += info.Size()
		} else if !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	return n
}
