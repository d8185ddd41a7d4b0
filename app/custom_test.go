package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCustomBinary builds examples/custom — a module of its own, with its
// own job and a main of three lines — with `go build` in its folder, and
// runs a backfill of its job end to end with the binary's own commands:
// `custom dev` (Temporal, Kafka, ingest, API and the workers of its job in
// one process), scoring requests posted to the API, then `custom backfill
// start` until the backfill's records cover every request.
func TestCustomBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "custom")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = filepath.Join("..", "examples", "custom")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in examples/custom: %v\n%s", err, out)
	}

	if out, err := exec.CommandContext(ctx, bin, "live", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "one of: api-scores") {
		t.Fatalf("custom live --help does not offer the custom job: %v\n%s", err, out)
	}

	temporalAddr, kafkaAddr, apiAddr, metricsAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	dev := exec.CommandContext(ctx, bin, "dev", "--data", filepath.Join(dir, "data"), "--temporal", temporalAddr, "--ui", "off",
		"--kafka", kafkaAddr, "--api", apiAddr, "--demo=false", "--metrics", metricsAddr)
	dev.Stderr = os.Stderr
	out, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	defer dev.Process.Kill()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "  temporal workflow start") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("custom dev did not start")
	}

	const requests = 7
	start := time.Now().UTC().Add(-time.Minute)
	for i := range requests {
		body := fmt.Sprintf(`{"user_id":"u-%d","score":0.%d}`, i, i+1)
		resp, err := http.Post("http://"+apiAddr+"/v1/messages/api.requests", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /v1/messages/api.requests: %s", resp.Status)
		}
	}

	// The ingest stores the requests shortly after the API accepts them:
	// backfill until the records cover all of them.
	outputs := regexp.MustCompile(`done: job api-scores, \d+ chunks, \d+ events, (\d+) outputs, 0 errors`)
	for attempt := 1; ; attempt++ {
		cmd := exec.CommandContext(ctx, bin, "backfill", "start", "--address", temporalAddr, "--id", fmt.Sprintf("custom-%d", attempt),
			"--job", "api-scores", "--from", start.Format(time.RFC3339), "--to", time.Now().UTC().Format(time.RFC3339Nano),
			"--watermark", "wait", "--watermark-timeout", "30s", "--sink", "file://"+filepath.Join(dir, "out", fmt.Sprint(attempt)))
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("custom backfill start: %v\n%s", err, b)
		}
		m := outputs.FindSubmatch(b)
		if m == nil {
			t.Fatalf("backfill output:\n%s", b)
		}
		if string(m[1]) == fmt.Sprint(requests) {
			t.Logf("%s", b)
			break
		}
		if ctx.Err() != nil || attempt == 30 {
			t.Fatalf("the backfill never covered the %d requests; last:\n%s", requests, b)
		}
		time.Sleep(time.Second)
	}

	// dev serves the metrics of its parts and of the Temporal SDK.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tidemark_ingest_events_stored_total", "tidemark_forward_", "temporal_request", "go_goroutines"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics of dev lacks %s", want)
		}
	}

	dev.Process.Signal(syscall.SIGINT)
	if err := dev.Wait(); err != nil {
		t.Errorf("custom dev after Ctrl-C: %v", err)
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
