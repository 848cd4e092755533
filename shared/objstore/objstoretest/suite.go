// Package objstoretest is the conformance suite every objstore.Bucket
// implementation passes (Run), plus what tests need to run it against real
// servers: an in-process S3 server (StartGofakes3), a real S3 gateway
// process (StartVersityGW) and a fault-injecting reverse proxy to put in
// front of either (FaultProxy).
//
// The suite states the contract in code: where the implementations could
// differ (ranges past the end, deleting a missing key, listing order, which
// keys are valid) it decides, and all of them must agree.
package objstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/streamline-dev/streamline/shared/objstore"
)

// LargeObjectSize is the size of the suite's large object. An implementation
// with multipart uploads should be configured, for the suite, with a
// threshold below it (for S3: threshold 6 MiB, part size 5 MiB, S3's
// minimum) so the multipart path is exercised.
const LargeObjectSize = 7 << 20

// IterKeyCount is how many keys the Iter test lists under one prefix. An
// implementation that pages its listings should be configured with a page
// size well below it (e.g. 7) so that paging is exercised.
const IterKeyCount = 20

// Run runs the conformance suite. newBucket must return an empty bucket for
// each subtest and arrange its cleanup (t.Cleanup).
func Run(t *testing.T, newBucket func(t *testing.T) objstore.Bucket) {
	cases := []struct {
		name string
		fn   func(t *testing.T, b objstore.Bucket)
	}{
		{"PutGet", testPutGet},
		{"Overwrite", testOverwrite},
		{"BinaryData", testBinary},
		{"EmptyObject", testEmpty},
		{"LargeObject", testLarge},
		{"GetRange", testGetRange},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"InvalidKeys", testInvalidKeys},
		{"Iter", testIter},
		{"Concurrent", testConcurrent},
		{"CanceledContext", testCanceled},
		{"PutReader", testPutReader},
		{"PutReaderWrongSize", testPutReaderWrongSize},
		{"PutReaderFailingReader", testPutReaderFailingReader},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newBucket(t)) })
	}
}

// RandomBytes returns n deterministic pseudo-random bytes.
func RandomBytes(seed uint64, n int) []byte {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

func put(t *testing.T, b objstore.Bucket, key string, data []byte) {
	t.Helper()
	if err := b.Put(t.Context(), key, data); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
}

// mustGet checks Get and Size agree with want.
func mustGet(t *testing.T, b objstore.Bucket, key string, want []byte) {
	t.Helper()
	got, err := b.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q): %d bytes differ from the %d put", key, len(got), len(want))
	}
	size, err := b.Size(t.Context(), key)
	if err != nil || size != int64(len(want)) {
		t.Fatalf("Size(%q) = %d, %v; want %d", key, size, err, len(want))
	}
}

func testPutGet(t *testing.T, b objstore.Bucket) {
	put(t, b, "topic/0/00000000000000000000.obj", []byte("hello, object"))
	put(t, b, "flat", []byte("top level"))
	mustGet(t, b, "topic/0/00000000000000000000.obj", []byte("hello, object"))
	mustGet(t, b, "flat", []byte("top level"))
}

func testOverwrite(t *testing.T, b objstore.Bucket) {
	put(t, b, "k", []byte("the first, longer version"))
	put(t, b, "k", []byte("second"))
	mustGet(t, b, "k", []byte("second"))
}

func testBinary(t *testing.T, b objstore.Bucket) {
	all := make([]byte, 0, 512)
	for i := range 256 {
		all = append(all, byte(i))
	}
	all = append(all, RandomBytes(1, 256)...)
	put(t, b, "bin", all)
	mustGet(t, b, "bin", all)
}

func testEmpty(t *testing.T, b objstore.Bucket) {
	put(t, b, "empty", nil)
	mustGet(t, b, "empty", nil)
	if _, err := b.GetRange(t.Context(), "empty", 0, 1); !errors.Is(err, objstore.ErrInvalidRange) {
		t.Fatalf("GetRange on an empty object: %v, want ErrInvalidRange", err)
	}
}

func testLarge(t *testing.T, b objstore.Bucket) {
	data := RandomBytes(2, LargeObjectSize)
	put(t, b, "large/object", data)
	mustGet(t, b, "large/object", data)
	// Ranges that straddle a 5 MiB or 6 MiB part boundary.
	for _, off := range []int64{5<<20 - 10, 6<<20 - 3} {
		got, err := b.GetRange(t.Context(), "large/object", off, 100)
		if err != nil || !bytes.Equal(got, data[off:off+100]) {
			t.Fatalf("GetRange(%d, 100): %d bytes, %v", off, len(got), err)
		}
	}
	// Overwriting a multipart object with a small one replaces it whole.
	put(t, b, "large/object", []byte("small"))
	mustGet(t, b, "large/object", []byte("small"))
}

