package freeport

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
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

// A port drawn is claimed: a second draw, here or in another process,
// does not return it while its claim is fresh, and does once it is old.
func TestPortIsClaimed(t *testing.T) {
	old := claims
	claims = t.TempDir()
	defer func() { claims = old }()
	if !claim(20001) {
		t.Fatal("a first claim failed")
	}
	if claim(20001) {
		t.Fatal("a port claimed a moment ago was claimed again")
	}
	past := time.Now().Add(-claimFor - time.Second)
	if err := os.Chtimes(filepath.Join(claims, "20001"), past, past); err != nil {
		t.Fatal(err)
	}
	if !claim(20001) {
		t.Fatal("an old claim was not renewed")
	}
	seen := map[int]bool{}
	for range 200 {
		port, err := Port("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if seen[port] {
			t.Fatalf("port %d drawn twice within its claim", port)
		}
		seen[port] = true
	}
}
