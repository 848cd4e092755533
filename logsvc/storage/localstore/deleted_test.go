package localstore

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/logsvc/segment"
	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/logsvc/storage/storagetest"
	"github.com/streamline-dev/streamline/shared/reclaim"
)

// crashImage copies a running engine's data directory: what a kill -9
// leaves (the WAL is fsynced at every ack; nothing is closed cleanly).
func crashImage(t *testing.T, dir string) string {
	t.Helper()
	image := t.TempDir()
	if out, err := exec.Command("cp", "-a", dir+"/.", image).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	return image
}

// twoPartitions opens partitions "kept" and "gone" on a fresh engine whose
// WAL is never pruned (no checkpoint), writes to both, and returns the
// engine, both logs, and the end offset of "kept".
func twoPartitions(t *testing.T) (e *Engine, kept, gone storage.Log, keptSpec storage.PartitionSpec, keptEnd int64) {
	t.Helper()
	e = open(t, t.TempDir())
	keptSpec = storagetest.Spec("kept")
	var err error
	if kept, err = e.Open(keptSpec); err != nil {
		t.Fatal(err)
	}
	if gone, err = e.Open(storagetest.Spec("gone")); err != nil {
		t.Fatal(err)
	}
	var goneEnd int64
	for i := range 30 {
		keptEnd = storagetest.Append(t, kept, keptEnd, int64(i), "k1", "k2")
		goneEnd = storagetest.Append(t, gone, goneEnd, int64(i), "g1")
	}
	return e, kept, gone, keptSpec, keptEnd
}

// TestRecoverAfterDeletedPartition is the crash of issue 10: a topic is
// deleted while the WAL still holds its records, the node is killed, and
// recovery must skip those records (it used to Close the nil log it keeps
// for them and panic, so the node never started again). The other
// partition's records are all back at their offsets.
func TestRecoverAfterDeletedPartition(t *testing.T) {
	e, kept, gone, keptSpec, keptEnd := twoPartitions(t)
	if err := gone.Remove(); err != nil {
		t.Fatal(err)
	}
	e.reaping.Wait() // the deleted partition's files are gone, its WAL records are not
	image := crashImage(t, e.opts.DataDir)

	re := open(t, image)
	l, err := re.Open(keptSpec)
	if err != nil {
		t.Fatal(err)
	}
	if l.EndOffset() != keptEnd {
		t.Fatalf("recovered end %d, want %d", l.EndOffset(), keptEnd)
	}
	want, _ := kept.Read(0, 1<<30, keptEnd, true)
	got, _ := l.Read(0, 1<<30, keptEnd, true)
	if string(want) != string(got) {
		t.Fatalf("recovered bytes differ (%d vs %d)", len(got), len(want))
	}
}

// TestRecoverWithDeletionInterrupted: the node dies after the deleted
// partition's directory was entombed but before (or while) its files were
// removed; some of them are gone. Recovery treats the partition as deleted
// (its WAL records are skipped, no "data is missing" refusal), finishes the
// removal, and the other partition is intact.
func TestRecoverWithDeletionInterrupted(t *testing.T) {
	e, _, gone, keptSpec, keptEnd := twoPartitions(t)
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	image := crashImage(t, e.opts.DataDir)
	// In the image: entomb the partition as Remove does, then lose some of
	// its files, as a RemoveAll cut short by the crash would.
	var stream string
	ents, _ := os.ReadDir(filepath.Join(image, "partitions"))
	for _, ent := range ents {
		if ent.Name() != keptSpec.Stream() {
			stream = ent.Name()
		}
	}
	tomb, err := segment.Entomb(filepath.Join(image, "partitions", stream))
	if err != nil || tomb == "" {
		t.Fatalf("entomb: %q %v", tomb, err)
	}
	files, _ := filepath.Glob(filepath.Join(tomb, "*"))
	for _, f := range files[:len(files)/2+1] {
		os.Remove(f)
	}

	re := open(t, image)
	l, err := re.Open(keptSpec)
	if err != nil {
		t.Fatal(err)
	}
	if l.EndOffset() != keptEnd {
		t.Fatalf("recovered end %d, want %d", l.EndOffset(), keptEnd)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(tomb); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("interrupted deletion %s not finished", tomb)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRemoveDoesNotWaitForFiles: Remove entombs the directory at once (the
// partition is gone for recovery) and leaves the file removal to the
// background; the removal of files this small (nothing to pace) has
// finished when the engine closes.
func TestRemoveDoesNotWaitForFiles(t *testing.T) {
	e, _, gone, keptSpec, _ := twoPartitions(t)
	if err := gone.Remove(); err != nil {
		t.Fatal(err)
	}
	if dirs, err := e.PartitionDirs(); err != nil || !slices.Equal(dirs, []string{keptSpec.Stream()}) {
		t.Fatalf("partition directories right after Remove: %v (%v), want only the kept one's", dirs, err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if tombs, err := segment.SweepEntombed(e.partitionsDir()); err != nil || len(tombs) != 0 {
		t.Fatalf("after Close: entombed directories left %v (%v)", tombs, err)
	}
}

// TestCloseStopsAPacedRemovalAndOpenFinishesIt: a deleted partition's
// large files are given back a step at a time (package reclaim), which
// for a large topic takes a while; Close does not wait for it but stops
// it at its next step, leaving the tomb, and the next Open removes it.
func TestCloseStopsAPacedRemovalAndOpenFinishesIt(t *testing.T) {
	dataDir := t.TempDir()
	e := open(t, dataDir)
	// One step, then a pause that only Close ends.
	e.reclaim = reclaim.Pacing{StepBytes: 1 << 20, Pause: time.Hour}
	spec := storagetest.Spec("gone")
	gone, err := e.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Append(t, gone, 0, 1, "g1")
	// A large file in the partition's directory (sparse: nothing to
	// write, but its size is what is given back).
	big := filepath.Join(e.partitionsDir(), spec.Stream(), "big")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 64<<20); err != nil {
		t.Fatal(err)
	}
	if err := gone.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	tombs, err := segment.SweepEntombed(e.partitionsDir())
	if err != nil || len(tombs) != 1 {
		t.Fatalf("after Close: entombed directories %v (%v), want the deleted partition's, its removal stopped", tombs, err)
	}
	e = open(t, dataDir)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if tombs, err = segment.SweepEntombed(e.partitionsDir()); err == nil && len(tombs) == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("30s after Open: entombed directories %v (%v), want none", tombs, err)
}
