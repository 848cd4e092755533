//go:build !linux

package wal

// oDirect is 0 where the WAL does not use direct I/O.
const oDirect = 0
