//go:build !linux

package main

import "syscall"

// childProcAttr: no parent-death signal outside Linux; the bench stops
// the --server-bin process on every exit it gets to handle.
func childProcAttr() *syscall.SysProcAttr { return nil }
