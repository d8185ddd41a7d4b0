package workers_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tidemark-dev/tidemark/internal/devtemporal"
	"github.com/tidemark-dev/tidemark/internal/freeport"
	"github.com/tidemark-dev/tidemark/workers"
)

// logSlowRun logs, for a benchmark's workflow run that took longer than
// slow, the gaps of over gap between consecutive events of its history
// (with both events' types): where a run that stalled waited.
func logSlowRun(b *testing.B, c client.Client, id string, took, slow, gap time.Duration) {
	if took <= slow {
		return
	}
	b.Logf("run %s took %v", id, took.Round(time.Millisecond))
	it := c.GetWorkflowHistory(context.Background(), id, "", false, 0)
	var prevTime time.Time
	var prevType string
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			b.Logf("its history: %v", err)
			return
		}
		t := e.GetEventTime().AsTime()
		if !prevTime.IsZero() && t.Sub(prevTime) > gap {
			b.Logf("  %v between event %d %s and %s", t.Sub(prevTime).Round(time.Millisecond), e.GetEventId()-1, prevType, e.GetEventType())
		}
		prevTime, prevType = t, e.GetEventType().String()
	}
}

// onlyWay is ways, or with BENCH_WAY set only the way of that name: one
// way alone, for a profile.
func onlyWay[W any](b *testing.B, ways []W, name func(W) string) []W {
	only := os.Getenv("BENCH_WAY")
	if only == "" {
		return ways
	}
	ways = slices.DeleteFunc(ways, func(w W) bool { return name(w) != only })
	if len(ways) == 0 {
		b.Fatalf("BENCH_WAY=%s: no such way", only)
	}
	return ways
}

// serverProcess starts the benchmarks' Temporal server in a process of its
// own (this test binary running TestHelperTemporalServer), as a worker
// meets it in production: the server's goroutines, heap and collections
// are not the worker's. It returns the process and a client of it.
// BENCH_SERVER_CPUPROFILE names a file for the server's CPU profile.
func serverProcess(ctx context.Context) (*exec.Cmd, client.Client, error) {
	addr, err := freeport.Addr("127.0.0.1")
	if err != nil {
		return nil, nil, err
	}
	args := []string{"-test.run=^TestHelperTemporalServer$"}
	if f := os.Getenv("BENCH_SERVER_CPUPROFILE"); f != "" { // written as the server process ends
		args = append(args, "-test.cpuprofile="+f)
	}
	cmd := exec.Command(os.Args[0], args...)
	// The parent's pid, known before the child starts: a child that read
	// it itself after a slow start could find its parent gone already.
	cmd.Env = append(os.Environ(), "TIDEMARK_HELPER_TEMPORAL="+addr, fmt.Sprintf("TIDEMARK_HELPER_PARENT=%d", os.Getpid()))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr // a failing helper's t.Fatal goes to stdout
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		c, err := client.DialContext(ctx, client.Options{HostPort: addr, Logger: quiet})
		if err == nil {
			if _, err = c.CheckHealth(ctx, &client.CheckHealthRequest{}); err == nil {
				return cmd, c, nil
			}
			c.Close()
		}
		select {
		case werr := <-exited:
			return nil, nil, fmt.Errorf("the Temporal server process at %s exited: %v (last dial: %v)", addr, werr, err)
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return nil, nil, fmt.Errorf("the Temporal server process at %s: %w", addr, err)
		}
	}
}

// TestHelperTemporalServer is serverProcess's server: it serves until the
// process is killed or its parent exits.
func TestHelperTemporalServer(t *testing.T) {
	addr := os.Getenv("TIDEMARK_HELPER_TEMPORAL")
	if addr == "" {
		t.Skip("run by the workers benchmarks with BENCH_SERVER=process")
	}
	parent, err := strconv.Atoi(os.Getenv("TIDEMARK_HELPER_PARENT"))
	if err != nil {
		t.Fatalf("TIDEMARK_HELPER_PARENT: %v", err)
	}
	srv, err := devtemporal.Start(context.Background(), devtemporal.Config{Addr: addr, UIAddr: "off", SearchAttributes: workers.SearchAttributes(), LogLevel: "error"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	for os.Getppid() == parent { // the benchmark's process is gone: so is the server
		time.Sleep(500 * time.Millisecond)
	}
}

// processCPU is the CPU time (user and system) process pid has used so
// far, from /proc; ok is false where it cannot be read.
func processCPU(pid int) (_ time.Duration, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// Fields after the command's closing parenthesis; utime and stime
	// are the 14th and 15th of the line, in clock ticks (100 a second).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}
