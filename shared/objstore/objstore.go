// Package objstore is Streamline's narrow view of an object store: whole
// immutable objects under '/'-separated keys, written whole (Put from
// memory, PutReader streamed from a reader of known size with memory
// bounded by the implementation's buffers), read whole or by byte range,
// listed by prefix. Diskless and hybrid topics keep their log in it.
//
// Implementations live in subpackages named after this one, so imports never
// collide:
//
//   - objstorefs: a local directory (the all-in-one default);
//   - objstores3: any S3-protocol server through aws-sdk-go-v2;
//   - objstoretest: the conformance suite every implementation passes, plus
//     real S3 servers and a fault-injecting proxy for tests.
//
// Cross-cutting behaviour (key prefixes, later metrics and tracing) is a
// decorator that wraps a Bucket and is itself a Bucket, as in thanos objstore.
// Open picks an implementation from a URL; see its doc for the formats.
//
// Errors are sentinels matched with errors.Is: ErrNotFound, ErrInvalidRange and
// ErrInvalidKey. Implementations wrap them with the key and the cause.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Sentinel errors. Implementations wrap them (fmt.Errorf("...: %w", ...)), so
// match with errors.Is.
var (
	// ErrNotFound: no object under the key.
	ErrNotFound = errors.New("object not found")
	// ErrInvalidRange: a GetRange whose offset is at or past the end of the
	// object, or whose offset or length is negative or zero-length.
	ErrInvalidRange = errors.New("invalid byte range")
	// ErrInvalidKey: a key that ValidKey rejects.
	ErrInvalidKey = errors.New("invalid object key")
)

// BucketReader is the read half of a Bucket. Readers (fetch path, caches)
// should ask for this, not for the whole Bucket.
type BucketReader interface {
	// Get returns the whole object, or an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)

	// GetRange returns length bytes starting at off. A range that runs past
	// the end returns the bytes that exist; off at or beyond the size, a
	// negative off or a length <= 0 is ErrInvalidRange; a missing object is
	// ErrNotFound.
	GetRange(ctx context.Context, key string, off, length int64) ([]byte, error)

	// Size returns the object's size in bytes, or an error wrapping
	// ErrNotFound.
	Size(ctx context.Context, key string) (int64, error)

	// Iter calls fn for every key that starts with prefix (a plain string
	// prefix, not only whole segments: "a/b" matches "a/b/c" and "a/bc"),
	// recursively, in ascending byte order. Paging is handled inside. An
	// error from fn stops the walk and is returned as is.
	Iter(ctx context.Context, prefix string, fn func(key string) error) error
}

// BucketWriter is the write half of a Bucket.
type BucketWriter interface {
	// Put stores data under key, whole: readers see the old object or the
	// new one, never a part. An existing object is replaced (our objects are
	// immutable and uniquely named, so this only happens on retries). A nil
	// error means the object is durably stored; on any doubt Put fails.
	Put(ctx context.Context, key string, data []byte) error

	// PutReader stores the size bytes read from r under key, with Put's
	// guarantees (whole or nothing, durable on nil). Memory is bounded by
	// the implementation's buffers (S3: PartSize x PartConcurrency), not by
	// size. Reading fewer or more than size bytes from r fails the put and
	// stores nothing; so does an error from r, which the returned error
	// wraps. Use it for large objects (merged segments), which Put would
	// need whole in memory.
	PutReader(ctx context.Context, key string, r io.Reader, size int64) error

	// Delete removes the object. A missing key is not an error, so retried
	// deletes and garbage collection are idempotent.
	Delete(ctx context.Context, key string) error
}

// Bucket is an object store bucket (or a prefix of one). Implementations are
// safe for concurrent use. Close releases resources (connections); the Bucket
// must not be used after it.
type Bucket interface {
	BucketReader
	BucketWriter
	Close() error
}

// ValidKey reports whether key is usable in every implementation, so a key
// that works on the local directory works on S3 too. A key is non-empty,
// '/'-separated, with no leading or trailing '/', no empty segment, no
// segment starting with '.' (this rules out "." and ".." and reserves
// dot-names for the directory implementation's temporary and lock files),
// no control characters and at most 1024 bytes (S3's limit). The error
// wraps ErrInvalidKey.
func ValidKey(key string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, why)
	}
	switch {
	case key == "":
		return bad("empty")
	case len(key) > 1024:
		return bad("longer than 1024 bytes")
	}
	for _, c := range key {
		if c < 0x20 || c == 0x7f {
			return bad("control character")
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return bad("empty segment (leading, trailing or double '/')")
		case seg[0] == '.':
			return bad("segment starts with '.'")
		}
	}
	return nil
}

// ValidPrefix reports whether prefix is usable with Iter: "" or a string
// whose complete segments (everything up to its last '/') would be valid in a
// key; the final, partial segment follows the same rules. The error wraps
// ErrInvalidKey.
func ValidPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	probe := prefix
	if strings.HasSuffix(probe, "/") {
		probe += "x" // a complete last segment; check the ones before it
	}
	if err := ValidKey(probe); err != nil {
		return fmt.Errorf("prefix %q: %w", prefix, err)
	}
	return nil
}

// KeySpreading is implemented by a Bucket that says whether the keys of
// new objects should start with a random prefix (objectfmt.NewKey). S3
// scales request rates per key prefix, so spreading keys helps it; in a
// local directory every new prefix is directories to create and fsync
// (and later to prune), for nothing.
type KeySpreading interface {
	SpreadsKeys() bool
}

// SpreadsKeys reports whether new keys in b should be spread over random
// prefixes: what b says (the wrappers of this package ask the bucket they
// wrap), true when it does not say.
func SpreadsKeys(b any) bool {
	if s, ok := b.(KeySpreading); ok {
		return s.SpreadsKeys()
	}
	return true
}
