package segupload

import "os"

// createUnlinked creates a spool file in dir and unlinks it at once: the
// open handle is all an upload needs. A process killed between the two
// calls leaves an empty file; spool_linux.go avoids even that.
func createUnlinked(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, ".segupload-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
