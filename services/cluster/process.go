package cluster

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/childproc"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binary builds a Streamline command (e.g. "./services/cmd/streamline",
// relative to the repository root) once per test binary and returns its path.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "streamline-bin-")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	out := filepath.Join(buildDir, filepath.Base(pkg))
	if _, err := os.Stat(out); err == nil {
		return out
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// RemoveBinaries deletes what Binary built; call it from TestMain after
// the tests ran.
func RemoveBinaries() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// RepoRoot is the repository's root: the first directory above the
// working directory that holds go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.work not found above the test directory")
		}
		dir = parent
	}
}

// Process is a Streamline binary running as a child process.
type Process struct {
	t    testing.TB
	bin  string
	args []string
	// Env is added to the process's environment (after the test's own)
	// from its next start: Restart picks up a change.
	Env []string
	cmd *exec.Cmd
	log *os.File
	// ready is closed when the process prints a line containing the
	// readiness marker.
	ready chan struct{}
	exit  chan error
	// markerOnStderr: look for the readiness marker on stderr (and copy
	// stdout to the log file) instead of the other way round.
	markerOnStderr bool
	// name labels the process in failure output (default: the binary's
	// file name); StartCluster sets it to the node name.
	name string
	runs int // how many times the process was started
}

// StartProcess runs bin with args and waits until it prints a line
// containing readyMarker (the all-in-one prints "Streamline is ready").
// Output goes to a log file in the test's temp dir, shown on failure.
func StartProcess(t testing.TB, bin, readyMarker string, args ...string) *Process {
	t.Helper()
	return startProcess(t, &Process{t: t, bin: bin, args: args}, readyMarker)
}

// StartProcessStderr is StartProcess for binaries that print nothing on
// stdout and log to stderr (logsvc, uploader, gateway): it waits for a
// stderr line containing readyMarker, e.g. the gateway's "gateway ready"
// log message. Restart waits on stderr too.
func StartProcessStderr(t testing.TB, bin, readyMarker string, args ...string) *Process {
	t.Helper()
	return startProcess(t, &Process{t: t, bin: bin, args: args, markerOnStderr: true}, readyMarker)
}

func startProcess(t testing.TB, p *Process, readyMarker string) *Process {
	t.Helper()
	p.start(readyMarker)
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			if b, err := os.ReadFile(p.log.Name()); err == nil {
				t.Logf("output of %s:\n%s", p.Name(), tail(string(b), 8000))
			}
		}
	})
	return p
}

func (p *Process) start(readyMarker string) {
	p.t.Helper()
	var err error
	if p.log == nil {
		if p.log, err = os.CreateTemp(p.t.TempDir(), "proc-*.log"); err != nil {
			p.t.Fatal(err)
		}
	}
	p.runs++
	if p.runs > 1 {
		fmt.Fprintf(p.log, "==== %s: started again (run %d) at %s ====\n", p.Name(), p.runs, time.Now().Format(time.RFC3339Nano))
	}
	p.cmd = exec.Command(p.bin, p.args...)
	// A test that panics or times out gets no cleanup: the kernel stops
	// its servers instead of leaving them running (and holding ports).
	childproc.DieWithParent(p.cmd)
	if len(p.Env) > 0 {
		p.cmd.Env = append(os.Environ(), p.Env...)
	}
	var watched io.Reader // the stream scanned for the marker
	if p.markerOnStderr {
		p.cmd.Stdout = p.log
		watched, err = p.cmd.StderrPipe()
	} else {
		p.cmd.Stderr = p.log
		watched, err = p.cmd.StdoutPipe()
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.ready, p.exit = make(chan struct{}), make(chan error, 1)
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(watched)
		marked := false
		for sc.Scan() {
			fmt.Fprintln(p.log, sc.Text())
			if !marked && strings.Contains(sc.Text(), readyMarker) {
				marked = true
				close(p.ready)
			}
		}
		// A line too long for the scanner ends the loop; keep draining so
		// the child never blocks on a full pipe.
		_, _ = io.Copy(p.log, watched)
	}()
	// Wait closes the pipe: call it only once the pipe is drained (EOF when
	// the process is gone), or the last lines of a crash would be lost.
	go func() { <-scanned; p.exit <- p.cmd.Wait() }()
	select {
	case <-p.ready:
	case err := <-p.exit:
		p.exit <- err // keep it for Wait and Exited
		b, _ := os.ReadFile(p.log.Name())
		p.t.Fatalf("%s exited before ready: %v\n%s", p.Name(), err, tail(string(b), 4000))
	case <-time.After(2 * time.Minute):
		p.t.Fatalf("%s not ready after 2 minutes", p.Name())
	}
}

// Name is the process's label: its node name in a Cluster, else the
// binary's file name.
func (p *Process) Name() string {
	if p.name != "" {
		return p.name
	}
	return filepath.Base(p.bin)
}

// PID is the operating-system process id of the current run.
func (p *Process) PID() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Exited reports whether the current run has ended (and been reaped).
func (p *Process) Exited() bool {
	select {
	case err := <-p.exit:
		p.exit <- err
		return true
	default:
		return false
	}
}

// LogPath is the file holding the process's output, every run appended.
func (p *Process) LogPath() string { return p.log.Name() }

// Restart starts the same command again (same arguments, same data dir)
// after the previous run exited, and waits for readiness.
func (p *Process) Restart(readyMarker string) {
	p.t.Helper()
	p.start(readyMarker)
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	p.Signal(syscall.SIGKILL)
	p.Wait(30 * time.Second)
}

// Wait waits up to d for the process to exit and returns its exit error.
func (p *Process) Wait(d time.Duration) error {
	select {
	case err := <-p.exit:
		p.exit <- err // keep it for later callers
		return err
	case <-time.After(d):
		return fmt.Errorf("process still running after %v", d)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
