package svcmain

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

type fakeSvc struct {
	startErr error
	done     chan struct{}
	closed   int
}

func (s *fakeSvc) Start(context.Context) error { return s.startErr }
func (s *fakeSvc) Close() error                { s.closed++; return nil }
func (s *fakeSvc) Done() <-chan struct{}       { return s.done }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestRunExitCodes(t *testing.T) {
	// A start failure is exit 1 and still closes what was started.
	s := &fakeSvc{startErr: errors.New("boom")}
	if code := Run(quiet(), s, nil); code != ExitFailure || s.closed != 1 {
		t.Fatalf("start failure: code %d closed %d", code, s.closed)
	}
	// Stopping by itself is exit 1.
	s = &fakeSvc{done: make(chan struct{})}
	close(s.done)
	if code := Run(quiet(), s, nil); code != ExitFailure || s.closed != 1 {
		t.Fatalf("died: code %d closed %d", code, s.closed)
	}
	// SIGTERM is a clean exit 0.
	s = &fakeSvc{done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		<-ready
		time.Sleep(50 * time.Millisecond)
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}()
	if code := Run(quiet(), s, func() { close(ready) }); code != ExitOK || s.closed != 1 {
		t.Fatalf("sigterm: code %d closed %d", code, s.closed)
	}
}

func TestParseReportsBadFlags(t *testing.T) {
	f := NewFlags("x", "x", true)
	f.SetOutput(io.Discard)
	n := f.Int("n", 1, "")
	if code, ok := f.Parse([]string{"--n", "3"}); !ok || code != 0 || *n != 3 {
		t.Fatalf("good flags: %d %v %d", code, ok, *n)
	}
	f = NewFlags("x", "x", true)
	f.SetOutput(io.Discard)
	f.Int("n", 1, "")
	if code, ok := f.Parse([]string{"--n", "three"}); ok || code != ExitUsage {
		t.Fatalf("bad flag: %d %v", code, ok)
	}
	f = NewFlags("x", "x", false)
	f.SetOutput(io.Discard)
	if code, ok := f.Parse([]string{"--help"}); ok || code != ExitOK {
		t.Fatalf("help: %d %v", code, ok)
	}
}

func TestHTTPAddrFlag(t *testing.T) {
	f := NewFlags("x", "x", false)
	f.SetOutput(io.Discard)
	addr := f.HTTPAddr("")
	if code, ok := f.Parse([]string{"--http-addr", "9094"}); !ok || code != 0 || *addr != "9094" {
		t.Fatalf("parse: %d %v %q", code, ok, *addr)
	}
	if _, err := f.Telemetry("x", quiet()); err == nil || !strings.Contains(err.Error(), "--http-addr") {
		t.Fatalf("--http-addr 9094: %v, want an error naming the flag", err)
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	f = NewFlags("x", "x", false)
	f.SetOutput(io.Discard)
	f.HTTPAddr("")
	f.Parse([]string{"--http-addr", busy.Addr().String()})
	if _, err := f.Telemetry("x", quiet()); err == nil || !strings.Contains(err.Error(), "--http-addr") {
		t.Fatalf("busy --http-addr: %v, want an error naming the flag", err)
	}

	// Off by default: no server, tracing off without OTEL_* variables.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	f = NewFlags("x", "x", false)
	f.HTTPAddr("")
	f.Parse(nil)
	p, err := f.Telemetry("x", quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.HTTP != nil || p.Registry == nil || p.TracerProvider == nil {
		t.Fatalf("default telemetry: %+v", p)
	}
	p.SetReady()
}

// The flag package's own errors name flags with one dash; flagError
// rewords them with the two the help shows.
func TestFlagErrorsUseDoubleDashes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nope"}, "unknown flag --nope"},
		{[]string{"--n"}, "flag --n needs a value"},
		{[]string{"--n", "three"}, `invalid value "three" for flag --n: parse error`},
		{[]string{"--on=maybe"}, `invalid value "maybe" for flag --on: want true or false`},
	} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Int("n", 1, "")
		fs.Bool("on", false, "")
		err := fs.Parse(tc.args)
		if err == nil {
			t.Fatalf("%v: no error", tc.args)
		}
		if got := flagError(err); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.args, got, tc.want)
		}
	}
}