func testGetRange(t *testing.T, b objstore.Bucket) {
	data := RandomBytes(3, 100)
	put(t, b, "r", data)
	for _, c := range []struct {
		name        string
		off, length int64
		want        []byte
	}{
		{"start", 0, 10, data[:10]},
		{"middle", 10, 20, data[10:30]},
		{"to end", 80, 20, data[80:]},
		{"past end", 90, 50, data[90:]},
		{"last byte", 99, 1, data[99:]},
		{"whole", 0, 100, data},
	} {
		got, err := b.GetRange(t.Context(), "r", c.off, c.length)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s: GetRange(%d, %d) = %d bytes, %v; want %d bytes", c.name, c.off, c.length, len(got), err, len(c.want))
		}
	}
	for _, c := range []struct {
		name        string
		off, length int64
	}{
		{"offset at size", 100, 1},
		{"offset past size", 150, 10},
		{"negative offset", -1, 5},
		{"zero length", 0, 0},
		{"negative length", 5, -1},
	} {
		if _, err := b.GetRange(t.Context(), "r", c.off, c.length); !errors.Is(err, objstore.ErrInvalidRange) {
			t.Errorf("%s: GetRange(%d, %d): %v, want ErrInvalidRange", c.name, c.off, c.length, err)
		}
	}
}

func testNotFound(t *testing.T, b objstore.Bucket) {
	put(t, b, "dir/obj", []byte("x"))
	// "dir" is a directory in a file system but no object anywhere.
	for _, key := range []string{"missing", "dir", "dir/missing", "dir/obj/below"} {
		if _, err := b.Get(t.Context(), key); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Get(%q): %v, want ErrNotFound", key, err)
		}
		if _, err := b.GetRange(t.Context(), key, 0, 1); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("GetRange(%q): %v, want ErrNotFound", key, err)
		}
		if _, err := b.Size(t.Context(), key); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Size(%q): %v, want ErrNotFound", key, err)
		}
	}
}

