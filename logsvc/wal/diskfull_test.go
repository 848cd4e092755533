package wal

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// tmpfs mounts a size-limited tmpfs on a new directory (we run as root in
// CI); without the right to mount, the test is skipped and says why.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root): %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fillUp writes a file until the filesystem is full and returns its path.
func fillUp(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return path
		}
	}
}

// TestDiskFullIsSurvived: a write that fails for lack of space fails its
// records and blocks their streams, but does not poison the WAL: once
// space is freed and the stream unblocked, appends succeed again, and the
// WAL reopens with exactly the records that were acknowledged, with no
// torn bytes.
func TestDiskFullIsSurvived(t *testing.T) {
	dir := tmpfs(t, "1m")
	w := mustOpen(t, filepath.Join(dir, "wal"), Options{})
	var want []entry
	for i := range 4 {
		r := rec("a", int64(i), 1000)
		want = append(want, entry{mustAppend(t, w, r), r})
	}
	filler := fillUp(t, dir)

	_, done := w.Append(rec("a", 4, 40000))
	if err := <-done; err == nil || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want ENOSPC", err)
	}
	if _, done := w.Append(rec("a", 4, 100)); !errors.Is(<-done, ErrStreamBlocked) {
		t.Fatal("a blocked stream took a record before Unblock")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	w.Unblock("a")
	for i := 4; i < 8; i++ {
		r := rec("a", int64(i), 1000)
		want = append(want, entry{mustAppend(t, w, r), r})
	}
	r := rec("b", 0, 500) // another stream, never blocked
	want = append(want, entry{mustAppend(t, w, r), r})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	w2 := mustOpen(t, filepath.Join(dir, "wal"), Options{})
	if w2.Truncated() != 0 {
		t.Fatalf("reopen cut %d torn bytes: the failed write was not cut back", w2.Truncated())
	}
	checkEntries(t, replayAll(t, w2), want)
}

// TestFailedWriteBlocksQueuedRecordsOfItsStream: records of a stream queued
// behind a failed one are failed too (none may follow a hole), while
// another stream's records go on once there is room.
func TestFailedWriteBlocksQueuedRecordsOfItsStream(t *testing.T) {
	dir := tmpfs(t, "1m")
	w := mustOpen(t, filepath.Join(dir, "wal"), Options{})
	mustAppend(t, w, rec("a", 0, 100))
	filler := fillUp(t, dir)
	_, big := w.Append(rec("a", 1, 60000))
	_, next := w.Append(rec("a", 2, 100))
	if err := <-big; err == nil {
		t.Fatal("a write larger than the free space succeeded")
	}
	if err := <-next; err == nil {
		t.Fatal("a record queued behind a failed one of its stream was written")
	}
	os.Remove(filler)
	mustAppend(t, w, rec("b", 0, 100))
	if _, done := w.Append(rec("a", 1, 100)); !errors.Is(<-done, ErrStreamBlocked) {
		t.Fatal("stream a took a record after its failed write, before Unblock")
	}
}
