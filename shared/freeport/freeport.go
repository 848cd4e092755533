// Package freeport picks loopback ports for servers that tests and
// benchmarks start: free when picked, distinct within the process, and
// below the kernel's ephemeral range, so that the local end of an
// outgoing connection cannot take one between the pick and the server's
// bind (the "address already in use" flake of picking with ":0").
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// handedOut are the ports Addr returned in this process: concurrent
// tests must not get the same one before either binds it.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Addr returns 127.0.0.1:port of a port that is free now, distinct from
// every other one it returned in this process, and below the kernel's
// ephemeral range; the caller binds it. Where the range cannot be read
// (not Linux), a port the kernel picks for ":0".
func Addr() (string, error) {
	low := ephemeralLow()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 1000 {
		port := 0 // the kernel's pick
		if low > minPickPort {
			port = minPickPort + rand.IntN(low-minPickPort)
		}
		if handedOut.ports[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // in use
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		if handedOut.ports[port] {
			continue
		}
		handedOut.ports[port] = true
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
	}
	return "", fmt.Errorf("no free loopback port found below %d", low)
}

// minPickPort is the lowest port Addr picks: above the well-known
// ports of services a test machine may run.
const minPickPort = 10000

// ephemeralLow is the first port of the kernel's ephemeral range (Linux
// net.ipv4.ip_local_port_range), or 0 if unknown.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return low
}
