package objstores3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// newBody wraps data in a seekable reader: the SDK needs to seek to hash the
// payload for SigV4 over plain HTTP and to rewind it for each retry.
func newBody(data []byte) *bytes.Reader { return bytes.NewReader(data) }

// putMultipart uploads data in parts of PartSize, PartConcurrency at a time.
// Each part carries a CRC32 the server checks, and the completion lists them
// so the server checks the whole. Any failure (including the caller's
// context ending) aborts the upload, so no half object ever appears and the
// stored parts are freed. If even the abort fails, the parts linger until
// the bucket's lifecycle rule for incomplete uploads removes them.
//
// A retried CompleteMultipartUpload whose first try succeeded unseen answers
// NoSuchUpload: Put then reports an error although the object exists. That
// errs on the safe side (a false failure, never a false success); callers
// retry, and objects are immutable, so the retry writes the same bytes.
func (b *Bucket) putMultipart(ctx context.Context, key, k string, data []byte) (err error) {
	size, partSize := int64(len(data)), b.o.PartSize
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

	parts, err := b.uploadParts(ctx, k, id, data, nparts)
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

// uploadParts uploads every part and returns them in order. The first error
// cancels the parts still running or waiting.
func (b *Bucket) uploadParts(ctx context.Context, k string, id *string, data []byte, nparts int) ([]types.CompletedPart, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	parts := make([]types.CompletedPart, nparts)
	sem := make(chan struct{}, b.o.PartConcurrency)
	var wg sync.WaitGroup
	for i := range nparts {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		num := int32(i + 1)
		chunk := data[int64(i)*b.o.PartSize : min(int64(i+1)*b.o.PartSize, int64(len(data)))]
		wg.Go(func() {
			defer func() { <-sem }()
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
