package objstorefs_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/streamline-dev/streamline/shared/objstore"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
	"github.com/streamline-dev/streamline/shared/objstore/objstoretest"
)

func newBucket(t *testing.T) *objstorefs.Bucket {
	b, err := objstorefs.New(filepath.Join(t.TempDir(), "objects"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket { return newBucket(t) })
}

// TestConformanceBuffered runs the conformance suite with the page cache
// writes a file system without O_DIRECT gets.
func TestConformanceBuffered(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket {
		b := newBucket(t)
		objstorefs.SetDirectIO(b, false)
		return b
	})
}

// A crash between writing the temporary file and the rename leaves the
// temporary behind: it must be invisible, and the key must keep its old
// object.
func TestLeftoverTempFileIsInvisible(t *testing.T) {
	b := newBucket(t)
	ctx := t.Context()
	if err := b.Put(ctx, "p/obj", []byte("old")); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(b.Root(), "p", ".put-123456")
	if err := os.WriteFile(stray, []byte("half of the new"), 0o644); err != nil {
		t.Fatal(err)
	}
	var keys []string
	b.Iter(ctx, "", func(k string) error { keys = append(keys, k); return nil })
	if !slices.Equal(keys, []string{"p/obj"}) {
		t.Fatalf("keys %q, want only p/obj", keys)
	}
	if got, err := b.Get(ctx, "p/obj"); err != nil || string(got) != "old" {
		t.Fatalf("Get = %q, %v", got, err)
	}
}

// Put leaves no temporary files behind, on success or failure.
func TestPutLeavesNoTempFiles(t *testing.T) {
	b := newBucket(t)
	ctx := t.Context()
	for i := range 3 {
		if err := b.Put(ctx, "d/k", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// "d/k" is an object, so "d/k/x" cannot be one here (see package doc).
	if err := b.Put(ctx, "d/k/x", []byte("x")); err == nil {
		t.Fatal("Put under an object's name succeeded")
	}
	// And an object cannot replace a directory of objects.
	if err := b.Put(ctx, "d", []byte("x")); err == nil {
		t.Fatal("Put over a directory of objects succeeded")
	}
	entries, _ := filepath.Glob(filepath.Join(b.Root(), "*", ".*"))
	if len(entries) != 0 {
		t.Fatalf("temporary files left: %q", entries)
	}
}

func TestDeletePrunesEmptyDirectories(t *testing.T) {
	b := newBucket(t)
	ctx := t.Context()
	b.Put(ctx, "a/b/c/d", []byte("x"))
	b.Put(ctx, "a/keep", []byte("x"))
	if err := b.Delete(ctx, "a/b/c/d"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.Root(), "a", "b")); !os.IsNotExist(err) {
		t.Fatalf("a/b still exists: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b.Root(), "a", "keep")); err != nil {
		t.Fatal(err)
	}
}

// A put into a directory the bucket remembers from an earlier put still
// works after that directory was removed (by a Delete pruning it, or by
// another process sharing the directory): the remembered directory is
// made again.
func TestPutRemakesARemovedDirectory(t *testing.T) {
	b := newBucket(t)
	ctx := t.Context()
	if err := b.Put(ctx, "n/m/first", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "n/m/first"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.Root(), "n")); !os.IsNotExist(err) {
		t.Fatalf("n still exists after its last object was deleted: %v", err)
	}
	if err := b.PutReader(ctx, "n/m/second", strings.NewReader("2"), 1); err != nil {
		t.Fatalf("put into the removed directory: %v", err)
	}
	// Removed behind the bucket's back: the put still lands.
	if err := os.RemoveAll(filepath.Join(b.Root(), "n")); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "n/m/third", []byte("3")); err != nil {
		t.Fatalf("put after the directory was removed by another process: %v", err)
	}
	if got, err := b.Get(ctx, "n/m/third"); err != nil || string(got) != "3" {
		t.Fatalf("Get = %q, %v", got, err)
	}
}

// A directory bucket asks for unspread keys (objectfmt.NewKey: one
// prefix, not a directory pair per object), and so do this module's
// wrappers of it; a bucket that does not say is spread.
func TestDirectoryBucketDoesNotSpreadKeys(t *testing.T) {
	b := newBucket(t)
	prefixed, err := objstore.Prefixed(b, "cluster-a")
	if err != nil {
		t.Fatal(err)
	}
	for name, bucket := range map[string]objstore.Bucket{
		"directory":             b,
		"instrumented":          objstore.Instrument(b, nil, nil),
		"prefixed":              prefixed,
		"instrumented prefixed": objstore.Instrument(prefixed, nil, nil),
	} {
		if objstore.SpreadsKeys(bucket) {
			t.Errorf("%s bucket spreads keys", name)
		}
	}
	if !objstore.SpreadsKeys(struct{ objstore.Bucket }{b}) {
		t.Error("a bucket that does not implement KeySpreading is not spread")
	}
}

func TestOpenURL(t *testing.T) {
	dir := t.TempDir()
	b, err := objstore.Open(context.Background(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "k")); err != nil {
		t.Fatalf("object not under the URL's directory: %v", err)
	}
	for _, bad := range []string{"file:relative/dir", "file://host/dir", "file://", "file:///tmp/x?sync=false"} {
		if _, err := objstore.Open(t.Context(), bad); err == nil {
			t.Errorf("Open(%q) succeeded", bad)
		} else {
			t.Logf("Open(%q): %v", bad, err)
		}
	}
}

// TestDirectWrites: objects of sizes around the 4 KiB blocks and the 1 MiB
// chunk of a direct write, by Put and PutReader, read back whole and with
// their exact size on disk (the padding of the last block is cut), with
// O_DIRECT and through the page cache.
func TestDirectWrites(t *testing.T) {
	ctx := context.Background()
	for _, direct := range []bool{true, false} {
		b := newBucket(t)
		if direct && !b.DirectIO() {
			t.Skipf("the file system of %s does not take O_DIRECT", b.Root())
		}
		objstorefs.SetDirectIO(b, direct)
		for _, size := range []int{0, 1, 4095, 4096, 4097, 1<<20 - 1, 1 << 20, 1<<20 + 1, 3<<20 + 5} {
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(i*7 + size)
			}
			for _, byReader := range []bool{false, true} {
				key := fmt.Sprintf("d/%v-%d-%v", direct, size, byReader)
				var err error
				if byReader {
					err = b.PutReader(ctx, key, bytes.NewReader(data), int64(size))
				} else {
					err = b.Put(ctx, key, data)
				}
				if err != nil {
					t.Fatalf("direct %v, put %s: %v", direct, key, err)
				}
				st, err := os.Stat(filepath.Join(b.Root(), key))
				if err != nil || st.Size() != int64(size) {
					t.Fatalf("direct %v, %s: %v, %d bytes on disk, want %d", direct, key, err, st.Size(), size)
				}
				got, err := b.Get(ctx, key)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("direct %v, %s: read back %d bytes (%v), not what was put", direct, key, len(got), err)
				}
			}
		}
	}
}
