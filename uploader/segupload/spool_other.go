//go:build !linux

package segupload

import "os"

// spoolFile opens a file for a segment's bytes that has no name in dir.
func spoolFile(dir string) (*os.File, error) { return createUnlinked(dir) }
