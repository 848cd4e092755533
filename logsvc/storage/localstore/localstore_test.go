package localstore

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/logsvc/storage/storagetest"
	"github.com/streamline-dev/streamline/logsvc/wal"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func open(t *testing.T, dir string) *Engine {
	t.Helper()
	e, err := Open(Options{DataDir: dir, CheckpointInterval: time.Hour, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, storagetest.Harness{
		New: func(t *testing.T) storage.Engine { return open(t, t.TempDir()) },
		Reopen: func(t *testing.T, e storage.Engine) storage.Engine {
			le := e.(*Engine)
			if err := le.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, le.opts.DataDir)
		},
	})
}

// TestRecoverFromCrashImage copies the data directory of a running engine
// (a crash image: the WAL is fsynced, segments are not) after truncating
// the copied segment files, and checks the WAL restores every durable batch.
func TestRecoverFromCrashImage(t *testing.T) {
	dir := t.TempDir()
	e := open(t, dir)
	spec := storagetest.Spec("crash")
	l, err := e.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for i := 0; i < 50; i++ {
		next = storagetest.Append(t, l, next, int64(i), "v1", "v2", "v3")
	}
	image := t.TempDir()
	if out, err := exec.Command("cp", "-a", dir+"/.", image).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	// Lose the un-fsynced tail of every segment file: cut it in half.
	segs, _ := filepath.Glob(filepath.Join(image, "partitions", spec.Stream(), "*.log"))
	if len(segs) == 0 {
		t.Fatal("no segment files in image")
	}
	for _, s := range segs {
		fi, _ := os.Stat(s)
		if err := os.Truncate(s, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
	}
	re := open(t, image)
	l2, err := re.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	if l2.EndOffset() != next {
		t.Fatalf("recovered end %d, want %d", l2.EndOffset(), next)
	}
	want, _ := l.Read(0, 1<<30, next, true)
	got, _ := l2.Read(0, 1<<30, next, true)
	if string(want) != string(got) {
		t.Fatalf("recovered bytes differ (%d vs %d)", len(got), len(want))
	}
}

// TestCheckpointPrunesWAL checks that a checkpoint fsyncs segments and lets
// sealed WAL files go, and that data survives a reopen afterwards.
func TestCheckpointPrunesWAL(t *testing.T) {
	dir := t.TempDir()
	e, err := Open(Options{DataDir: dir, CheckpointInterval: time.Hour, Logger: quiet(), WAL: wal.Options{FileBytes: 512}})
	if err != nil {
		t.Fatal(err)
	}
	spec := storagetest.Spec("ckpt")
	l, _ := e.Open(spec)
	next := int64(0)
	for i := 0; i < 20; i++ {
		next = storagetest.Append(t, l, next, 1, "a")
	}
	before := e.wal.Files()
	if before < 3 {
		t.Fatalf("only %d WAL files; the test needs several", before)
	}
	// The WAL may roll to a new file just after the last ack, sealing one
	// more file behind the checkpoint's back; a later checkpoint prunes it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := e.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		after := e.wal.Files()
		if after == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d WAL files after checkpoints (had %d), want only the active one", after, before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := open(t, dir)
	l2, _ := e2.Open(spec)
	if l2.EndOffset() != next {
		t.Fatalf("end %d want %d", l2.EndOffset(), next)
	}
}

// TestMustExistRefusesEmptyLog checks that a partition that already had a
// life elsewhere is not started empty on a node without its data.
func TestMustExistRefusesEmptyLog(t *testing.T) {
	e := open(t, t.TempDir())
	spec := storagetest.Spec("moved")
	spec.MustExist = true
	if _, err := e.Open(spec); !errors.Is(err, storage.ErrNoLocalData) {
		t.Fatalf("open without data: %v", err)
	}
	spec.MustExist = false
	l, err := e.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Append(t, l, 0, 1, "x")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	spec.MustExist = true
	if _, err := e.Open(spec); err != nil {
		t.Fatalf("reopen with data: %v", err)
	}
}
