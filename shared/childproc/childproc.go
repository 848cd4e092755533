// Package childproc ties a child process's life to its parent's, so that a
// server a test or a benchmark started does not outlive it (a panic, a test
// timeout, kill -9 of the parent) holding its ports, files and CPU.
package childproc

import "os/exec"

// DieWithParent has the kernel SIGKILL cmd's process when the process that
// started it dies, where the OS can (Linux: PR_SET_PDEATHSIG); elsewhere it
// does nothing. Call it before cmd.Start. Linux sends the signal when the
// thread that forked the child ends, which in a Go program is the process
// ending: the runtime keeps its threads unless a goroutine exits while
// locked to one (runtime.LockOSThread), which the callers do not do.
func DieWithParent(cmd *exec.Cmd) { dieWithParent(cmd) }
