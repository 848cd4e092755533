package segment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// deletedMarker is in the name of a log directory being deleted:
// "<dir>.deleted-<unix nanos>".
const deletedMarker = ".deleted-"

// Entomb is the crash-safe first step of deleting a log directory (Kafka
// renames a deleted partition's directory to "-delete" the same way): it
// renames dir to "<dir>.deleted-<nanos>" and fsyncs the parent, one atomic
// step. After a crash at any point the directory is either whole (the
// partition still exists) or entombed (recovery skips it as deleted and
// SweepEntombed finishes it), never a half-deleted log that recovery would
// refuse (a gap between segments, WAL records past its end). The caller
// removes the returned path whenever it likes, typically in the background
// so that deleting a large log never blocks a writer. A missing dir is
// not an error (tomb is "").
func Entomb(dir string) (tomb string, err error) {
	tomb = fmt.Sprintf("%s%s%d", filepath.Clean(dir), deletedMarker, time.Now().UnixNano())
	if err := os.Rename(dir, tomb); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("delete %s: %w", dir, err)
	}
	if err := syncDir(filepath.Dir(tomb)); err != nil {
		return tomb, fmt.Errorf("delete %s: sync parent: %w", dir, err)
	}
	return tomb, nil
}

// IsEntombed reports whether a directory entry's name is that of a log
// directory being deleted (see Entomb).
func IsEntombed(name string) bool { return strings.Contains(name, deletedMarker) }

// SweepEntombed lists the directories under parent that Entomb left (their
// deletion was interrupted by a crash, or is still running).
func SweepEntombed(parent string) ([]string, error) {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && IsEntombed(e.Name()) {
			out = append(out, filepath.Join(parent, e.Name()))
		}
	}
	return out, nil
}
