package objstores3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/streamline-dev/streamline/shared/objstore/internal/exactreader"
)

// newBody wraps data in a seekable reader: the SDK needs to seek to hash the
// payload for SigV4 over plain HTTP and to rewind it for each retry.
func newBody(data []byte) *bytes.Reader { return bytes.NewReader(data) }

// Put stores data: one PutObject up to the multipart threshold, a multipart
// upload above it.
func (b *Bucket) Put(ctx context.Context, key string, data []byte) error {
	k, err := b.key(key)
	if err != nil {
		return err
	}
	if int64(len(data)) > b.o.MultipartThreshold {
		return b.putMultipart(ctx, key, k, int64(len(data)), sliceParts(data))
	}
	return b.putObject(ctx, key, k, data)
}

// PutReader stores the size bytes of r. Up to the multipart threshold they
// are read into memory and sent as Put sends them; above it they go up as a
// multipart upload that reads one part at a time from r into one of
// PartConcurrency buffers of PartSize, reused as parts complete. A reader
// with fewer or more bytes than size, or failing, aborts the upload.
func (b *Bucket) PutReader(ctx context.Context, key string, r io.Reader, size int64) error {
	k, err := b.key(key)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("objstores3: put %q: negative size %d", key, size)
	}
	src := exactreader.New(ctx, r, size)
	if size > b.o.MultipartThreshold {
		return b.putMultipart(ctx, key, k, size, readParts(src))
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(src, data); err != nil {
		return fmt.Errorf("objstores3: put %q: %w", key, err)
	}
	if err := src.Check(); err != nil {
		return fmt.Errorf("objstores3: put %q: %w", key, err)
	}
	return b.putObject(ctx, key, k, data)
}

// putObject stores data with a single PutObject.
func (b *Bucket) putObject(ctx context.Context, key, k string, data []byte) error {
	_, err := b.c.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &b.o.Bucket,
		Key:           &k,
		Body:          newBody(data),
		ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		return mapErr("put", key, err)
	}
	return nil
}

// nextPart returns the object's next n bytes: its parts are asked for in
// order. buf is memory the part may be read into, which stays the caller's
// until the part is uploaded and then comes back for a later part: nil the
// first time, then a part this function returned.
type nextPart func(buf []byte, n int64) ([]byte, error)

// sliceParts cuts the parts out of data, which is all in memory already.
func sliceParts(data []byte) nextPart {
	var off int64
	return func(_ []byte, n int64) ([]byte, error) {
		off += n
		return data[off-n : off], nil
	}
}

// readParts reads each part from src into buf, so an upload holds at most
// one buffer per part in flight. Reading the last part checks that src ends
// there: a longer reader fails before the upload completes.
func readParts(src *exactreader.Reader) nextPart {
	return func(buf []byte, n int64) ([]byte, error) {
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(src, buf); err != nil {
			return nil, err
		}
		if src.Remaining() == 0 {
			if err := src.Check(); err != nil {
				return nil, err
			}
		}
		return buf, nil
	}
}

// putMultipart uploads the size bytes that next hands out in parts of
// PartSize, PartConcurrency at a time. Each part carries a CRC32 the server
// checks, and the completion lists them so the server checks the whole. Any
// failure (including the caller's context ending or next failing) aborts the
// upload, so no half object ever appears and the stored parts are freed. If
// even the abort fails, the parts linger until the bucket's lifecycle rule
// for incomplete uploads removes them.
//
// A retried CompleteMultipartUpload whose first try succeeded unseen answers
// NoSuchUpload: Put then reports an error although the object exists. That
// errs on the safe side (a false failure, never a false success); callers
// retry, and objects are immutable, so the retry writes the same bytes.
func (b *Bucket) putMultipart(ctx context.Context, key, k string, size int64, next nextPart) (err error) {
	partSize := b.o.PartSize
	nparts := int((size + partSize - 1) / partSize)
	if nparts > maxParts {
		return fmt.Errorf("objstores3: put %q: %d bytes need %d parts of %d, over S3's %d", key, size, nparts, partSize, maxParts)
	}
	created, err := b.c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            &b.o.Bucket,
		Key:               &k,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return mapErr("put (create multipart)", key, err)
	}
	id := created.UploadId
	defer func() {
		if err != nil {
			if aerr := b.abort(ctx, k, id); aerr != nil {
				err = errors.Join(err, aerr)
			}
		}
	}()

	parts, err := b.uploadParts(ctx, k, id, size, nparts, next)
	if err != nil {
		return mapErr("put (upload part)", key, err)
	}
	_, err = b.c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &b.o.Bucket,
		Key:             &k,
		UploadId:        id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return mapErr("put (complete multipart)", key, err)
	}
	return nil
}

// uploadParts uploads every part and returns them in order. A part is asked
// of next only once fewer than PartConcurrency parts are in flight, and
// reuses the buffer of a part that finished, so at most PartConcurrency
// parts are held at once. The first failed part cancels the parts still
// running or waiting; a failed read stops asking for parts and lets those
// in flight finish (so the abort that follows finds them all).
func (b *Bucket) uploadParts(ctx context.Context, k string, id *string, size int64, nparts int, next nextPart) ([]types.CompletedPart, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	parts := make([]types.CompletedPart, nparts)
	// A slot per part in flight, carrying the buffer its last part used.
	slots := make(chan []byte, b.o.PartConcurrency)
	for range b.o.PartConcurrency {
		slots <- nil
	}
	var wg sync.WaitGroup
	var readErr error
	for i := range nparts {
		var buf []byte
		select {
		case buf = <-slots:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		num := int32(i + 1)
		off := int64(i) * b.o.PartSize
		chunk, err := next(buf, min(b.o.PartSize, size-off))
		if err != nil {
			// The parts in flight are left to finish before the caller
			// aborts: a part canceled client-side may still be stored
			// server-side after the abort, leaving the upload behind.
			readErr = fmt.Errorf("part %d: reading the object: %w", num, err)
			break
		}
		wg.Go(func() {
			defer func() { slots <- chunk }()
			out, err := b.c.UploadPart(ctx, &s3.UploadPartInput{
				Bucket:            &b.o.Bucket,
				Key:               &k,
				UploadId:          id,
				PartNumber:        &num,
				Body:              newBody(chunk),
				ContentLength:     aws.Int64(int64(len(chunk))),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
			})
			if err != nil {
				cancel(fmt.Errorf("part %d: %w", num, err))
				return
			}
			parts[num-1] = types.CompletedPart{PartNumber: &num, ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32}
		})
	}
	wg.Wait()
	if readErr != nil {
		return nil, readErr
	}
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return parts, nil
}

// abort runs even when ctx is already canceled (the usual reason to abort),
// on a context of its own with a bound.
func (b *Bucket) abort(ctx context.Context, k string, id *string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := b.c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &b.o.Bucket, Key: &k, UploadId: id})
	var gone *types.NoSuchUpload
	if err != nil && !errors.As(err, &gone) {
		return fmt.Errorf("objstores3: abort multipart upload of %q: %w", k, err)
	}
	return nil
}
