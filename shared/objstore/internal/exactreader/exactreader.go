// Package exactreader holds a reader to an announced size: what
// implementations of objstore.BucketWriter.PutReader read their input
// through, so that a reader with fewer or more bytes than the size, or a
// caller whose context ends, fails the put the same way everywhere.
package exactreader

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Reader reads exactly size bytes from an underlying reader.
type Reader struct {
	ctx  context.Context
	r    io.Reader
	size int64
	left int64 // bytes still to read
	err  error // sticky: the first failure, or io.EOF once the end is checked
}

// New returns a Reader of the size bytes of r. Reading stops with ctx's
// error once ctx ends (checked before each read of r).
func New(ctx context.Context, r io.Reader, size int64) *Reader {
	return &Reader{ctx: ctx, r: r, size: size, left: size}
}

// Read reads from r, never past size bytes. A reader that ends early gives
// an error wrapping io.ErrUnexpectedEOF, errors from r or ctx are returned
// wrapped, and once size bytes were read Read checks that r is at its end:
// io.EOF if so, an error if r holds more. Errors are sticky.
func (e *Reader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		e.err = e.atEnd()
		return 0, e.err
	}
	if err := e.ctx.Err(); err != nil {
		e.err = err
		return 0, err
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err == nil || (err == io.EOF && e.left == 0):
		return n, nil // a final io.EOF comes from the end check
	case err == io.EOF:
		e.err = fmt.Errorf("reader ended after %d of %d bytes: %w", e.size-e.left, e.size, io.ErrUnexpectedEOF)
	default:
		e.err = fmt.Errorf("reading byte %d of %d: %w", e.size-e.left, e.size, err)
	}
	return n, e.err
}

// Remaining is how many of the size bytes are still to be read.
func (e *Reader) Remaining() int64 { return e.left }

// Check reports whether exactly size bytes were read and r ends there. Call
// it once the consumer has read size bytes (io.ReadFull never asks for more,
// so it never sees the end itself).
func (e *Reader) Check() error {
	switch {
	case e.err == io.EOF:
		return nil
	case e.err != nil:
		return e.err
	case e.left > 0:
		e.err = fmt.Errorf("only %d of %d bytes read", e.size-e.left, e.size)
		return e.err
	}
	if e.err = e.atEnd(); e.err == io.EOF {
		return nil
	}
	return e.err
}

// atEnd probes r for one byte more than size: io.EOF is the good answer.
func (e *Reader) atEnd() error {
	var one [1]byte
	switch n, err := io.ReadFull(e.r, one[:]); {
	case n > 0:
		return fmt.Errorf("reader holds more than the %d bytes announced", e.size)
	case errors.Is(err, io.EOF):
		return io.EOF
	default:
		return fmt.Errorf("reading past the %d bytes announced: %w", e.size, err)
	}
}
