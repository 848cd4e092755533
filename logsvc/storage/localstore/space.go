package localstore

import (
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/streamline-dev/streamline/logsvc/storage"
)

// DefaultMinFreeBytes is the free space a node keeps on its data
// filesystem by default (Options.MinFreeBytes, logsvc --min-free-bytes):
// room for a WAL file roll, segment rolls and index files of a busy node,
// so that appends are refused cleanly before the filesystem is really
// full (Redpanda's storage_min_free_bytes works the same way).
const DefaultMinFreeBytes = 64 << 20

// spaceGuard answers whether the data filesystem has room, from statfs
// read at most every spaceCheckEvery: cheap enough for every append.
type spaceGuard struct {
	dir string
	min int64

	mu      sync.Mutex
	checked time.Time
	free    int64
	err     error
}

const spaceCheckEvery = 100 * time.Millisecond

func newSpaceGuard(dir string, min int64) *spaceGuard { return &spaceGuard{dir: dir, min: min} }

// check returns an error wrapping storage.ErrNoSpace when the free space
// is below the minimum.
func (g *spaceGuard) check() error {
	if g.min < 0 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.checked) >= spaceCheckEvery {
		var st syscall.Statfs_t
		if err := syscall.Statfs(g.dir, &st); err != nil {
			g.err = err
		} else {
			g.free, g.err = int64(st.Bavail)*int64(st.Bsize), nil
		}
		g.checked = time.Now()
	}
	if g.err == nil && g.free < g.min {
		return fmt.Errorf("%w: %d bytes free on the data filesystem of %s, below the %d bytes kept free (--min-free-bytes)", storage.ErrNoSpace, g.free, g.dir, g.min)
	}
	return nil
}

// CheckSpace implements storage.SpaceChecker: the data filesystem is below
// its reserve, or a segment write of this log is being retried for lack of
// space.
func (l *Log) CheckSpace() error {
	if l.stalled.Load() {
		return fmt.Errorf("%w: a segment write of %s is waiting for disk space", storage.ErrNoSpace, l.stream)
	}
	return l.e.space.check()
}