func testDelete(t *testing.T, b objstore.Bucket) {
	put(t, b, "a/b/c", []byte("c"))
	put(t, b, "a/d", []byte("d"))
	for range 2 { // the second time the key is missing: still no error
		if err := b.Delete(t.Context(), "a/b/c"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if _, err := b.Get(t.Context(), "a/b/c"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	for _, key := range []string{"never/was", "a"} {
		if err := b.Delete(t.Context(), key); err != nil {
			t.Fatalf("Delete(%q) of no object: %v", key, err)
		}
	}
	mustGet(t, b, "a/d", []byte("d"))
	if got := list(t, b, ""); !slices.Equal(got, []string{"a/d"}) {
		t.Fatalf("keys after Delete: %q", got)
	}
	// A key whose directories were pruned can be written again.
	put(t, b, "a/b/c", []byte("again"))
	mustGet(t, b, "a/b/c", []byte("again"))
}

// InvalidKeys are keys every implementation rejects with ErrInvalidKey.
var InvalidKeys = []string{"", "/abs", "trailing/", "a//b", "./a", "a/../b", "..", "a/.hidden", "nul\x00byte", "new\nline"}

func testInvalidKeys(t *testing.T, b objstore.Bucket) {
	ctx := t.Context()
	for _, key := range InvalidKeys {
		for op, err := range map[string]error{
			"Put":       b.Put(ctx, key, []byte("x")),
			"PutReader": b.PutReader(ctx, key, strings.NewReader("x"), 1),
			"Get":       second(b.Get(ctx, key)),
			"Range":     second(b.GetRange(ctx, key, 0, 1)),
			"Size":      second(b.Size(ctx, key)),
			"Delete":    b.Delete(ctx, key),
		} {
			if !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("%s(%q): %v, want ErrInvalidKey", op, key, err)
			}
		}
	}
	for _, prefix := range []string{"/abs", "../", "a//", "a/../"} {
		err := b.Iter(ctx, prefix, func(string) error { return nil })
		if !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Iter(%q): %v, want ErrInvalidKey", prefix, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func list(t *testing.T, b objstore.Bucket, prefix string) []string {
	t.Helper()
	var keys []string
	if err := b.Iter(t.Context(), prefix, func(k string) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		t.Fatalf("Iter(%q): %v", prefix, err)
	}
	return keys
}

func testIter(t *testing.T, b objstore.Bucket) {
	if got := list(t, b, ""); len(got) != 0 {
		t.Fatalf("new bucket lists %q", got)
	}
	var inA []string
	for i := range IterKeyCount {
		inA = append(inA, fmt.Sprintf("iter/a/k%02d", i))
	}
	// "iter/a-b" sorts before "iter/a/..." ('-' < '/'), which a naive
	// directory walk gets wrong.
	all := append([]string{"iter/a-b", "iter/ab/x", "iter/b/y/z", "other"}, inA...)
	for i, k := range all {
		put(t, b, k, []byte{byte(i)})
	}
	sorted := slices.Sorted(slices.Values(all))
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"", sorted},
		{"iter/", sorted[:len(sorted)-1]},
		{"iter/a/", inA},
		{"iter/a", append(append([]string{"iter/a-b"}, inA...), "iter/ab/x")},
		{"iter/a/k1", inA[10:20]},
		{"iter/b/y/z", []string{"iter/b/y/z"}},
		{"nope/", nil},
		{"iter/c", nil},
	} {
		if got := list(t, b, c.prefix); !slices.Equal(got, c.want) {
			t.Errorf("Iter(%q) = %q, want %q", c.prefix, got, c.want)
		}
	}
	stop := errors.New("stop")
	n := 0
	err := b.Iter(t.Context(), "", func(string) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("Iter stopped by fn: n=%d err=%v, want 3 and fn's error", n, err)
	}
}

// testConcurrent puts and reads distinct keys from several goroutines, and
// races puts of one key: a reader sees one whole version, never a mix.
func testConcurrent(t *testing.T, b objstore.Bucket) {
	const workers, perWorker = 6, 5
	ctx := t.Context()
	versions := [][]byte{RandomBytes(10, 64<<10), RandomBytes(11, 32<<10), RandomBytes(12, 48<<10)}
	errs := make(chan error, workers*perWorker*3)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				key := fmt.Sprintf("conc/%d/%d", w, i)
				data := RandomBytes(uint64(100+w*perWorker+i), 1000+i)
				if err := b.Put(ctx, key, data); err != nil {
					errs <- err
					continue
				}
				if got, err := b.Get(ctx, key); err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("Get(%q) after Put: %d bytes, %v", key, len(got), err)
				}
				v := versions[(w+i)%len(versions)]
				if err := b.Put(ctx, "conc/shared", v); err != nil {
					errs <- err
				}
				if got, err := b.Get(ctx, "conc/shared"); err != nil || !isOneOf(got, versions) {
					errs <- fmt.Errorf("Get(conc/shared): %d bytes that are no version put, %v", len(got), err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := list(t, b, "conc/"); len(got) != workers*perWorker+1 {
		t.Fatalf("listed %d keys, want %d", len(got), workers*perWorker+1)
	}
}

func isOneOf(b []byte, versions [][]byte) bool {
	return slices.ContainsFunc(versions, func(v []byte) bool { return bytes.Equal(b, v) })
}

// testCanceled: a canceled Put fails and leaves nothing behind (a Put that
// returns an error must not be taken for a success, and this one never
// started).
func testCanceled(t *testing.T, b objstore.Bucket) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.Put(ctx, "canceled", []byte("x")); err == nil {
		t.Fatal("Put with a canceled context succeeded")
	}
	if _, err := b.Get(ctx, "canceled"); err == nil {
		t.Fatal("Get with a canceled context succeeded")
	}
	if err := b.PutReader(ctx, "canceled", strings.NewReader("x"), 1); err == nil {
		t.Fatal("PutReader with a canceled context succeeded")
	}
	if _, err := b.Get(t.Context(), "canceled"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Get after canceled Put and PutReader: %v, want ErrNotFound", err)
	}
}

// putReader stores data with PutReader, through a reader that returns less
// than asked for each time and the last bytes together with io.EOF.
func putReader(t *testing.T, b objstore.Bucket, key string, data []byte) {
	t.Helper()
	r := iotest.HalfReader(iotest.DataErrReader(bytes.NewReader(data)))
	if err := b.PutReader(t.Context(), key, r, int64(len(data))); err != nil {
		t.Fatalf("PutReader(%q, %d bytes): %v", key, len(data), err)
	}
}

// mustGetRanges checks Get, Size and GetRange of the whole object, and of
// ranges around offs, agree with want.
func mustGetRanges(t *testing.T, b objstore.Bucket, key string, want []byte, offs ...int64) {
	t.Helper()
	mustGet(t, b, key, want)
	if len(want) == 0 {
		return
	}
	for _, off := range append([]int64{0}, offs...) {
		length := int64(len(want)) - off // to the end
		if off > 0 {
			length = min(length, 100)
		}
		got, err := b.GetRange(t.Context(), key, off, length)
		if err != nil || !bytes.Equal(got, want[off:off+length]) {
			t.Fatalf("GetRange(%q, %d, %d): %d bytes, %v; want %d bytes as put", key, off, length, len(got), err, length)
		}
	}
}

// mustBeAbsent checks a failed put left no object under key.
func mustBeAbsent(t *testing.T, b objstore.Bucket, key string) {
	t.Helper()
	if _, err := b.Get(t.Context(), key); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Get(%q) after a failed PutReader: %v, want ErrNotFound", key, err)
	}
	if keys := list(t, b, key); len(keys) != 0 {
		t.Fatalf("Iter(%q) after a failed PutReader: %q, want none", key, keys)
	}
}

