// Package freeport draws TCP ports for servers that are told their port
// before they bind it (a Temporal server's internal services, a process
// started with --addr flags).
//
// Such a port is free when drawn and taken only later, so something else
// may bind it in between. A port from the kernel's ephemeral range is the
// likely victim: every outgoing connection and port-0 listener of every
// process on the machine draws from it (parallel test packages make many).
// Port draws below that range, where only those who ask for a port by
// number bind.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// low is the first port drawn: above the well-known and the usual fixed
// ports of development services.
const low = 10000

// Port returns a port of host that nobody listens on, drawn at random
// below the kernel's ephemeral range (or, if none is free there, one the
// kernel hands out).
func Port(host string) (int, error) {
	high := ephemeralStart() - 1
	for range 100 {
		if high <= low {
			break
		}
		port := low + rand.IntN(high-low+1)
		if l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port))); err == nil {
			l.Close()
			return port, nil
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("freeport: a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr returns host:port with a port of Port.
func Addr(host string) (string, error) {
	port, err := Port(host)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// ephemeralStart is the first port of the kernel's ephemeral range (read
// on Linux; 32768, the usual start, elsewhere).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	if f := strings.Fields(string(b)); len(f) == 2 {
		if n, err := strconv.Atoi(f[0]); err == nil {
			return n
		}
	}
	return 32768
}
