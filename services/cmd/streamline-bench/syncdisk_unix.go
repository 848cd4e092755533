//go:build unix

package main

import "syscall"

// syncDisks has the kernel write back every dirty page (sync(2)) and waits
// for it, so that a run starts from a clean disk instead of paying for the
// writeback of the row or run before it.
func syncDisks() { syscall.Sync() }
