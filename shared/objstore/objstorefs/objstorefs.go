// Package objstorefs is the local-directory objstore.Bucket, the all-in-one
// default: key "a/b/c" is the file <root>/a/b/c.
//
// Put and PutReader are atomic and durable: they write a temporary file in
// the key's own directory (same filesystem, so the rename cannot be a copy),
// fsync it, rename it over the key and fsync the directory, creating missing
// directories the same way. A crash leaves either the old object, the new
// one, or no object, plus at worst a stray temporary file; never a half
// object under its key. Temporary files start with '.', which keys may not
// (objstore.ValidKey), so Iter never shows them.
//
// PutReader streams into the temporary file through a 256 KiB buffer,
// whatever the object's size, and renames it only once the reader has given
// exactly the size announced and ended there; on any failure (a short, long
// or failing reader, the context ending) the temporary file is removed.
//
// Where the file system takes O_DIRECT (probed by New; Bucket.DirectIO),
// objects are written with it, bypassing the page cache (direct.go); reads
// stay buffered.
//
// One limit S3 does not have: a key cannot also be a "directory" of other
// keys ("a/b" and "a/b/c" cannot both exist). Streamline's key layout never
// needs that; Put reports it as an error.
//
// Registered with objstore.Open for file:///abs/dir URLs.
package objstorefs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/streamline-dev/streamline/shared/directio"
	"github.com/streamline-dev/streamline/shared/objstore"
	"github.com/streamline-dev/streamline/shared/objstore/internal/exactreader"
)

func init() { objstore.Register("file", openURL) }

// Bucket is a directory of objects. It is safe for concurrent use, also by
// several processes, since every change is a single rename or unlink.
type Bucket struct {
	root string // absolute, cleaned
	// dirs remembers directories a put found or made, so the next put into
	// one skips mkdirAll's syscalls (a put per rolled hybrid segment would
	// otherwise make one mkdir per key segment). It may go stale when a
	// Delete prunes a directory: the put's CreateTemp then fails with
	// ENOENT and starts over through mkdirAll.
	dirs sync.Map // string -> struct{}
	// ndirs bounds dirs; past maxCachedDirs it is emptied.
	ndirs atomic.Int64
	// direct: objects are written with O_DIRECT (direct.go).
	direct atomic.Bool
}

// SpreadsKeys implements objstore.KeySpreading: spreading keys over
// random prefixes would make every new object two directories to create
// and fsync.
func (b *Bucket) SpreadsKeys() bool { return false }

// maxCachedDirs bounds Bucket.dirs (keys with time in their directories
// would otherwise grow it forever).
const maxCachedDirs = 4096

var _ objstore.Bucket = (*Bucket)(nil)

// New returns the Bucket rooted at dir, creating dir if needed.
func New(dir string) (*Bucket, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("objstorefs: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("objstorefs: %w", err)
	}
	b := &Bucket{root: abs}
	b.direct.Store(directio.Supported(abs))
	return b, nil
}

// DirectIO reports whether objects are written with O_DIRECT (direct.go).
func (b *Bucket) DirectIO() bool { return b.direct.Load() }

// openURL accepts file:///abs/dir (or file://localhost/abs/dir) and nothing
// else: a relative path would depend on the working directory of whichever
// process parses the flag.
func openURL(_ context.Context, u *url.URL, _ objstore.OpenConfig) (objstore.Bucket, error) {
	switch {
	case u.Opaque != "":
		return nil, fmt.Errorf("objstorefs: URL %q: path must be absolute, as in file:///var/lib/streamline/objects", u.Redacted())
	case u.Host != "" && u.Host != "localhost":
		return nil, fmt.Errorf("objstorefs: URL %q: host %q not supported: use file:///abs/path", u.Redacted(), u.Host)
	case u.Path == "" || !strings.HasPrefix(u.Path, "/"):
		return nil, fmt.Errorf("objstorefs: URL %q: missing absolute path: use file:///abs/path", u.Redacted())
	case u.RawQuery != "":
		return nil, fmt.Errorf("objstorefs: URL %q: query parameters %q not supported", u.Redacted(), u.RawQuery)
	}
	return New(u.Path)
}

