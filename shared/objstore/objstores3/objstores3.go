// Package objstores3 is the objstore.Bucket for S3 and S3-protocol servers,
// on aws-sdk-go-v2's plain S3 client.
//
// The bucket must exist (CreateBucket makes one for tests); operations on a
// missing bucket fail with the server's NoSuchBucket error, never with
// objstore.ErrNotFound, so a misconfiguration is not taken for a missing
// object. (HEAD answers carry no error code, so Size cannot tell the two
// apart.)
//
// How the hard parts work:
//   - Retries: the SDK's standard retryer, at most Options.MaxAttempts
//     tries per request, retries refused, reset and dropped connections,
//     HTTP 500/502/503/504, throttling codes such as SlowDown (jittered
//     exponential backoff from 1 s, capped at Options.MaxBackoff) and
//     timeouts. Request bodies are bytes.Readers so each try can rewind.
//   - Timeouts: Options.AttemptTimeout bounds each try, body included, so a
//     hung connection costs one try, not the call. Get also retries a body
//     that breaks off mid-read, which the SDK cannot see: it has returned
//     by then.
//   - Multipart: objects above Options.MultipartThreshold go up in parts
//     (put.go), with CRC32 checksums per part and an abort on any failure.
//     The deprecated transfer manager is not used.
//   - Streaming: PutReader sends objects up to the threshold as Put does,
//     read into memory first; larger ones go up in parts read from the
//     caller's reader one at a time, so it holds at most PartSize x
//     PartConcurrency bytes of the object whatever its size. Put and
//     PutReader share the multipart code.
//   - Ranges: GetRange sends a Range header; S3's 416 becomes
//     objstore.ErrInvalidRange.
//   - Listing: ListObjectsV2, paged by the SDK's paginator, in S3's
//     ascending UTF-8 byte order.
//
// Registered with objstore.Open for s3:// URLs: see ParseURL.
package objstores3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/streamline-dev/streamline/shared/objstore"
)

// Bucket is an S3 bucket, or a prefix of one. Safe for concurrent use.
type Bucket struct {
	o      Options
	prefix string // "" or Options.Prefix + "/"
	c      *s3.Client
	tr     *http.Transport
}

var _ objstore.Bucket = (*Bucket)(nil)

// New returns a Bucket. It does not contact the server.
func New(ctx context.Context, o Options) (*Bucket, error) {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("objstores3: %w", err)
	}
	c, tr, err := newClient(ctx, o)
	if err != nil {
		return nil, err
	}
	b := &Bucket{o: o, c: c, tr: tr}
	if o.Prefix != "" {
		b.prefix = o.Prefix + "/"
	}
	return b, nil
}

// Client is the underlying SDK client, for what the interface does not
// cover (tests, bucket administration).
func (b *Bucket) Client() *s3.Client { return b.c }

// Close drops idle connections.
func (b *Bucket) Close() error {
	b.tr.CloseIdleConnections()
	return nil
}

// key validates a caller's key and returns the S3 key.
func (b *Bucket) key(key string) (string, error) {
	if err := objstore.ValidKey(key); err != nil {
		return "", err
	}
	return b.prefix + key, nil
}

// mapErr wraps err with the operation and key, turning S3's "no such
// object" and "unsatisfiable range" into the objstore sentinels.
func mapErr(op, key string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("objstores3: %s %q: %w", op, key, err)
	}
	code, status := "", 0
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	switch {
	case code == "NoSuchKey" || (code == "NotFound" && status == http.StatusNotFound):
		return fmt.Errorf("objstores3: %s %q: %w", op, key, objstore.ErrNotFound)
	case code == "InvalidRange" || status == http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("objstores3: %s %q: %w", op, key, objstore.ErrInvalidRange)
	}
	return fmt.Errorf("objstores3: %s %q: %w", op, key, err)
}

