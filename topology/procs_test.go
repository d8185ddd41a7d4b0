package topology_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// build builds cmd/tidemark into dir.
func build(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "tidemark")
	out, err := osexec.Command("go", "build", "-o", bin, "github.com/tidemark-dev/tidemark/cmd/tidemark").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/tidemark: %v\n%s", err, out)
	}
	return bin
}

// childEnv is the environment of the processes the test starts: the test's
// own without the TIDEMARK_* variables, so every process reads its settings
// from the one configuration file (and its flags) only.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TIDEMARK_") {
			env = append(env, kv)
		}
	}
	return env
}

// proc is one OS process of the topology, which the test may SIGKILL and
// start again. Its output, of every incarnation, goes to one log file,
// whose tail the test prints when it fails.
type proc struct {
	t      *testing.T
	name   string
	bin    string
	args   []string
	log    *os.File
	cmd    *osexec.Cmd
	exited chan struct{} // closed when cmd has exited, err then set
	err    error         // Wait's result
	kills  int
}

// newProc prepares a process logging to dir/name.log; start runs it. The
// test's cleanup kills it if it still runs.
func newProc(t *testing.T, dir, name, bin string, args ...string) *proc {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, bin: bin, args: args, log: f}
	t.Cleanup(func() {
		if p.running() {
			p.cmd.Process.Kill()
			<-p.exited
		}
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(f.Name())
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("--- tail of %s (%s):\n%s", name, f.Name(), b)
		}
	})
	return p
}

func (p *proc) start() {
	p.t.Helper()
	cmd := osexec.Command(p.bin, p.args...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited = cmd, exited
	go func() {
		p.err = cmd.Wait()
		close(exited)
	}()
}

func (p *proc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill SIGKILLs the process and waits for it to be gone.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.kills++
	fmt.Fprintf(p.log, "\n%s %s (kill %d) ===\n\n", killMark, p.name, p.kills)
}

// stop ends the process with SIGTERM and fails the test unless it exits
// cleanly within a minute.
func (p *proc) stop() {
	p.t.Helper()
	if !p.running() {
		p.t.Errorf("%s is not running at the end: %v", p.name, p.err)
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			p.t.Errorf("%s exited on SIGTERM: %v", p.name, p.err)
		}
	case <-time.After(time.Minute):
		p.cmd.Process.Kill()
		<-p.exited
		p.t.Errorf("%s did not stop on SIGTERM within a minute", p.name)
	}
}

// killMark separates the logs of a process's incarnations.
const killMark = "=== test: SIGKILL"

// logged reports whether the log of the process's current incarnation
// holds s.
func (p *proc) logged(s string) bool {
	b, _ := os.ReadFile(p.log.Name())
	if i := bytes.LastIndex(b, []byte(killMark)); i >= 0 {
		b = b[i:]
	}
	return bytes.Contains(b, []byte(s))
}

// waitLogged waits until the current incarnation of the process logged s,
// failing the test if it exits first or the timeout passes.
func (p *proc) waitLogged(s string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for !p.logged(s) {
		if !p.running() {
			p.t.Fatalf("%s exited before logging %q", p.name, s)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s did not log %q within %v", p.name, s, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// parallel runs fs concurrently and returns when all have returned.
func parallel(fs ...func()) {
	var wg sync.WaitGroup
	for _, f := range fs {
		wg.Go(f)
	}
	wg.Wait()
}

// waitFor polls cond every 200 ms until it holds, failing the test after
// timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// run runs a command to its end with a timeout and returns its standard
// output; a failure fails the test with its output.
func run(t *testing.T, timeout time.Duration, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := osexec.CommandContext(ctx, bin, args...)
	cmd.Env = childEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", filepath.Base(bin), strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}
