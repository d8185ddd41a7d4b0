package app

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/internal/devtemporal"
	"github.com/tidemark-dev/tidemark/internal/testenv"
)

// TestWorkerAndBackfill runs `worker` in process against a Temporal server
// (registering the search attributes, serving /metrics with the SDK's
// metrics), then `backfill start` of the example job over a store without
// events whose watermark (as ingest would set it) covers the range, which
// completes; cancelling the worker's context stops it with exit 0.
func TestWorkerAndBackfill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	srv, err := devtemporal.Start(ctx, devtemporal.Config{Addr: "127.0.0.1:0", UIAddr: "off", LogFile: filepath.Join(t.TempDir(), "temporal.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	dir := t.TempDir()
	metricsAddr := testenv.FreeAddr(t)
	st, err := embedded.Open(embedded.Config{Dir: filepath.Join(dir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AdvanceWatermark(ctx, credit.Applications, 0, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	workerCtx, stopWorker := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var code int
	var werr syncBuffer
	wg.Go(func() {
		code = Run(workerCtx, []string{"worker", "--store", "pebble://" + filepath.Join(dir, "store"), "--address", srv.Addr(),
			"--metrics", metricsAddr, "--log-level", "warn", "--task-queue", "app-test"}, io.Discard, &werr, Jobs(credit.New), Indexes(credit.Indexes()...))
	})

	var metrics string
	for !strings.Contains(metrics, "temporal_request") {
		if ctx.Err() != nil {
			t.Fatalf("/metrics never showed the Temporal SDK's metrics:\n%s\nworker stderr:\n%s", metrics, werr.String())
		}
		time.Sleep(100 * time.Millisecond)
		if resp, err := http.Get("http://" + metricsAddr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			metrics = string(b)
		}
	}
	if !strings.Contains(metrics, "go_goroutines") {
		t.Errorf("/metrics lacks the Go collector")
	}

	c, out, errOut := run(t, "backfill", "start", "--address", srv.Addr(), "--task-queue", "app-test", "--id", "app-test",
		"--job", credit.Name, "--from", "2026-11-25", "--to", "2026-11-26", "--sink", "file://"+filepath.Join(dir, "out"))
	if c != ExitOK || !strings.Contains(out, "backfill app-test done: job credit-features") {
		t.Errorf("backfill start: exit %d\nstdout:\n%s\nstderr:\n%s", c, out, errOut)
	}

	stopWorker()
	wg.Wait()
	if code != ExitOK {
		t.Errorf("worker: exit %d\n%s", code, werr.String())
	}
	// The worker published its job to the catalog at start.
	c, out, errOut = run(t, "jobs", "list", "--store", "pebble://"+filepath.Join(dir, "store"))
	if c != ExitOK || !strings.Contains(out, credit.Name) {
		t.Errorf("jobs list after the worker: exit %d\nstdout:\n%s\nstderr:\n%s", c, out, errOut)
	}
}

// TestTemporalMetricsLabels: the first use of a name fixes its labels; a
// later use with other tags fills the missing ones with "" and drops the
// extra ones.
func TestTemporalMetricsLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newTemporalMetrics(reg).WithTags(map[string]string{"namespace": "default"})
	h.WithTags(map[string]string{"task_queue": "q"}).Counter("temporal_x").Inc(2)
	h.Counter("temporal_x").Inc(1)
	h.WithTags(map[string]string{"task_queue": "q", "extra": "e"}).Counter("temporal_x").Inc(4)
	h.Gauge("temporal_g").Update(3.5)
	h.Timer("temporal_t").Record(250 * time.Millisecond)
	h.Gauge("temporal_x").Update(1) // a name used for two kinds: dropped, not a panic
	want := `
# HELP temporal_x Temporal SDK metric temporal_x.
# TYPE temporal_x counter
temporal_x{namespace="default",task_queue=""} 1
temporal_x{namespace="default",task_queue="q"} 6
# HELP temporal_g Temporal SDK metric temporal_g.
# TYPE temporal_g gauge
temporal_g{namespace="default"} 3.5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "temporal_x", "temporal_g"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "temporal_t"); n != 1 {
		t.Errorf("timer series: %d", n)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
