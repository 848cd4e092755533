package segment

import (
	"os"

	"golang.org/x/sys/unix"
)

// writeback asks the kernel to start writing the dirty pages of f in
// [off, off+n) to the device and returns without waiting for them
// (SYNC_FILE_RANGE_WRITE). It promises nothing about durability: that is
// still the fsync of a checkpoint or a roll, which then finds little left
// to write. Failures are ignored for the same reason; a file closed
// meanwhile (retention) is skipped: Control holds the descriptor open for
// the call or refuses it.
func writeback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
