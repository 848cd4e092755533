// Command streamline-cli manages a Streamline cluster through its admin
// gRPC API (streamline.admin.v1.AdminService, served by every gateway on
// --admin-addr) and produces and consumes records through the Kafka API:
//
//	streamline-cli topics create events --partitions 3 --storage-mode diskless
//	streamline-cli topics describe events
//	seq 100 | streamline-cli produce events
//	streamline-cli consume events --from-beginning --max-records 100
//	streamline-cli groups describe my-group
//	streamline-cli cluster
//
// It never opens data files: everything goes through the cluster's APIs, so
// it works the same against an all-in-one and a multi-node cluster.
//
// Exit codes: 0 success, 1 the operation failed (the cluster refused it or
// could not be reached), 2 the command line is wrong.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	adminv1 "github.com/streamline-dev/streamline/proto/gen/streamline/admin/v1"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const (
	defaultAdminAddr = "127.0.0.1:9095"
	defaultTimeout   = 30 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runContext(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

// run runs the command line args (without the program name) and returns
// the exit code. Environment variables come from the process.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdin, stdout, stderr, os.LookupEnv)
}

// usageError is a wrong command line: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// silentError is a failure already reported on stderr: only the exit code
// is left to set.
type silentError struct{ code int }

func (e silentError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// app is one invocation: its streams, environment, global flags and the
// admin API connection (opened on first use).
type app struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) (string, bool)

	adminAddr string
	timeout   time.Duration
	output    outputFormat
	bootstrap string

	// started is set when a command's own code starts running: errors
	// before it (flags, arguments, environment) are usage errors.
	started bool
	conn    *grpc.ClientConn
	admin   adminv1.AdminServiceClient
}

func runContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) (string, bool)) int {
	a := &app{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, output: outputText}
	defer a.close()
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var silent silentError
	if errors.As(err, &silent) {
		return silent.code
	}
	var ue usageError
	if !a.started || errors.As(err, &ue) {
		fmt.Fprintf(stderr, "error: %v\n", err)
		if cmd == nil {
			cmd = root
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	fmt.Fprintf(stderr, "error: %s\n", errorText(err))
	// Blame the admin address only when reaching it is what failed: the
	// connection is not up. An Unavailable the server answered (a node or
	// the coordinator is down) came over a working connection.
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable && a.conn != nil && a.conn.GetState() != connectivity.Ready {
		fmt.Fprintf(stderr, "hint: is the admin API listening on %s? Set --admin-addr or %s.\n", a.adminAddr, envAdminAddr)
	}
	return exitFailure
}

// errorText is how an error is shown: gRPC errors as "<code>: <message>".
func errorText(err error) string {
	if st, ok := status.FromError(err); ok && st.Code() != codes.OK && st.Code() != codes.Unknown {
		return fmt.Sprintf("%s: %s", st.Code(), st.Message())
	}
	return err.Error()
}

func (a *app) close() {
	if a.conn != nil {
		a.conn.Close()
	}
}

// Environment variables of the global flags.
const (
	envAdminAddr = "STREAMLINE_ADMIN_ADDR"
	envTimeout   = "STREAMLINE_TIMEOUT"
	envOutput    = "STREAMLINE_OUTPUT"
	envBootstrap = "STREAMLINE_BOOTSTRAP_SERVERS"
)

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "streamline-cli",
		Short: "Manage a Streamline cluster and produce and consume records",
		Long: `streamline-cli manages a Streamline cluster through its admin gRPC API
(served by every gateway on --admin-addr) and produces and consumes records
through the Kafka API of its gateways.

Exit codes: 0 success, 1 the operation failed, 2 the command line is wrong.`,
		Example: `  streamline-cli topics create events --partitions 3 --storage-mode diskless
  streamline-cli topics describe events
  seq 100 | streamline-cli produce events
  streamline-cli consume events --from-beginning --max-records 100 -o json
  streamline-cli groups describe my-group
  streamline-cli cluster`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		Args:              noArgs,
		RunE:              groupRun,
		PersistentPreRunE: a.applyEnv,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.adminAddr, "admin-addr", defaultAdminAddr, "admin gRPC API address host:port (env "+envAdminAddr+")")
	pf.DurationVar(&a.timeout, "timeout", defaultTimeout, "deadline of each admin API call; for produce, of each record's delivery (env "+envTimeout+")")
	pf.VarP(&a.output, "output", "o", "output format: text or json (env "+envOutput+")")
	pf.StringVar(&a.bootstrap, "bootstrap-servers", "", "Kafka addresses host:port,... for produce and consume; default: the gateways the admin API lists (env "+envBootstrap+")")
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(a.topicsCommand(), a.groupsCommand(), a.clusterCommand(), a.produceCommand(), a.consumeCommand())
	return root
}

