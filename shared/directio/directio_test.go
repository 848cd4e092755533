package directio

import (
	"os"
	"testing"
	"unsafe"
)

func TestAlignedBuffer(t *testing.T) {
	for _, n := range []int{1, Block, 3*Block + 7, 1 << 20} {
		b := AlignedBuffer(n)
		if len(b) != n || cap(b) != n || uintptr(unsafe.Pointer(&b[0]))%Block != 0 {
			t.Fatalf("AlignedBuffer(%d): len %d cap %d address %% Block = %d", n, len(b), cap(b), uintptr(unsafe.Pointer(&b[0]))%Block)
		}
	}
	for n, want := range map[int64]int64{0: 0, 1: Block, Block: Block, Block + 1: 2 * Block} {
		if got := RoundUp(n); got != want {
			t.Errorf("RoundUp(%d) = %d, want %d", n, got, want)
		}
	}
}

// TestSupported: the probe leaves nothing behind, and where it says yes a
// direct write of an aligned block works.
func TestSupported(t *testing.T) {
	dir := t.TempDir()
	ok := Supported(dir)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("the probe left %v", entries)
	}
	if !ok {
		t.Skipf("the file system of %s does not take O_DIRECT", dir)
	}
	f, err := os.OpenFile(dir+"/f", os.O_WRONLY|os.O_CREATE|Flag, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(AlignedBuffer(2*Block), Block); err != nil {
		t.Fatalf("direct write: %v", err)
	}
}
