package segment

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenLeftoversOfDeletedSegments: a crash while retention removed the
// oldest segment. Index files whose .log is gone are deleted by Open; a
// .log whose indexes are gone is kept and re-indexed. Nothing else changes.
func TestOpenLeftoversOfDeletedSegments(t *testing.T) {
	dir, bs, _ := buildTornFixture(t)
	logs := segFiles(t, dir, ".log")
	firstBase := strings.TrimSuffix(filepath.Base(logs[0]), ".log")
	secondBase := strings.TrimSuffix(filepath.Base(logs[1]), ".log")

	// .log of the first segment removed, its indexes left behind.
	d := copyDir(t, dir)
	if err := os.Remove(filepath.Join(d, firstBase+".log")); err != nil {
		t.Fatal(err)
	}
	l := openLog(t, d, fixtureCfg)
	for _, suffix := range []string{".index", ".timeindex"} {
		if _, err := os.Stat(filepath.Join(d, firstBase+suffix)); !os.IsNotExist(err) {
			t.Errorf("orphan %s%s left: %v", firstBase, suffix, err)
		}
	}
	if l.StartOffset() != recbatchBase([]byte(mustRead(t, filepath.Join(d, secondBase+".log")))) {
		t.Errorf("start %d after the first segment went", l.StartOffset())
	}
	if got, want := readAll(t, l), mustRead(t, filepath.Join(dir, secondBase+".log")); !bytes.HasPrefix(got, want) {
		t.Error("remaining segments do not read back")
	}

	// The reverse: the indexes of the first segment gone, its .log left.
	d = copyDir(t, dir)
	os.Remove(filepath.Join(d, firstBase+".index"))
	os.Remove(filepath.Join(d, firstBase+".timeindex"))
	l = openLog(t, d, fixtureCfg)
	if got := readAll(t, l); !bytes.Equal(got, concat(bs)) {
		t.Error("log with a re-indexed first segment reads differently")
	}
	if _, err := os.Stat(filepath.Join(d, firstBase+".index")); err != nil {
		t.Errorf("index not rebuilt: %v", err)
	}
}

// TestOpenZeroLengthSegments: an empty last segment (a crash right after a
// roll) is a normal log; an empty older one lost fsynced data and is
// refused with an error naming the directory, never a panic.
func TestOpenZeroLengthSegments(t *testing.T) {
	dir, bs, lastSeg := buildTornFixture(t)
	logs := segFiles(t, dir, ".log")

	d := copyDir(t, dir)
	if err := os.Truncate(filepath.Join(d, filepath.Base(logs[len(logs)-1])), 0); err != nil {
		t.Fatal(err)
	}
	checkPrefix(t, d, bs, len(bs)-lastSeg, "empty last segment")

	d = copyDir(t, dir)
	if err := os.Truncate(filepath.Join(d, filepath.Base(logs[0])), 0); err != nil {
		t.Fatal(err)
	}
	_, err := Open(d, fixtureCfg)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), d) {
		t.Fatalf("empty older segment: %v, want ErrCorrupt naming %s", err, d)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
