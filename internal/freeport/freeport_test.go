package freeport

import (
	"net"
	"strconv"
	"testing"
)

// Ports are drawn at random below the kernel's ephemeral range, where
// other processes' outgoing connections and port-0 listeners never land,
// and are free when drawn.
func TestPortBelowEphemeralRange(t *testing.T) {
	start := ephemeralStart()
	if start <= low {
		t.Skipf("the ephemeral range starts at %d: no room below it", start)
	}
	seen := map[int]bool{}
	for range 50 {
		port, err := Port("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if port < low || port >= start {
			t.Fatalf("port %d: want one in [%d, %d)", port, low, start)
		}
		seen[port] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d is not free: %v", port, err)
		}
		l.Close()
	}
	if len(seen) < 40 {
		t.Fatalf("50 draws gave %d ports: not drawn at random", len(seen))
	}
}