// Get returns the whole object.
func (b *Bucket) Get(ctx context.Context, key string) ([]byte, error) {
	k, err := b.key(key)
	if err != nil {
		return nil, err
	}
	// A whole object is checked against the checksum stored with it.
	data, _, err := b.get(ctx, &s3.GetObjectInput{Bucket: &b.o.Bucket, Key: &k, ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		return nil, mapErr("get", key, err)
	}
	return data, nil
}

// GetRange returns up to length bytes at off.
func (b *Bucket) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	if off < 0 || length <= 0 {
		return nil, fmt.Errorf("objstores3: %q offset %d length %d: %w", key, off, length, objstore.ErrInvalidRange)
	}
	k, err := b.key(key)
	if err != nil {
		return nil, err
	}
	rng := fmt.Sprintf("bytes=%d-", off)
	if end := off + length - 1; end >= off { // else it overflowed: to the end
		rng += fmt.Sprint(end)
	}
	// No checksum mode on a range: an object's stored checksum covers the
	// whole object, and some servers send it with partial content anyway,
	// which would fail every ranged read. Record batches carry their own
	// CRCs, which consumers verify.
	data, contentRange, err := b.get(ctx, &s3.GetObjectInput{Bucket: &b.o.Bucket, Key: &k, Range: &rng})
	if err != nil {
		return nil, mapErr("get range", key, err)
	}
	if contentRange == "" {
		// A server that ignores Range sends the whole object with 200.
		if off >= int64(len(data)) {
			return nil, fmt.Errorf("objstores3: %q offset %d, size %d: %w", key, off, len(data), objstore.ErrInvalidRange)
		}
		data = data[off:min(int64(len(data)), off+length)]
	}
	return data, nil
}

// get runs a GetObject and reads its body, retrying the pair when the body
// breaks off: the SDK's retries end when the headers arrive.
func (b *Bucket) get(ctx context.Context, in *s3.GetObjectInput) (data []byte, contentRange string, err error) {
	for attempt := 1; ; attempt++ {
		out, err := b.c.GetObject(ctx, in)
		if err != nil {
			return nil, "", err
		}
		data, err = readBody(out)
		if err == nil {
			return data, aws.ToString(out.ContentRange), nil
		}
		if ctx.Err() != nil || attempt >= b.o.MaxAttempts {
			return nil, "", fmt.Errorf("reading body (attempt %d): %w", attempt, err)
		}
		select {
		case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
		case <-ctx.Done():
			return nil, "", ctx.Err()
		}
	}
}

func readBody(out *s3.GetObjectOutput) ([]byte, error) {
	defer out.Body.Close()
	n := aws.ToInt64(out.ContentLength)
	if n < 0 {
		return io.ReadAll(out.Body)
	}
	// Read exactly the announced length (a short body is an error even if
	// the connection ended cleanly), then on to EOF: that is when the SDK
	// checks the response checksum, when the server sent one.
	data := make([]byte, n)
	if _, err := io.ReadFull(out.Body, data); err != nil {
		return nil, err
	}
	if rest, err := io.ReadAll(out.Body); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("body beyond its Content-Length %d (%d more bytes): %v", n, len(rest), err)
	}
	return data, nil
}

// Size returns the object's size (HeadObject).
func (b *Bucket) Size(ctx context.Context, key string) (int64, error) {
	k, err := b.key(key)
	if err != nil {
		return 0, err
	}
	out, err := b.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.o.Bucket, Key: &k})
	if err != nil {
		return 0, mapErr("size", key, err)
	}
	return aws.ToInt64(out.ContentLength), nil
}

// Delete removes the object; S3 itself answers 204 for a missing key, and a
// server that says NoSuchKey instead is treated the same way.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	k, err := b.key(key)
	if err != nil {
		return err
	}
	_, err = b.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.o.Bucket, Key: &k})
	if err != nil {
		if err = mapErr("delete", key, err); !errors.Is(err, objstore.ErrNotFound) {
			return err
		}
	}
	return nil
}

// Iter lists keys under prefix, a page of ListPageSize at a time.
func (b *Bucket) Iter(ctx context.Context, prefix string, fn func(key string) error) error {
	if err := objstore.ValidPrefix(prefix); err != nil {
		return err
	}
	p := s3.NewListObjectsV2Paginator(b.c, &s3.ListObjectsV2Input{
		Bucket:  &b.o.Bucket,
		Prefix:  aws.String(b.prefix + prefix),
		MaxKeys: aws.Int32(b.o.ListPageSize),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return mapErr("list", prefix, err)
		}
		for _, obj := range page.Contents {
			if err := fn(strings.TrimPrefix(aws.ToString(obj.Key), b.prefix)); err != nil {
				return err
			}
		}
	}
	return nil
}