// Root is the directory the bucket lives in.
func (b *Bucket) Root() string { return b.root }

func (b *Bucket) path(key string) string { return filepath.Join(b.root, filepath.FromSlash(key)) }

// Put writes data under key atomically; see the package doc.
func (b *Bucket) Put(ctx context.Context, key string, data []byte) error {
	return b.put(ctx, key, int64(len(data)), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// copyBufferSize is the buffer PutReader copies through: a PutReader holds
// no more of the object in memory than this.
const copyBufferSize = 256 << 10

// PutReader streams exactly size bytes from r into the temporary file, then
// makes it the object as Put does; see the package doc.
func (b *Bucket) PutReader(ctx context.Context, key string, r io.Reader, size int64) error {
	if size < 0 {
		return fmt.Errorf("objstorefs: put %q: negative size %d", key, size)
	}
	return b.put(ctx, key, size, func(w io.Writer) error {
		// writerOnly hides the file's ReadFrom, which would copy through a
		// buffer of its own choosing.
		_, err := io.CopyBuffer(writerOnly{w}, exactreader.New(ctx, r, size), make([]byte, min(size, copyBufferSize)+1))
		return err
	})
}

type writerOnly struct{ io.Writer }

// put writes an object of about size bytes atomically: write fills the
// temporary file, which put then fsyncs, renames over the key and makes
// durable.
func (b *Bucket) put(ctx context.Context, key string, size int64, write func(io.Writer) error) error {
	if err := objstore.ValidKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dst := b.path(key)
	dir := filepath.Dir(dst)
	var tmp *os.File
	// A concurrent Delete may prune a directory we just made, before we
	// make its child or our temporary file in it; starting over a few
	// times settles that race.
	for attempt := 0; ; attempt++ {
		var err error
		if _, known := b.dirs.Load(dir); !known || attempt > 0 {
			err = b.mkdirAll(dir)
		}
		if err == nil {
			tmp, err = os.CreateTemp(dir, ".put-*")
		}
		if err == nil {
			b.rememberDir(dir)
			break
		}
		b.dirs.Delete(dir)
		if !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			return fmt.Errorf("objstorefs: put %q: %w", key, err)
		}
	}
	err := b.writeTemp(tmp, size, write)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("objstorefs: put %q: %w", key, err)
	}
	// The rename is only durable once the directory entry is.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("objstorefs: put %q: %w", key, err)
	}
	return nil
}

// rememberDir adds dir to the directories puts skip mkdirAll for.
func (b *Bucket) rememberDir(dir string) {
	if _, loaded := b.dirs.LoadOrStore(dir, struct{}{}); loaded {
		return
	}
	if b.ndirs.Add(1) > maxCachedDirs {
		b.dirs.Clear()
		b.ndirs.Store(0)
	}
}