// testPutReader: objects streamed in, of every size class (empty, small,
// multipart with a short last part, multipart of whole parts), read back
// whole and by range.
func testPutReader(t *testing.T, b objstore.Bucket) {
	small := RandomBytes(20, 1000)
	putReader(t, b, "stream/small", small)
	mustGetRanges(t, b, "stream/small", small, 1, 999)

	putReader(t, b, "stream/empty", nil)
	mustGetRanges(t, b, "stream/empty", nil)

	large := RandomBytes(21, LargeObjectSize)
	putReader(t, b, "stream/large", large)
	mustGetRanges(t, b, "stream/large", large, 5<<20-10, 6<<20-3, LargeObjectSize-1)

	// Two whole parts of 5 MiB: the last part is full, no remainder.
	whole := RandomBytes(22, 10<<20)
	putReader(t, b, "stream/whole-parts", whole)
	mustGetRanges(t, b, "stream/whole-parts", whole, 5<<20-50)

	// Replacing, with either Put: the object is the last one put, whole.
	putReader(t, b, "stream/large", small)
	mustGetRanges(t, b, "stream/large", small)
	put(t, b, "stream/small", large)
	putReader(t, b, "stream/small", small)
	mustGet(t, b, "stream/small", small)
}

// testPutReaderWrongSize: a reader with fewer or more bytes than announced
// fails the put, single or multipart, and stores nothing; an object already
// under the key stays as it was.
func testPutReaderWrongSize(t *testing.T, b objstore.Bucket) {
	ctx := t.Context()
	old := []byte("the object before")
	for _, size := range []int{1000, LargeObjectSize} {
		data := RandomBytes(uint64(size), size+1)
		for _, c := range []struct {
			name string
			have int // bytes the reader holds
		}{
			{"short", size - 1},
			{"much shorter", size / 3},
			{"long", size + 1},
		} {
			key := fmt.Sprintf("wrong/%d/%s", size, c.name)
			r := iotest.HalfReader(bytes.NewReader(data[:c.have]))
			if err := b.PutReader(ctx, key, r, int64(size)); err == nil {
				t.Fatalf("PutReader of %d bytes from a reader with %d (%s) succeeded", size, c.have, c.name)
			}
			mustBeAbsent(t, b, key)

			put(t, b, key, old)
			if err := b.PutReader(ctx, key, bytes.NewReader(data[:c.have]), int64(size)); err == nil {
				t.Fatalf("PutReader of %d bytes over an object, from a reader with %d (%s), succeeded", size, c.have, c.name)
			}
			mustGet(t, b, key, old)
		}
	}
	if err := b.PutReader(ctx, "wrong/zero", strings.NewReader("x"), 0); err == nil {
		t.Fatal("PutReader of 0 bytes from a reader with 1 succeeded")
	}
	mustBeAbsent(t, b, "wrong/zero")
	if err := b.PutReader(ctx, "wrong/negative", strings.NewReader("x"), -1); err == nil {
		t.Fatal("PutReader of -1 bytes succeeded")
	}
	mustBeAbsent(t, b, "wrong/negative")
}

// testPutReaderFailingReader: a reader that fails partway (a segment file
// that can no longer be read) fails the put with its error and stores
// nothing, whether it fails in the first part or the last.
func testPutReaderFailingReader(t *testing.T, b objstore.Bucket) {
	errRead := errors.New("reader broke")
	for _, size := range []int{1000, LargeObjectSize} {
		data := RandomBytes(uint64(size), size)
		for _, cut := range []int{0, size / 2, size - 1} {
			key := fmt.Sprintf("failing/%d/%d", size, cut)
			r := io.MultiReader(bytes.NewReader(data[:cut]), iotest.ErrReader(errRead))
			if err := b.PutReader(t.Context(), key, r, int64(size)); !errors.Is(err, errRead) {
				t.Fatalf("PutReader of %d bytes, reader failing after %d: %v; want the reader's error", size, cut, err)
			}
			mustBeAbsent(t, b, key)
		}
	}
}
