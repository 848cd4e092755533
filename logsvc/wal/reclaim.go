package wal

import (
	"errors"
	"os"
	"strings"

	"github.com/streamline-dev/streamline/shared/reclaim"
)

// A pruned file is given back to the file system slowly, in the
// background: after 3 GiB at full speed the first checkpoint prunes some
// thirty 64 MiB files, and unlinking them at once is a journal commit the
// group commit's fsync waits tens of milliseconds behind (package
// reclaim). Prune renames each to a trash name first (prunedSuffix),
// which no Open reads as a WAL file, so a crash mid-way leaves only
// trash, which Open removes, never a shortened WAL file.
const prunedSuffix = ".pruned"

// trash renames a pruned file out of the WAL's names; its path then.
func trash(path string) (string, error) {
	t := path + prunedSuffix
	if err := os.Rename(path, t); err != nil {
		return "", err
	}
	return t, nil
}

// reclaimTrash gives the trashed files back in the background, one
// reclaimer at a time, until Close.
func (w *WAL) reclaimTrash(paths []string) {
	if len(paths) == 0 {
		return
	}
	w.reclaimMu.Lock()
	defer w.reclaimMu.Unlock()
	w.trashed = append(w.trashed, paths...)
	if w.reclaiming {
		return
	}
	select {
	case <-w.closing:
		return // Open of the next run removes them
	default:
	}
	w.reclaiming = true
	w.reclaimWG.Add(1)
	go w.reclaimLoop()
}

func (w *WAL) reclaimLoop() {
	defer w.reclaimWG.Done()
	for {
		w.reclaimMu.Lock()
		if len(w.trashed) == 0 {
			w.reclaiming = false
			w.reclaimMu.Unlock()
			return
		}
		p := w.trashed[0]
		w.trashed = w.trashed[1:]
		w.reclaimMu.Unlock()
		if err := reclaim.Default.Remove(p, w.closing); errors.Is(err, reclaim.ErrStopped) {
			w.reclaimMu.Lock()
			w.reclaiming = false
			w.reclaimMu.Unlock()
			return
		}
		// Any other failure leaves the trash for the next Open.
	}
}

// removeTrash removes what a run before this one left of pruned files.
func removeTrash(dir string) error {
	return reclaim.Sweep(dir, func(name string) bool { return strings.HasSuffix(name, prunedSuffix) })
}
