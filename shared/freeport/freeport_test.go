package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeAddrsAreDistinctBindableAndBelowTheEphemeralRange: the ports
// handed out never repeat within the process, each can be bound, and
// where the kernel's ephemeral range is known they lie below it, where no
// outgoing connection's local port comes from.
func TestAddrsAreDistinctBindableAndBelowTheEphemeralRange(t *testing.T) {
	seen := map[string]bool{}
	var addrs []string
	for range 42 {
		a, err := Addr()
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, a)
	}
	low := ephemeralLow()
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if low > minPickPort && (port < minPickPort || port >= low) {
			t.Errorf("port %d outside [%d, %d)", port, minPickPort, low)
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("bind %s: %v", a, err)
		}
		l.Close()
	}
	t.Logf("%d ports below the ephemeral range starting at %d", len(addrs), low)
}
