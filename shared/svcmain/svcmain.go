// Package svcmain is the shared skeleton of every Streamline binary's main:
// flags that can also come from STREAMLINE_* variables, a --log-level, an
// etcd client, signal handling, and the exit-code convention
// (0: clean stop, 1: failure at run time, 2: bad flags).
package svcmain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/streamline-dev/streamline/shared/envflag"
	"github.com/streamline-dev/streamline/shared/logging"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/telemetry"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Flags is a binary's flag set plus the flags every binary has.
type Flags struct {
	*flag.FlagSet
	name     string
	logLevel *string
	etcd     *string
	httpAddr *string // nil unless HTTPAddr added the flag
}

// NewFlags returns a flag set for the binary name, described by summary
// in --help. withEtcd adds --etcd-endpoints.
func NewFlags(name, summary string, withEtcd bool) *Flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	f := &Flags{FlagSet: fs, name: name}
	f.logLevel = fs.String("log-level", "info", "debug, info, warn or error")
	if withEtcd {
		f.etcd = fs.String("etcd-endpoints", "http://127.0.0.1:2379", "comma-separated etcd endpoints")
	}
	fs.Usage = envflag.Usage(fs, summary)
	return f
}

// Parse parses args (and the environment). On failure it prints why,
// naming the flag, and returns the exit code main must return; ok is true
// when the program should go on.
func (f *Flags) Parse(args []string) (code int, ok bool) {
	// The flag package prints the whole usage after any error; a person
	// needs the one line that says what is wrong (Fail), and --help
	// prints the usage when asked.
	f.SetOutput(io.Discard)
	err := envflag.Parse(f.FlagSet, args)
	f.SetOutput(os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			f.Usage()
			return ExitOK, false
		}
		f.Fail("%s", flagError(err))
		return ExitUsage, false
	}
	return 0, true
}

// flagError rewords the flag package's errors with the double-dash flag
// names the help shows ("flag provided but not defined: -x" becomes
// "unknown flag --x").
func flagError(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return "unknown flag --" + strings.TrimLeft(name, "-")
	}
	if rest, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return "flag --" + strings.TrimLeft(rest, "-") + " needs a value"
	}
	if strings.Contains(msg, " for flag --") { // envflag's own wording
		return msg
	}
	// A boolean flag's bad value: `invalid boolean value "x" for -name: parse error`.
	if rest, ok := strings.CutPrefix(msg, "invalid boolean value "); ok {
		if value, name, ok := strings.Cut(rest, " for -"); ok {
			name, _, _ = strings.Cut(name, ":")
			return fmt.Sprintf("invalid value %s for flag --%s: want true or false", value, name)
		}
	}
	return strings.Replace(msg, " for flag -", " for flag --", 1)
}

// Fail prints a usage error prefixed with the binary's name, on one line,
// and where to find the flags.
func (f *Flags) Fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s: %s (see %s --help)\n", f.name, fmt.Sprintf(format, args...), f.name)
}

// Logger builds the logger from --log-level.
func (f *Flags) Logger() (*slog.Logger, error) {
	log, err := logging.New(os.Stderr, *f.logLevel)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return log, nil
}

// Etcd connects to --etcd-endpoints.
func (f *Flags) Etcd() (*clientv3.Client, error) {
	cli, err := meta.Dial(*f.etcd)
	if err != nil {
		return nil, fmt.Errorf("--etcd-endpoints: %w", err)
	}
	return cli, nil
}

// HTTPAddr adds --http-addr, where the binary serves Prometheus /metrics,
// /healthz and /readyz (def is the default; "" is off), and returns its
// value. Call it before Parse.
func (f *Flags) HTTPAddr(def string) *string {
	f.httpAddr = f.String("http-addr", def, "serve Prometheus /metrics, /healthz and /readyz (503 until started and registered) on this host:port (empty: off)")
	return f.httpAddr
}

// CheckHTTPAddr validates an --http-addr value; the error names the flag.
func CheckHTTPAddr(addr string) error {
	if err := telemetry.ValidateAddr(addr); err != nil {
		return fmt.Errorf("invalid value %q for flag --http-addr: %v", addr, err)
	}
	return nil
}

// Telemetry starts the binary's telemetry: tracing from the standard
// OTEL_EXPORTER_OTLP_* variables (off when none is set), service.name
// service, and the --http-addr server. Errors name the flag or variable.
// Pass its SetReady as Run's onReady, and Close it when Run returns.
func (f *Flags) Telemetry(service string, log *slog.Logger) (*telemetry.Process, error) {
	addr := ""
	if f.httpAddr != nil {
		addr = *f.httpAddr
	}
	if err := CheckHTTPAddr(addr); err != nil {
		return nil, err
	}
	p, err := telemetry.Start(context.Background(), telemetry.Options{Service: service, HTTPAddr: addr, Logger: log})
	if errors.Is(err, telemetry.ErrListen) {
		return nil, fmt.Errorf("--http-addr %s: %w", addr, err)
	}
	return p, err
}

// Service is what Run drives: an embeddable service with Start and an
// idempotent Close.
type Service interface {
	Start(ctx context.Context) error
	Close() error
}

// failing is implemented by services that can stop by themselves after
// Start, for example when their etcd lease is lost.
type failing interface{ Done() <-chan struct{} }

// Run starts svc and keeps it running until SIGINT or SIGTERM (then it
// closes svc and returns ExitOK) or until svc stops by itself (ExitFailure).
// onReady, if set, runs once svc has started.
func Run(log *slog.Logger, svc Service, onReady func()) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := svc.Start(ctx); err != nil {
		log.Error("start failed", "err", err)
		svc.Close()
		return ExitFailure
	}
	if onReady != nil {
		onReady()
	}
	var died <-chan struct{}
	if f, ok := svc.(failing); ok {
		died = f.Done()
	}
	code := ExitOK
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case <-died:
		log.Error("stopped by itself (etcd lease lost or a component failed); exiting")
		code = ExitFailure
	}
	if err := svc.Close(); err != nil {
		log.Error("close", "err", err)
		code = ExitFailure
	}
	return code
}

// Failpoint returns the failpoint crash tests set with
// STREAMLINE_FAILPOINT=<step> (a step of a multi-step operation: merge,
// segment upload, hybrid commit): the process SIGKILLs itself the first
// time it reaches that step, as a crash there would. Empty: none.
func Failpoint(at string) func(step string) {
	if at == "" {
		return nil
	}
	return func(step string) {
		if step == at {
			fmt.Fprintf(os.Stderr, "failpoint %s: killing the process\n", step)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
}
