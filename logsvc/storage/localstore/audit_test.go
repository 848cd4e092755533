package localstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/logsvc/storage"
	"github.com/streamline-dev/streamline/logsvc/storage/storagetest"
	"github.com/streamline-dev/streamline/logsvc/wal"
)

// appendN appends n one-record batches at the log's end and returns the
// bytes the log then holds from offset 0.
func appendN(t *testing.T, l storage.Log, n int) []byte {
	t.Helper()
	next := l.EndOffset()
	for i := 0; i < n; i++ {
		next = storagetest.Append(t, l, next, int64(i), "v")
	}
	b, err := l.Read(0, 1<<30, next, true)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkLog checks that the recovered partition holds exactly want from 0.
func checkLog(t *testing.T, e *Engine, spec storage.PartitionSpec, want []byte, end int64) {
	t.Helper()
	l, err := e.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	if l.EndOffset() != end {
		t.Fatalf("%s recovered end %d, want %d", spec.Topic.Name, l.EndOffset(), end)
	}
	got, err := l.Read(0, 1<<30, end, true)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s recovered bytes differ (%d vs %d)", spec.Topic.Name, len(got), len(want))
	}
}

// TestPartitionDescriptorDamage: partition.json is for people. Lost, a
// partition that must find its data still finds it in its segments;
// garbage, it changes nothing.
func TestPartitionDescriptorDamage(t *testing.T) {
	for name, damage := range map[string]func(path string) error{
		"missing": os.Remove,
		"garbage": func(path string) error { return os.WriteFile(path, []byte("{\x00garbage"), 0o644) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			e := open(t, dir)
			spec := storagetest.Spec("desc")
			l, err := e.Open(spec)
			if err != nil {
				t.Fatal(err)
			}
			want := appendN(t, l, 5)
			image := crashImage(t, dir)
			if err := damage(filepath.Join(image, "partitions", spec.Stream(), "partition.json")); err != nil {
				t.Fatal(err)
			}
			spec.MustExist = true // a partition that had a life before
			checkLog(t, open(t, image), spec, want, 5)
		})
	}
}

// TestWALFileMissingFromTheMiddle: a WAL file deleted from the middle of
// the sequence. If the segments hold its records, nothing is lost and the
// node starts; if they do not (their un-fsynced tail was lost too), the
// data really is missing and Open fails naming the partition and the
// offsets, without a panic.
func TestWALFileMissingFromTheMiddle(t *testing.T) {
	dir := t.TempDir()
	e, err := Open(Options{DataDir: dir, CheckpointInterval: time.Hour, Logger: quiet(), WAL: wal.Options{FileBytes: 512}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	spec := storagetest.Spec("gap")
	l, err := e.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := appendN(t, l, 30)
	walFiles := func(image string) []string {
		m, _ := filepath.Glob(filepath.Join(image, "wal", "wal-*.log"))
		return m
	}
	if n := len(walFiles(dir)); n < 3 {
		t.Fatalf("only %d WAL files; the test needs several", n)
	}

	image := crashImage(t, dir)
	files := walFiles(image)
	if err := os.Remove(files[len(files)/2]); err != nil {
		t.Fatal(err)
	}
	checkLog(t, open(t, image), spec, want, 30)

	image = crashImage(t, dir)
	files = walFiles(image)
	if err := os.Remove(files[len(files)/2]); err != nil {
		t.Fatal(err)
	}
	for _, s := range segmentFiles(t, image, spec) {
		if err := os.Truncate(s, 0); err != nil {
			t.Fatal(err)
		}
	}
	_, err = Open(Options{DataDir: image, CheckpointInterval: time.Hour, Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), spec.Stream()) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Open with records missing everywhere: %v, want an error naming %s", err, spec.Stream())
	}
}

func segmentFiles(t *testing.T, dataDir string, spec storage.PartitionSpec) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dataDir, "partitions", spec.Stream(), "*.log"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no segment files: %v", err)
	}
	return m
}
