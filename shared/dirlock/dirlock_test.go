package dirlock

import (
	"errors"
	"testing"
)

func TestSecondAcquireFailsUntilRelease(t *testing.T) {
	dir := t.TempDir()
	a, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second acquire: %v", err)
	}
	a.Release()
	a.Release()
	b, err := Acquire(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	b.Release()
}
