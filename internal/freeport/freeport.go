// Package freeport draws TCP ports for servers that are told their port
// before they bind it (a Temporal server's internal services, a process
// started with --addr flags).
//
// Such a port is free when drawn and taken only later, so something else
// may bind it in between. A port from the kernel's ephemeral range is the
// likely victim: every outgoing connection and port-0 listener of every
// process on the machine draws from it (parallel test packages make many).
// Port draws below that range, where only those who ask for a port by
// number bind. Two processes drawing at once (test packages starting
// Temporal servers in parallel, each drawing several ports) could still
// draw the same port; a drawn port is therefore claimed for a while by a
// file of its number in a directory of the machine's temporary folder, and
// a port another process claimed is not drawn again until its claim is
// old.
package freeport

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
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
			if claim(port) {
				return port, nil
			}
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

// claimFor is how long a drawn port stays claimed: longer than a server
// takes from the draw to binding it.
const claimFor = 2 * time.Minute

// claims is the directory of the claims (shared by every process of the
// machine's user).
var claims = filepath.Join(os.TempDir(), "tidemark-freeport")

// claim claims port for claimFor: false if another draw claimed it less
// than claimFor ago. A claim that cannot be written (no temporary folder)
// is taken as made: the port is free, as before claims.
func claim(port int) bool {
	if err := os.MkdirAll(claims, 0o777); err != nil {
		return true
	}
	name := filepath.Join(claims, strconv.Itoa(port))
	for range 2 {
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
		if err == nil {
			f.Close()
			return true
		}
		if !errors.Is(err, fs.ErrExist) {
			return true
		}
		st, err := os.Stat(name)
		if err == nil && time.Since(st.ModTime()) < claimFor {
			return false
		}
		os.Remove(name) // an old claim (or one removed meanwhile): claim it anew, once
	}
	return false
}
