package objstore_test

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/streamline-dev/streamline/shared/objstore"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
	"github.com/streamline-dev/streamline/shared/objstore/objstores3"
	"github.com/streamline-dev/streamline/shared/objstore/objstoretest"
)

func TestValidKey(t *testing.T) {
	for _, k := range []string{"a", "a/b/c", "topic-1/0/000123.obj", "a b", "ünï/cödé", strings.Repeat("x", 1024)} {
		if err := objstore.ValidKey(k); err != nil {
			t.Errorf("ValidKey(%q): %v", k, err)
		}
	}
	for _, k := range append(slices.Clone(objstoretest.InvalidKeys), strings.Repeat("x", 1025)) {
		if err := objstore.ValidKey(k); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("ValidKey(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
}

// Prefixed over the directory implementation passes the suite too, and
// really puts keys under the prefix.
func TestPrefixedConformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Bucket {
		inner, err := objstorefs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		b, err := objstore.Prefixed(inner, "tenant/a")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func TestPrefixedKeepsKeysUnderPrefix(t *testing.T) {
	inner, err := objstorefs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := objstore.Prefixed(inner, "p")
	if err := b.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if got, err := inner.Get(t.Context(), "p/k"); err != nil || string(got) != "v" {
		t.Fatalf("inner Get(p/k) = %q, %v", got, err)
	}
	if _, err := objstore.Prefixed(inner, "bad/"); !errors.Is(err, objstore.ErrInvalidKey) {
		t.Fatalf("Prefixed with a bad prefix: %v", err)
	}
}

// Open names the part of the URL that is wrong.
func TestOpenErrors(t *testing.T) {
	dir := filepath.ToSlash(t.TempDir())
	for _, c := range []struct{ url, mention string }{
		{"", "no scheme"},
		{"/var/lib/objects", "no scheme"},
		{"gs://bucket", `unknown scheme "gs"`},
		{"s3://AK:SK@bucket", "credentials in the URL"},
		{"s3://Bad_Bucket", "bucket (host)"},
		{"s3://bucket/a//b", "path (key prefix)"},
		{"s3://bucket?path_style=maybe", `query parameter "path_style"`},
		{"s3://bucket?pathstyle=true", `query parameter "pathstyle": unknown parameter`},
		{"s3://bucket?part_size=1MiB", "part size"},
		{"s3://bucket?endpoint=127.0.0.1:9000", "endpoint"},
		{"s3://bucket?max_backoff=soon", `query parameter "max_backoff"`},
		{"file://" + dir + "?x=1", "query parameters"},
		{"file:objects", "absolute"},
		{"%zz://x", "bad URL"},
	} {
		_, err := objstore.Open(t.Context(), c.url)
		if err == nil || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("Open(%q) = %v; want an error mentioning %q", c.url, err, c.mention)
		}
		t.Logf("Open(%q): %v", c.url, err)
		if err != nil && strings.Contains(err.Error(), "SK@") {
			t.Errorf("Open(%q) error leaks the secret: %v", c.url, err)
		}
	}
}

func TestOpenPicksImplementation(t *testing.T) {
	b, err := objstore.Open(t.Context(), "file://"+filepath.ToSlash(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.(*objstorefs.Bucket); !ok {
		t.Fatalf("file:// gave %T", b)
	}
	b, err = objstore.Open(t.Context(), "s3://bucket/prefix?endpoint=http://127.0.0.1:1&region=eu-west-1&path_style=true",
		objstore.WithStaticCredentials("a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.(*objstores3.Bucket); !ok {
		t.Fatalf("s3:// gave %T", b)
	}
}
