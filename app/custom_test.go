package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/internal/testenv"
)

// TestCustomBinary builds examples/custom — a module of its own, with its
// own job and a main of three lines — with `go build` in its folder, and
// runs a backfill of its job end to end with the binary's own commands:
// `custom dev` (Temporal, Kafka, ingest, API and the workers of its job in
// one process), scoring requests posted to the API, which the stack's
// live worker of the custom job scores (and no credit job runs: the
// binary does not have it), then `custom backfill start` until the
// backfill's records cover every request.
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

	temporalAddr, kafkaAddr, apiAddr, metricsAddr := testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t)
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
	ready, exited := make(chan struct{}), make(chan struct{})
	var where strings.Builder // what dev printed until it started; read after ready
	go func() {
		defer close(exited) // its output ends: the process has exited
		sc := bufio.NewScanner(out)
		for started := false; sc.Scan(); {
			if !started {
				where.WriteString(sc.Text() + "\n")
			}
			if !started && strings.HasPrefix(sc.Text(), "  temporal workflow start") {
				started = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-exited:
		t.Fatal("custom dev exited before it started (its errors are above)")
	case <-ctx.Done():
		t.Fatal("custom dev did not start")
	}

	// The stack runs the binary's jobs, live and in its workers: the
	// custom job, not the credit example's.
	for _, want := range []string{"live workers      api-scores\n", "  custom backfill start --address " + temporalAddr + " --job api-scores "} {
		if !strings.Contains(where.String(), want) {
			t.Errorf("custom dev printed no %q:\n%s", want, where.String())
		}
	}
	var status struct{ Jobs []string }
	getJSON(t, "http://"+apiAddr+"/v1/status", &status)
	if !slices.Equal(status.Jobs, []string{"api-scores"}) {
		t.Errorf("custom dev runs the jobs %q, want [api-scores]", status.Jobs)
	}

	const requests = 7
	start := time.Now().UTC().Add(-time.Minute)
	for i := range requests {
		body := fmt.Sprintf(`{"user_id":"u-%d","score":0.%d}`, i, i+1)
		req, err := http.NewRequest(http.MethodPost, "http://"+apiAddr+"/v1/messages/api.requests", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Message-Id", fmt.Sprint("req-", i)) // the record's entity
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /v1/messages/api.requests: %s", resp.Status)
		}
	}
	// The live worker of the custom job scores the last request.
	for {
		resp, err := http.Get(fmt.Sprintf("http://%s/v1/features/api-scores/req-%d", apiAddr, requests-1))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK {
			if !strings.Contains(string(b), `"band":"mid"`) {
				t.Errorf("the live record of request %d: %s; want band mid (score 0.7)", requests-1, b)
			}
			break
		}
		if ctx.Err() != nil || time.Since(start) > 3*time.Minute {
			t.Fatalf("no live record of request %d: %s %s", requests-1, resp.Status, b)
		}
		time.Sleep(200 * time.Millisecond)
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

// getJSON decodes the JSON answer of a GET of url into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
