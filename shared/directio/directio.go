// Package directio holds what writing files with O_DIRECT needs: whether a
// directory's file system takes it, the open flag, and buffers aligned to
// the block size every direct write must be a multiple of.
//
// Streamline writes with O_DIRECT the files nobody reads on the hot path:
// the node WAL (read only at recovery) and the objects of the directory
// object store (read on a cache miss). A buffered write copies every byte
// into the page cache first, and on a saturated node that copy was the
// largest single cost (perf: a third of all CPU samples, in
// copy_folio_from_iter_atomic), while the disk itself was far from busy.
package directio

import (
	"os"
	"path/filepath"
	"unsafe"
)

// Block is the alignment of direct writes: of the buffer's address, the
// file offset and the length. 4 KiB is a multiple of every common logical
// block size (512 B and 4 KiB).
const Block = 4096

// RoundUp is n rounded up to a multiple of Block.
func RoundUp(n int64) int64 { return (n + Block - 1) &^ (Block - 1) }

// Supported reports whether files in dir can be written with O_DIRECT: it
// opens and writes one block of a probe file, then removes it (some file
// systems accept the flag and refuse the write).
func Supported(dir string) bool {
	if Flag == 0 {
		return false
	}
	p := filepath.Join(dir, ".direct-io-probe")
	defer os.Remove(p)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|Flag, 0o644)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.WriteAt(AlignedBuffer(Block), 0)
	return err == nil
}

// AlignedBuffer returns n bytes whose address is a multiple of Block.
func AlignedBuffer(n int) []byte {
	b := make([]byte, n+Block)
	off := int(-uintptr(unsafe.Pointer(&b[0])) & (Block - 1))
	return b[off : off+n : off+n]
}
