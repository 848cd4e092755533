package e2e

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestHybridTopicTiersSegments is issue 14's first "Must show" on the
// all-in-one: a hybrid topic with 1 MiB segments and 2 MiB of local
// retention. After the load the log service's disk holds a bounded tail,
// the object store holds the rest, and every record reads back from
// offset 0 (served from the object tier), also after kill -9; ListOffsets
// earliest is 0 and DeleteRecords moves the start inside the tier.
// STREAMLINE_HYBRID_MB sets the volume (default 24; the figure is
// 120).
func TestHybridTopicTiersSegments(t *testing.T) {
	mb := 24
	if v, err := strconv.Atoi(os.Getenv("STREAMLINE_HYBRID_MB")); err == nil && v > 0 {
		mb = v
	}
	bin := cluster.Binary(t, "./services/cmd/streamline")
	dataDir := t.TempDir()
	addr, args := allInOneArgs(t, dataDir)
	proc := cluster.StartProcess(t, bin, readyMarker, append(args, "--hybrid-upload-interval", "100ms")...)

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const topic = "tiered"
	adm := kadm.NewClient(newClient(t, addr))
	createTopicWhenReady(ctx, t, adm, 1, 1, map[string]*string{
		"storage.mode": kmsg.StringPtr("hybrid"), "segment.bytes": kmsg.StringPtr("1048576"),
		"local.retention.bytes": kmsg.StringPtr("2097152"),
	}, topic)

	// Produce mb MiB in 8 KiB records; each value starts with its index.
	const recBytes = 8 << 10
	n := mb << 20 / recBytes
	prod := newClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.NoCompression())) // the sizes below are of stored bytes
	pad := strings.Repeat("x", recBytes-16)
	var results []kgo.ProduceResult
	for i := 0; i < n; i += 500 {
		var recs []*kgo.Record
		for j := i; j < min(i+500, n); j++ {
			recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "%s-%015d|%s", topic, j, pad)})
		}
		res := prod.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("produce at %d: %v", i, err)
		}
		results = append(results, res...)
	}
	for i, r := range results {
		if r.Record.Offset != int64(i) {
			t.Fatalf("record %d acknowledged at offset %d", i, r.Record.Offset)
		}
	}

	// The local copy shrinks to local retention plus what is not uploaded
	// yet (the active segment); the object store holds the rest.
	partDir := func() string {
		m, _ := filepath.Glob(filepath.Join(dataDir, "logsvc", "partitions", "*-0"))
		if len(m) != 1 {
			t.Fatalf("partition directories: %v", m)
		}
		return m[0]
	}()
	const localBound = 5 << 20 // 2 MiB retention + the active segment + one being uploaded + indexes
	var local, objects int64
	deadline := time.Now().Add(time.Minute)
	for {
		local, objects = dirBytes(t, partDir, ".log"), dirBytes(t, filepath.Join(dataDir, "objects"), "")
		if local <= localBound && objects >= int64(n*recBytes)-localBound {
			break
		}
		if time.Now().After(deadline) {
			for _, d := range []string{partDir, filepath.Join(dataDir, "objects")} {
				_ = filepath.Walk(d, func(p string, info os.FileInfo, err error) error {
					if err == nil && !info.IsDir() {
						t.Logf("%s %d", p, info.Size())
					}
					return nil
				})
			}
			t.Fatalf("after %d MiB: local segments %d bytes (want <= %d), objects %d bytes", mb, local, localBound, objects)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d MiB produced: local segments %d bytes, object store %d bytes", mb, local, objects)

	checkAll := func(stage string) {
		t.Helper()
		starts := listOffsets(ctx, t, adm, topic, true)
		ends := listOffsets(ctx, t, adm, topic, false)
		if starts[0] != 0 || ends[0] != int64(n) {
			t.Fatalf("%s: log [%d, %d), want [0, %d)", stage, starts[0], ends[0], n)
		}
		cons := newClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0)}}),
			kgo.FetchMaxBytes(4<<20))
		defer cons.Close()
		next := 0
		for next < n {
			fs := cons.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("%s: read %d of %d records: %v", stage, next, n, err)
			}
			for _, e := range fs.Errors() {
				t.Fatalf("%s: fetch at %d: %v", stage, next, e.Err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				want := fmt.Sprintf("%s-%015d|", topic, next)
				if r.Offset != int64(next) || !strings.HasPrefix(string(r.Value), want) {
					t.Fatalf("%s: offset %d holds %.24q, want offset %d %q", stage, r.Offset, r.Value, next, want)
				}
				next++
			})
		}
	}
	checkAll("before the crash")

	proc.Signal(syscall.SIGKILL)
	if err := proc.Wait(30 * time.Second); err == nil {
		t.Log("process exited cleanly before SIGKILL?")
	}
	proc.Restart(readyMarker)
	checkAll("after kill -9")

	// DeleteRecords inside the tier moves the log start there: ListOffsets
	// answers it, a fetch below it is OFFSET_OUT_OF_RANGE, a consumer from
	// the start reads on from it.
	cut := int64(n / 3)
	if r := deleteRecords(ctx, t, adm, topic, cut); r.Err != nil || r.LowWatermark != cut {
		t.Fatalf("DeleteRecords to %d: %+v", cut, r)
	}
	want := map[int64]produced{}
	for _, r := range results {
		want[r.Record.Offset] = produced{value: r.Record.Value}
	}
	checkLogStart(ctx, t, addr, adm, topic, cut, want)
}

// dirBytes sums the sizes of the files under dir whose names end in suffix.
func dirBytes(t testing.TB, dir, suffix string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p != dir {
			return nil // deleted (tiered, merged, collected) between the listing and its lstat
		}
		if err != nil {
			return err
		}
		if !info.IsDir() && strings.HasSuffix(p, suffix) {
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
