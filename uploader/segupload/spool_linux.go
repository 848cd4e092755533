//go:build linux

package segupload

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// spoolFile opens a file for a segment's bytes that has no name in dir,
// so a process killed at any moment leaves nothing behind: Linux's
// O_TMPFILE creates it without a name; a filesystem without O_TMPFILE
// gets a file created and unlinked at once.
func spoolFile(dir string) (*os.File, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.OpenFile(dir, os.O_RDWR|unix.O_TMPFILE, 0o600)
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EISDIR), errors.Is(err, unix.EINVAL):
		return createUnlinked(dir)
	}
	return nil, err
}