// mkdirAll creates dir and its missing parents below the root, fsyncing each
// parent that gained an entry, so a durable object is never in a directory
// that a crash can lose.
func (b *Bucket) mkdirAll(dir string) error {
	rel, err := filepath.Rel(b.root, dir)
	if err != nil || rel == "." {
		return err
	}
	cur := b.root
	for seg := range strings.SplitSeq(rel, string(filepath.Separator)) {
		parent := cur
		cur = filepath.Join(cur, seg)
		switch err := os.Mkdir(cur, 0o755); {
		case err == nil:
			if err := syncDir(parent); err != nil {
				return err
			}
		case errors.Is(err, fs.ErrExist):
			// Exists: fine if it is a directory; if it is an object, the
			// CreateTemp below fails with a clear ENOTDIR.
		default:
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// notFound maps the ways a path can fail to be an object to ErrNotFound: it
// is absent, a path component is a file, or it is a directory of other keys.
func notFound(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) {
		return fmt.Errorf("objstorefs: %q: %w", key, objstore.ErrNotFound)
	}
	return fmt.Errorf("objstorefs: %q: %w", key, err)
}

// open returns the object's file and size.
func (b *Bucket) open(ctx context.Context, key string) (*os.File, int64, error) {
	if err := objstore.ValidKey(key); err != nil {
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(b.path(key))
	if err != nil {
		return nil, 0, notFound(key, err)
	}
	st, err := f.Stat()
	if err == nil && st.IsDir() {
		err = syscall.EISDIR
	}
	if err != nil {
		f.Close()
		return nil, 0, notFound(key, err)
	}
	return f, st.Size(), nil
}

// Get returns the whole object.
func (b *Bucket) Get(ctx context.Context, key string) ([]byte, error) {
	f, size, err := b.open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("objstorefs: get %q: %w", key, err)
	}
	return data, nil
}

// GetRange returns up to length bytes at off; see objstore.BucketReader.
func (b *Bucket) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	if off < 0 || length <= 0 {
		return nil, fmt.Errorf("objstorefs: %q offset %d length %d: %w", key, off, length, objstore.ErrInvalidRange)
	}
	f, size, err := b.open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if off >= size {
		return nil, fmt.Errorf("objstorefs: %q offset %d, size %d: %w", key, off, size, objstore.ErrInvalidRange)
	}
	data := make([]byte, min(length, size-off))
	if _, err := f.ReadAt(data, off); err != nil {
		return nil, fmt.Errorf("objstorefs: get %q: %w", key, err)
	}
	return data, nil
}

// Size returns the object's size.
func (b *Bucket) Size(ctx context.Context, key string) (int64, error) {
	if err := objstore.ValidKey(key); err != nil {
		return 0, err
	}
	st, err := os.Stat(b.path(key))
	if err == nil && st.IsDir() {
		err = syscall.EISDIR
	}
	if err != nil {
		return 0, notFound(key, err)
	}
	return st.Size(), nil
}

// Delete removes the object and then the directories it leaves empty, so
// garbage collection does not leave a tree of empty directories behind.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := objstore.ValidKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := b.path(key)
	st, err := os.Lstat(p)
	switch {
	case err != nil && errors.Is(notFound(key, err), objstore.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("objstorefs: delete %q: %w", key, err)
	case st.IsDir():
		return nil // a directory of other keys, not an object
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("objstorefs: delete %q: %w", key, err)
	}
	dir := filepath.Dir(p)
	if err := syncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("objstorefs: delete %q: %w", key, err)
	}
	// Remove fails on a non-empty directory, which is what stops the climb;
	// a Put racing with it recreates the directory (see Put).
	for dir != b.root && os.Remove(dir) == nil {
		dir = filepath.Dir(dir)
	}
	return nil
}

// Iter walks the directory under the prefix's complete segments and calls fn
// in key order (collected and sorted first: directory order is not byte
// order, since '/' sorts between other characters).
func (b *Bucket) Iter(ctx context.Context, prefix string, fn func(key string) error) error {
	if err := objstore.ValidPrefix(prefix); err != nil {
		return err
	}
	start := b.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = b.path(prefix[:i])
	}
	var keys []string
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// Gone (deleted while we walk, or never there) or not a
			// directory (the prefix names an object's parent path): no keys.
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == b.root {
			return nil
		}
		rel, err := filepath.Rel(b.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil // temporary files and the like
		}
		if d.IsDir() {
			if dk := key + "/"; !strings.HasPrefix(dk, prefix) && !strings.HasPrefix(prefix, dk) {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("objstorefs: iter %q: %w", prefix, err)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

// Close does nothing: the bucket holds no open files between calls.
func (b *Bucket) Close() error { return nil }
