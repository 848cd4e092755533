package objstores3_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/objstore"
	"github.com/streamline-dev/streamline/shared/objstore/objstoretest"
)

// TestLargeRangeOfLargeObject reads most of a 2 MiB object by range: the
// diskless read path's common case (a partition's section of a flush).
// gofakes3 sends the whole object's checksum with partial content; the
// read must not be checked against it.
func TestLargeRangeOfLargeObject(t *testing.T) {
	ep := objstoretest.StartGofakes3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "x")
	b, err := objstore.Open(ctx, "s3://"+objstoretest.BucketName+"?endpoint="+ep+"&region=us-east-1&path_style=true&max_attempts=1")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	data := bytes.Repeat([]byte("0123456789abcdef"), 2<<16)
	if err := b.Put(ctx, "a/b", data); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetRange(ctx, "a/b", 8, int64(len(data))-100)
	if err != nil || !bytes.Equal(got, data[8:len(data)-92]) {
		t.Fatalf("range: %d bytes, %v", len(got), err)
	}
	whole, err := b.Get(ctx, "a/b")
	if err != nil || !bytes.Equal(whole, data) {
		t.Fatalf("get: %d bytes, %v", len(whole), err)
	}
}
