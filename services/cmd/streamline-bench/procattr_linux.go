package main

import "syscall"

// childProcAttr makes the --server-bin process get SIGKILL when the bench
// dies, even without a chance to stop it (kill -9, a crash).
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
