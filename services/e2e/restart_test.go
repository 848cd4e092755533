package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestCleanShutdownAndRestart proves that (1) a second all-in-one pointed
// at a data directory in use refuses to start (exits non-zero, does not
// hang) and leaves the running one intact; (2) SIGTERM stops the
// all-in-one cleanly (exit code 0 within 30 s); (3) after a restart on the
// same data directory every acknowledged record is at the offset it was
// acknowledged with, and (4) new records continue after the old log end:
// no offset is reused.
func TestCleanShutdownAndRestart(t *testing.T) {
	bin := cluster.Binary(t, "./services/cmd/streamline")
	dataDir := t.TempDir()
	addr, args := allInOneArgs(t, dataDir)
	proc := cluster.StartProcess(t, bin, readyMarker, args...)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const topic = "restart"
	adm := kadm.NewClient(newClient(t, addr))
	if resp, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	mk := func(base int) func(int) *kgo.Record {
		return func(i int) *kgo.Record {
			return &kgo.Record{Key: []byte(fmt.Sprintf("key-%d", (base+i)%17)), Value: []byte(fmt.Sprintf("value-%06d", base+i))}
		}
	}
	prod := newClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	acked := produceAll(ctx, t, prod, 5000, mk(0))
	if len(acked) != 3 {
		t.Fatalf("records landed in %d partitions, want 3", len(acked))
	}
	ends := listOffsets(ctx, t, adm, topic, false)
	for p, m := range acked {
		if ends[p] != int64(len(m)) {
			t.Fatalf("partition %d: end offset %d, want %d", p, ends[p], len(m))
		}
	}

	// A second server on the same data dir (its own ports) must fail fast.
	_, args2 := allInOneArgs(t, dataDir)
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	out, err := exec.CommandContext(sctx, bin, args2...).CombinedOutput()
	hung := sctx.Err() != nil
	scancel()
	var exit *exec.ExitError
	switch {
	case hung:
		t.Errorf("second server on the same --data-dir still running after 30s (killed); want a prompt non-zero exit\n%s", tail(out))
	case err == nil:
		t.Errorf("second server on the same --data-dir exited 0\n%s", tail(out))
	case !errors.As(err, &exit):
		t.Errorf("second server: %v", err)
	default:
		t.Logf("second server on the same data dir: %v\n%s", err, tail(out))
	}
	// The first one is unharmed.
	if got := listOffsets(ctx, t, adm, topic, false); fmt.Sprint(got) != fmt.Sprint(ends) {
		t.Fatalf("end offsets after the second start attempt %v, want %v", got, ends)
	}

	proc.Signal(syscall.SIGTERM)
	if err := proc.Wait(30 * time.Second); err != nil {
		t.Fatalf("after SIGTERM: %v (want exit code 0 within 30s)", err)
	}
	proc.Restart(readyMarker)

	consumeAndCompare(ctx, t, addr, topic, acked)
	if got := listOffsets(ctx, t, adm, topic, false); fmt.Sprint(got) != fmt.Sprint(ends) {
		t.Fatalf("end offsets after restart %v, want %v", got, ends)
	}

	more := produceAll(ctx, t, prod, 600, mk(5000))
	for p, m := range more {
		for o := range m {
			if o < ends[p] || o >= ends[p]+int64(len(m)) {
				t.Fatalf("partition %d: new record at offset %d, want in [%d, %d)", p, o, ends[p], ends[p]+int64(len(m)))
			}
			acked[p][o] = m[o]
		}
	}
	consumeAndCompare(ctx, t, addr, topic, acked)
}

// listOffsets returns each partition's log start (start) or end offset.
func listOffsets(ctx context.Context, t testing.TB, adm *kadm.Client, topic string, start bool) map[int32]int64 {
	t.Helper()
	list := adm.ListEndOffsets
	if start {
		list = adm.ListStartOffsets
	}
	lo, err := list(ctx, topic)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		t.Fatalf("list offsets of %s: %v", topic, err)
	}
	out := map[int32]int64{}
	for p, o := range lo[topic] {
		out[p] = o.Offset
	}
	return out
}

func tail(b []byte) string {
	if len(b) > 4000 {
		return "..." + string(b[len(b)-4000:])
	}
	return string(b)
}
