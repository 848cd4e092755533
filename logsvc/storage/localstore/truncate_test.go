package localstore

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/logsvc/storage/storagetest"
)

// lastSegment is the path and size of a partition's newest segment file.
func lastSegment(t *testing.T, dir string, spec storage.PartitionSpec) (string, int64) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "partitions", spec.Stream(), "*.log"))
	if len(segs) == 0 {
		t.Fatal("no segment file")
	}
	fi, err := os.Stat(segs[len(segs)-1])
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Base(segs[len(segs)-1]), fi.Size()
}

func readAllOf(t *testing.T, l storage.Log) []byte {
	t.Helper()
	b, err := l.Read(l.StartOffset(), 1<<30, l.EndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTruncationIsNotUndoneByReplay truncates a log, appends other
// batches at the same offsets, and recovers a crash image whose segment
// lost everything after the truncation: the WAL still holds the removed
// batches, and replay must restore the new ones, not bring the old ones
// back. It also checks a reset (empty log at a later offset) the same way.
func TestTruncationIsNotUndoneByReplay(t *testing.T) {
	for _, reset := range []bool{false, true} {
		dir := t.TempDir()
		e := open(t, dir)
		spec := storagetest.Spec("trunc")
		l, err := e.Open(spec)
		if err != nil {
			t.Fatal(err)
		}
		next := int64(0)
		for i := range 10 {
			next = storagetest.Append(t, l, next, int64(i), "old-a", "old-b")
		}
		tr := l.(storage.Truncater)
		if reset {
			if err := tr.ResetTo(100); err != nil {
				t.Fatal(err)
			}
			next = 100
		} else {
			end, err := tr.TruncateTo(9) // inside the batch at 8
			if err != nil || end != 8 {
				t.Fatalf("truncate: end %d, %v", end, err)
			}
			next = end
		}
		// The segments are fsynced lazily: the crash below loses
		// everything appended to them after the truncation.
		lastName, lastSize := lastSegment(t, dir, spec)
		for i := range 5 {
			next = storagetest.Append(t, l, next, int64(100+i), "new")
		}
		want := readAllOf(t, l)
		image := crashImage(t, dir)
		if err := os.Truncate(filepath.Join(image, "partitions", spec.Stream(), lastName), lastSize); err != nil {
			t.Fatal(err)
		}

		re := open(t, image)
		l2, err := re.Open(spec)
		if err != nil {
			t.Fatal(err)
		}
		if l2.EndOffset() != next || !bytes.Equal(readAllOf(t, l2), want) {
			t.Fatalf("reset %v: recovered [%d, %d), want end %d and the same bytes", reset, l2.StartOffset(), l2.EndOffset(), next)
		}
	}
}

// TestInterruptedTruncationIsFinished recovers an image in which the
// truncation was recorded but the segments were not cut yet (a crash
// between the two steps): recovery cuts them before the log is served.
func TestInterruptedTruncationIsFinished(t *testing.T) {
	dir := t.TempDir()
	e := open(t, dir)
	spec := storagetest.Spec("interrupted")
	l, err := e.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	for i := range 10 {
		next = storagetest.Append(t, l, next, int64(i), "a", "b", "c")
	}
	keep, err := l.Read(0, 1<<30, 12, true)
	if err != nil {
		t.Fatal(err)
	}
	image := crashImage(t, dir)
	mark := truncation{Seq: e.wal.NextSeq(), Offset: 12}
	if err := writeTruncation(filepath.Join(image, "partitions", spec.Stream()), mark); err != nil {
		t.Fatal(err)
	}
	re := open(t, image)
	l2, err := re.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	if l2.EndOffset() != 12 || !bytes.Equal(readAllOf(t, l2), keep) {
		t.Fatalf("recovered [%d, %d), want the first 12 offsets", l2.StartOffset(), l2.EndOffset())
	}
	if got, ok, err := readTruncation(filepath.Join(image, "partitions", spec.Stream())); err != nil || !ok || !got.Done {
		t.Fatalf("truncation record after recovery: %+v %v %v", got, ok, err)
	}
}
