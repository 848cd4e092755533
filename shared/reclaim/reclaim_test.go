package reclaim

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// writeFile creates a file of size bytes (written, not sparse: a sparse
// file frees nothing, but the steps must be seen either way).
func writeFile(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
}

// observing returns a Pacing of step bytes that records, at each pause,
// the size of the file at path (-1: gone), and never sleeps.
func observing(t *testing.T, step int64, path string, sizes *[]int64) Pacing {
	return Pacing{StepBytes: step, Pause: time.Hour, sleep: func(d time.Duration, stop <-chan struct{}) bool {
		if d != time.Hour {
			t.Errorf("paused %v, want the Pacing's Pause", d)
		}
		st, err := os.Stat(path)
		switch {
		case err == nil:
			*sizes = append(*sizes, st.Size())
		case errors.Is(err, os.ErrNotExist):
			*sizes = append(*sizes, -1)
		default:
			t.Fatal(err)
		}
		return true
	}}
}

// A file is shrunk a step at a time, with a pause after each step and
// after the unlink, and is gone at the end.
func TestRemoveShrinksInSteps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big")
	writeFile(t, path, 10_000)
	var sizes []int64
	if err := observing(t, 4_000, path, &sizes).Remove(path, nil); err != nil {
		t.Fatal(err)
	}
	if want := []int64{6_000, 2_000, -1}; !slices.Equal(sizes, want) {
		t.Fatalf("sizes at the pauses %v, want %v", sizes, want)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file still there: %v", err)
	}
}

// A file no larger than a step is unlinked at once, with no pause; a
// missing one is not an error.
func TestRemoveSmallOrMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "small")
	writeFile(t, path, 4_000)
	var sizes []int64
	p := observing(t, 4_000, path, &sizes)
	if err := p.Remove(path, nil); err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 0 {
		t.Fatalf("paused at sizes %v for a file of one step", sizes)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file still there: %v", err)
	}
	if err := p.Remove(path, nil); err != nil {
		t.Fatalf("removing a missing file: %v", err)
	}
	if err := p.RemoveAll(filepath.Join(t.TempDir(), "nothing"), nil); err != nil {
		t.Fatalf("removing a missing tree: %v", err)
	}
}

// RemoveAll removes a whole tree, its files paced, symlinks not followed.
func TestRemoveAll(t *testing.T) {
	root := filepath.Join(t.TempDir(), "tomb")
	writeFile(t, filepath.Join(root, "a", "seg.log"), 9_000)
	writeFile(t, filepath.Join(root, "a", "seg.index"), 100)
	writeFile(t, filepath.Join(root, "b", "c", "seg.log"), 5_000)
	outside := filepath.Join(t.TempDir(), "outside")
	writeFile(t, outside, 9_000)
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	steps := 0
	p := Pacing{StepBytes: 4_000, Pause: time.Hour, sleep: func(time.Duration, <-chan struct{}) bool { steps++; return true }}
	if err := p.RemoveAll(root, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("tree still there: %v", err)
	}
	if st, err := os.Stat(outside); err != nil || st.Size() != 9_000 {
		t.Fatalf("the symlink's target was touched: %v %v", st, err)
	}
	// 9,000 bytes: two steps and the unlink; 5,000: one and the unlink.
	if steps != 5 {
		t.Fatalf("%d pauses, want 5", steps)
	}
}

// A closed stop ends a removal at its next pause, with ErrStopped and the
// rest left in place; the real timer honours it too.
func TestStop(t *testing.T) {
	root := filepath.Join(t.TempDir(), "tomb")
	writeFile(t, filepath.Join(root, "1"), 9_000)
	writeFile(t, filepath.Join(root, "2"), 9_000)
	stop := make(chan struct{})
	close(stop)
	p := Pacing{StepBytes: 4_000, Pause: time.Hour} // a real timer: must not wait an hour
	if err := p.RemoveAll(root, stop); !errors.Is(err, ErrStopped) {
		t.Fatalf("RemoveAll with stop closed: %v, want ErrStopped", err)
	}
	if st, err := os.Stat(filepath.Join(root, "1")); err != nil || st.Size() != 5_000 {
		t.Fatalf("the first file after one step and the stop: %v %v, want 5000 bytes", st, err)
	}
	if st, err := os.Stat(filepath.Join(root, "2")); err != nil || st.Size() != 9_000 {
		t.Fatalf("the second file was touched: %v %v", st, err)
	}
	// Without stop it finishes.
	if err := (Pacing{StepBytes: 4_000, Pause: time.Millisecond}).RemoveAll(root, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("tree still there: %v", err)
	}
}

// Sweep removes exactly the regular files whose names match.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.trash"), 10)
	writeFile(t, filepath.Join(dir, "b.keep"), 10)
	if err := os.Mkdir(filepath.Join(dir, "c.trash"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Sweep(dir, func(name string) bool { return filepath.Ext(name) == ".trash" }); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if want := []string{"b.keep", "c.trash"}; !slices.Equal(left, want) {
		t.Fatalf("left %v, want %v (a directory is no file to sweep)", left, want)
	}
}
