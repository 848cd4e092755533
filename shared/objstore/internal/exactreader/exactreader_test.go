package exactreader

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReader(t *testing.T) {
	errRead := errors.New("broke")
	for _, c := range []struct {
		name    string
		r       io.Reader
		size    int64
		wantErr bool
	}{
		{"exact", strings.NewReader("hello"), 5, false},
		{"exact, data with EOF", iotest.DataErrReader(strings.NewReader("hello")), 5, false},
		{"exact, short reads", iotest.OneByteReader(strings.NewReader("hello")), 5, false},
		{"empty", strings.NewReader(""), 0, false},
		{"short", strings.NewReader("hell"), 5, true},
		{"long", strings.NewReader("hello!"), 5, true},
		{"long from empty", strings.NewReader("x"), 0, true},
		{"error", io.MultiReader(strings.NewReader("he"), iotest.ErrReader(errRead)), 5, true},
		{"error after the end", io.MultiReader(strings.NewReader("hello"), iotest.ErrReader(errRead)), 5, true},
	} {
		// Through io.ReadAll, which reads until Read reports the end...
		got, err := io.ReadAll(New(context.Background(), c.r, c.size))
		if (err != nil) != c.wantErr {
			t.Errorf("%s: ReadAll: %q, %v; want error %v", c.name, got, err, c.wantErr)
		}
		if int64(len(got)) > c.size {
			t.Errorf("%s: read %d bytes, past the size %d", c.name, len(got), c.size)
		}
	}
	// ...and through io.ReadFull plus Check, which never asks past the size.
	for _, c := range []struct {
		s       string
		wantErr bool
	}{{"hello", false}, {"hello!", true}} {
		e := New(context.Background(), strings.NewReader(c.s), 5)
		buf := make([]byte, 5)
		if _, err := io.ReadFull(e, buf); err != nil || e.Remaining() != 0 {
			t.Fatalf("%q: ReadFull: %v, %d left", c.s, err, e.Remaining())
		}
		if err := e.Check(); (err != nil) != c.wantErr {
			t.Errorf("%q: Check: %v, want error %v", c.s, err, c.wantErr)
		}
	}
	if err := New(context.Background(), strings.NewReader("hello"), 5).Check(); err == nil {
		t.Error("Check before reading succeeded")
	}
	if _, err := io.ReadAll(New(context.Background(), io.MultiReader(strings.NewReader("he"), iotest.ErrReader(errRead)), 5)); !errors.Is(err, errRead) {
		t.Errorf("the reader's error is not wrapped: %v", err)
	}
	short := New(context.Background(), strings.NewReader("hell"), 5)
	if _, err := io.ReadAll(short); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short reader: %v, want io.ErrUnexpectedEOF", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := io.ReadAll(New(ctx, bytes.NewReader(make([]byte, 10)), 10)); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v, want context.Canceled", err)
	}
}
