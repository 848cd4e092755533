package objstores3_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/streamline-dev/streamline/shared/objstore"
	"github.com/streamline-dev/streamline/shared/objstore/objstores3"
	"github.com/streamline-dev/streamline/shared/objstore/objstoretest"
)

// aheadReader hands out data and, at every read, asks the server how many
// bytes of the upload it already holds as parts: the reader can then tell
// how far ahead of the stored parts the uploader has read, which is what
// the uploader holds in memory. Parts the server holds are a superset of
// those the uploader has seen complete, so the measure never overstates.
type aheadReader struct {
	t      *testing.T
	data   []byte
	off    int64
	stored func() int64

	peakAhead  int64 // most bytes handed out beyond the stored parts
	peakStored int64 // most bytes stored in parts seen during a read
}

func (r *aheadReader) Read(p []byte) (int, error) {
	if r.off == int64(len(r.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.data[r.off:])
	r.off += int64(n)
	stored := r.stored()
	r.peakAhead = max(r.peakAhead, r.off-stored)
	r.peakStored = max(r.peakStored, stored)
	return n, nil
}

// storedParts returns a function that sums the sizes of the parts of key's
// multipart upload on the server (0 while there is none), asked directly of
// the server through raw.
func storedParts(t *testing.T, raw *objstores3.Bucket, key string) func() int64 {
	return func() int64 {
		c, ctx := raw.Client(), t.Context()
		ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{
			Bucket: aws.String(objstoretest.BucketName), Prefix: aws.String(key),
		})
		if err != nil {
			t.Errorf("ListMultipartUploads: %v", err)
			return 0
		}
		var sum int64
		for _, up := range ups.Uploads {
			p := s3.NewListPartsPaginator(c, &s3.ListPartsInput{
				Bucket: aws.String(objstoretest.BucketName), Key: up.Key, UploadId: up.UploadId,
			})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					t.Errorf("ListParts: %v", err)
					return 0
				}
				for _, part := range page.Parts {
					sum += aws.ToInt64(part.Size)
				}
			}
		}
		return sum
	}
}

// TestPutReaderMultipartBoundedMemory streams 3.5 parts with 2 in flight:
// the upload is multipart (create, 4 parts, complete), the object is whole,
// and the uploader never reads more than PartSize x PartConcurrency bytes
// ahead of the parts the server already holds, whatever the timing.
func TestPutReaderMultipartBoundedMemory(t *testing.T) {
	srv := versitygw(t)
	proxy, endpoint := objstoretest.StartFaultProxy(t, srv.endpoint)
	const partSize, concurrency = objstores3.MinPartSize, 2
	b := newBucket(t, server{endpoint, srv.access, srv.secret}, "", func(o *objstores3.Options) {
		o.MultipartThreshold = partSize
		o.PartSize = partSize
		o.PartConcurrency = concurrency
	})
	raw := newBucket(t, srv, "") // straight to the server, not counted by the proxy
	// Slow uploads against fast ListParts: an uploader that read ahead of
	// its bound would show it here. (The bound holds at any speed, so the
	// latency cannot make a correct uploader fail.)
	proxy.SetLatency(objstoretest.Fixed(200 * time.Millisecond))

	data := objstoretest.RandomBytes(7, partSize*7/2)
	r := &aheadReader{t: t, data: data, stored: storedParts(t, raw, "streamed")}
	if err := b.PutReader(t.Context(), "streamed", r, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if n := proxy.Requests(); n != 1+4+1 {
		t.Errorf("%d requests for 3.5 parts, want 6 (create, 4 parts, complete)", n)
	}
	if got, err := raw.Get(t.Context(), "streamed"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get: %d bytes, %v; want the %d put", len(got), err, len(data))
	}
	t.Logf("read at most %d bytes ahead of the stored parts (bound %d); %d bytes stored at the latest read",
		r.peakAhead, partSize*concurrency, r.peakStored)
	if r.peakAhead > partSize*concurrency {
		t.Errorf("read %d bytes ahead of the stored parts, over PartSize x PartConcurrency = %d", r.peakAhead, partSize*concurrency)
	}
	// The third part can only be read once one of the first two is stored:
	// reads and uploads interleave, the object is not read up front.
	if r.peakStored < partSize {
		t.Errorf("no part was stored before the reading ended (at most %d bytes): the object was read up front", r.peakStored)
	}
}

// A failed streaming multipart upload (reader too short, too long or
// broken) is aborted: no object, no upload or parts left on the server.
func TestPutReaderMultipartAbortedOnBadReader(t *testing.T) {
	srv := versitygw(t)
	b := newBucket(t, srv, "", suiteOptions)
	size := objstoretest.LargeObjectSize
	data := objstoretest.RandomBytes(8, 2*size)
	errRead := errors.New("reader broke")
	for name, r := range map[string]io.Reader{
		"short":  bytes.NewReader(data[:size-1]),
		"long":   bytes.NewReader(data[:size+1]),
		"broken": io.MultiReader(bytes.NewReader(data[:size-100]), &failAfter{err: errRead}),
	} {
		if err := b.PutReader(t.Context(), "bad", r, int64(size)); err == nil {
			t.Fatalf("%s reader: PutReader succeeded", name)
		} else {
			t.Logf("%s reader: %v", name, err)
		}
		if _, err := b.Size(t.Context(), "bad"); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("%s reader: Size after failed PutReader: %v; want ErrNotFound", name, err)
		}
		ups, err := b.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(objstoretest.BucketName)})
		if err != nil {
			t.Fatal(err)
		}
		if len(ups.Uploads) != 0 {
			t.Fatalf("%s reader: %d multipart uploads left behind", name, len(ups.Uploads))
		}
	}
}

type failAfter struct{ err error }

func (f *failAfter) Read([]byte) (int, error) { return 0, f.err }

// An object needing more than S3's 10,000 parts is refused before anything
// is read or sent.
func TestPutReaderTooManyParts(t *testing.T) {
	proxy, srv := behindProxy(t)
	b := newBucket(t, srv, "", suiteOptions)
	size := int64(10_001) * objstores3.MinPartSize
	err := b.PutReader(t.Context(), "huge", unreadable{t}, size)
	if err == nil || !strings.Contains(err.Error(), "parts") {
		t.Fatalf("PutReader of %d bytes in 5 MiB parts: %v; want an error about S3's parts limit", size, err)
	}
	if n := proxy.Requests(); n != 0 {
		t.Fatalf("%d requests sent for an impossible upload", n)
	}
}

type unreadable struct{ t *testing.T }

func (u unreadable) Read([]byte) (int, error) {
	u.t.Error("the reader was read")
	return 0, io.ErrUnexpectedEOF
}