// applyEnv fills the global flags not given on the command line from the
// environment.
func (a *app) applyEnv(cmd *cobra.Command, _ []string) error {
	for _, e := range []struct{ flag, env string }{
		{"admin-addr", envAdminAddr}, {"timeout", envTimeout}, {"output", envOutput}, {"bootstrap-servers", envBootstrap},
	} {
		f := cmd.Flags().Lookup(e.flag)
		if f == nil || f.Changed {
			continue
		}
		v, ok := a.getenv(e.env)
		if !ok || v == "" {
			continue
		}
		if err := f.Value.Set(v); err != nil {
			return usagef("invalid value %q for flag --%s (from %s): %s", v, e.flag, e.env, causeText(err))
		}
	}
	if a.timeout <= 0 {
		return usagef("invalid value %q for flag --timeout: must be positive", a.timeout)
	}
	return nil
}

// action wraps a command's code: from here on errors are operation
// failures, unless they are usageErrors.
func (a *app) action(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.started = true
		return fn(cmd, args)
	}
}

// adminAction is action for commands that make admin API calls: it hands
// fn the client and a context bounded by --timeout.
func (a *app) adminAction(fn func(ctx context.Context, cl adminv1.AdminServiceClient, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return a.action(func(cmd *cobra.Command, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		ctx, cancel := a.callCtx()
		defer cancel()
		return fn(ctx, cl, cmd, args)
	})
}

// groupRun is the RunE of commands that only group subcommands: without
// arguments it prints the help; an argument is an unknown subcommand.
func groupRun(cmd *cobra.Command, args []string) error {
	return cmd.Help()
}

// noArgs rejects arguments, naming an unknown subcommand as such.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		names := []string{}
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() {
				names = append(names, c.Name())
			}
		}
		return usagef("unknown command %q for %q (one of: %s)", args[0], cmd.CommandPath(), strings.Join(names, ", "))
	}
	return usagef("unexpected argument %q", args[0])
}

// exactArgs wants exactly the named positional arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < len(names) {
			return usagef("missing argument %s", strings.Join(names[len(args):], " "))
		}
		if len(args) > len(names) {
			return usagef("unexpected argument %q", args[len(names)])
		}
		for i, v := range args {
			if v == "" {
				return usagef("argument %s is empty", names[i])
			}
		}
		return nil
	}
}

// client returns the admin API client, connecting on first use.
func (a *app) client() (adminv1.AdminServiceClient, error) {
	if a.admin != nil {
		return a.admin, nil
	}
	if a.adminAddr == "" {
		return nil, usagef("invalid value \"\" for flag --admin-addr: empty")
	}
	conn, err := grpc.NewClient(a.adminAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, usagef("invalid value %q for flag --admin-addr: %v", a.adminAddr, err)
	}
	a.conn, a.admin = conn, adminv1.NewAdminServiceClient(conn)
	return a.admin, nil
}

// callCtx is the context of one admin call: --timeout from now.
func (a *app) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(a.ctx, a.timeout)
}
