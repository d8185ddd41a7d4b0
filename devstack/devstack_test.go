package devstack_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tidemark-dev/tidemark/devstack"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/internal/backfilltest"
	"github.com/tidemark-dev/tidemark/internal/devtemporal"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/workflows"
)

// TestDev runs the README's first command, `tidemark dev`, as a process
// (on free ports and a fresh data folder), waits for its demo to run the
// credit job live, moves the demo's history into the cold tier with
// `tidemark tier run`, then backfills the demo's day twice, from cold: with the stock
// `temporal` CLI, watching the progress through the Web UI's HTTP API while
// it runs, and with `tidemark backfill start`. Both complete with a record
// per application; Ctrl-C stops the stack cleanly.
func TestDev(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "tidemark")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/tidemark-dev/tidemark/cmd/tidemark")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	temporalAddr, uiAddr, kafkaAddr, apiAddr := testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t)
	const history = 3000
	dev := exec.CommandContext(ctx, bin, "dev", "--data", filepath.Join(dir, "data"), "--temporal", temporalAddr, "--ui", uiAddr,
		"--kafka", kafkaAddr, "--api", apiAddr, "--history", fmt.Sprint(history), "--rate", "2", "--hot-window", "5s")
	dev.Stderr = os.Stderr
	out, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	defer dev.Process.Kill()
	printed := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "  temporal workflow start") {
				printed <- b.String()
			}
		}
	}()
	var where string
	select {
	case where = <-printed:
	case <-ctx.Done():
		t.Fatal("tidemark dev did not print where everything is")
	}
	sample := filepath.Join(dir, "data", "demo-sample.csv")
	for _, want := range []string{"http://" + uiAddr, temporalAddr, kafkaAddr, "http://" + apiAddr, filepath.Join(dir, "data"), "tidemark backfill start", "--sample " + sample, "temporal workflow start"} {
		if !strings.Contains(where, want) {
			t.Errorf("the printed addresses lack %q:\n%s", want, where)
		}
	}

	// The demo's history has gone through Kafka, the ingest and the live
	// worker: the last historical application has its features.
	last := fmt.Sprintf("%s/v1/features/%s/app-%d", "http://"+apiAddr, credit.Name, history)
	waitFor(t, ctx, "the live run of the demo's last historical application", func() bool {
		resp, err := http.Get(last)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	// The API forwards calls into Kafka.
	resp, err := http.Post("http://"+apiAddr+"/v1/messages/"+devstack.DemoHTTPSource, "application/json", strings.NewReader(`{"user_id":"u-0001","score":0.7}`))
	if err != nil {
		t.Fatal(err)
	}
	var acc struct{ ID, Topic string }
	json.NewDecoder(resp.Body).Decode(&acc)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || acc.ID == "" {
		t.Errorf("POST /v1/messages/%s: %s %+v", devstack.DemoHTTPSource, resp.Status, acc)
	}

	// The catalog lists the jobs the stack published at start.
	resp, err = http.Get("http://" + apiAddr + "/v1/jobs/" + credit.Name)
	if err != nil {
		t.Fatal(err)
	}
	var entry struct {
		Name     string
		Revision int
		Triggers []struct{ Source string }
	}
	json.NewDecoder(resp.Body).Decode(&entry)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || entry.Name != credit.Name || entry.Revision != 1 || len(entry.Triggers) != 1 {
		t.Errorf("GET /v1/jobs/%s: %s %+v", credit.Name, resp.Status, entry)
	}

	// The demo's day, up to a little before now: a backfill refuses a range
	// reaching into the future (its events are not all stored yet).
	day := time.Now().UTC().Add(-25 * time.Hour).Truncate(time.Hour)
	from, to := day.Format(time.RFC3339), time.Now().UTC().Add(-3*time.Second).Format(time.RFC3339)

	c, err := client.Dial(client.Options{HostPort: temporalAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// The demo's history was stored more than the hot window (5s) ago:
	// tiering moves it into the cold tier in the data folder, and the
	// backfills below read it from there.
	t.Run("tidemark tier run", func(t *testing.T) {
		// Each run moves what was stored more than 5s before it: run again
		// until every application of the history (stored as the demo
		// started, the last of its sources) has gone cold.
		apps := 0
		for try := 0; apps < history; try++ {
			if try == 30 {
				ls, _ := exec.Command("find", filepath.Join(dir, "data", "cold")).CombinedOutput()
				t.Fatalf("%d tierings moved %d applications, want the %d of the history; the cold folder:\n%s", try, apps, history, ls)
			}
			time.Sleep(time.Second)
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			b, err := exec.CommandContext(rctx, bin, "tier", "run", "--address", temporalAddr).CombinedOutput()
			cancel()
			if err != nil {
				t.Fatalf("tidemark tier run: %v\n%s", err, b)
			}
			for _, line := range strings.Split(string(b), "\n") {
				// <source>\t<n> events\t<n> segments\t<n> bytes
				if f := strings.Split(line, "\t"); len(f) == 4 && f[0] == credit.Applications {
					var n int
					fmt.Sscanf(f[1], "%d events", &n)
					apps += n
				}
			}
			t.Logf("%s", b)
		}
		segments, err := filepath.Glob(filepath.Join(dir, "data", "cold", "segments", credit.Applications, "*", "*.parquet"))
		if err != nil || len(segments) == 0 {
			t.Fatalf("the cold folder holds no segment of %s (%v)", credit.Applications, err)
		}
	})

	t.Run("temporal CLI", func(t *testing.T) {
		cli := temporalCLI(t)
		input := fmt.Sprintf(`{"job":%q,"from":%q,"to":%q,"chunk":"20m","parallelism":1,"progressEvery":"50ms","sink":"featurestore:backfill.cli"}`, credit.Name, from, to)
		cmd := exec.CommandContext(ctx, cli, "workflow", "start", "--address", temporalAddr, "--namespace", "default",
			"--task-queue", workflows.TaskQueue, "--type", workflows.BackfillWorkflow, "--workflow-id", "cli-backfill", "--input", input)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("temporal workflow start: %v\n%s", err, b)
		}
		// While it runs, the UI's HTTP API shows its progress.
		var between []float64
		status := ""
		for status != "WORKFLOW_EXECUTION_STATUS_COMPLETED" {
			ws, err := devtemporal.ListUIWorkflows(ctx, "http://"+uiAddr, "default", `WorkflowId="cli-backfill"`)
			if err != nil {
				t.Fatal(err)
			}
			if len(ws) == 1 {
				status = ws[0].Status
				var pct float64
				var job string
				if ws[0].Status == "WORKFLOW_EXECUTION_STATUS_RUNNING" &&
					json.Unmarshal(ws[0].SearchAttributes["TidemarkProgress"], &pct) == nil && pct > 0 && pct < 100 &&
					json.Unmarshal(ws[0].SearchAttributes["TidemarkJob"], &job) == nil && job == credit.Name {
					between = append(between, pct)
				}
				if status != "" && status != "WORKFLOW_EXECUTION_STATUS_RUNNING" && status != "WORKFLOW_EXECUTION_STATUS_COMPLETED" {
					t.Fatalf("the backfill ended %s", status)
				}
			}
			if ctx.Err() != nil {
				t.Fatal("the backfill did not complete")
			}
			time.Sleep(25 * time.Millisecond)
		}
		if len(between) == 0 {
			t.Error("the UI's HTTP API never showed the running backfill's progress between 0 and 100%")
		} else {
			t.Logf("progress seen through the UI while running: %v", between)
		}
		var sum workflows.Summary
		if err := c.GetWorkflow(ctx, "cli-backfill", "").Get(ctx, &sum); err != nil {
			t.Fatal(err)
		}
		if sum.Outputs < history || sum.Errors != 0 {
			t.Fatalf("summary %+v: want at least %d outputs", sum, history)
		}
		// And the CLI can read the result back.
		b, err := exec.CommandContext(ctx, cli, "workflow", "result", "--address", temporalAddr, "--workflow-id", "cli-backfill").CombinedOutput()
		if err != nil || !strings.Contains(string(b), `"outputs"`) {
			t.Errorf("temporal workflow result: %v\n%s", err, b)
		}
	})

	t.Run("tidemark backfill start", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, bin, "backfill", "start", "--address", temporalAddr, "--id", "our-backfill", "--job", credit.Name,
			"--from", from, "--to", to, "--chunk", "1h", "--sink", "file://"+filepath.Join(dir, "out"))
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tidemark backfill start: %v\n%s", err, b)
		}
		if !strings.Contains(string(b), "backfill our-backfill done") || !strings.Contains(string(b), "chunks") {
			t.Fatalf("output:\n%s", b)
		}
		t.Logf("%s", b)
	})

	// The printed training set: the demo's sample table (written at the
	// first start, of its history), one output row per sample row in
	// order, the one row whose application does not exist without state.
	t.Run("training set of the demo's sample table", func(t *testing.T) {
		b0, err := os.ReadFile(sample)
		if err != nil {
			t.Fatal(err)
		}
		b := b0
		rows := strings.Count(string(b), "\n") - 1
		if rows < history/10 || !strings.HasPrefix(string(b), "key,time,defaulted\n") {
			t.Fatalf("sample table of %d rows:\n%.300s", rows, b)
		}
		out := filepath.Join(dir, "training")
		cmd := exec.CommandContext(ctx, bin, "backfill", "start", "--address", temporalAddr, "--id", "training", "--job", credit.Name,
			"--sample", sample, "--sink", "file://"+out, "--format", "jsonl", "--watermark", "wait")
		b, err = cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tidemark backfill start --sample: %v\n%s", err, b)
		}
		if want := fmt.Sprintf("%d events, %d outputs", rows, rows-1); !strings.Contains(string(b), want) || !strings.Contains(string(b), "1 sample rows without state") {
			t.Fatalf("want %q and one row without state:\n%s", want, b)
		}
		recs, _, err := backfilltest.ReadDir(out)
		if err != nil || len(recs) != rows {
			t.Fatalf("training set of %d records (%v), want %d", len(recs), err, rows)
		}
		for i, line := range strings.Split(strings.TrimSpace(string(b0)), "\n")[1:] {
			if key, _, _ := strings.Cut(line, ","); recs[i].Trigger.Key != key {
				t.Fatalf("training set row %d is of %s, the sample's of %s", i, recs[i].Trigger.Key, key)
			}
		}
	})

	// Ctrl-C stops everything and the process exits 0.
	dev.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- dev.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("tidemark dev after Ctrl-C: %v", err)
		}
	case <-time.After(time.Minute):
		t.Error("tidemark dev did not stop within a minute of Ctrl-C")
	}
}

// temporalCLI finds the stock CLI: $TIDEMARK_TEMPORAL_CLI or `temporal` on
// PATH. Without it the test is skipped, or fails under CI=true.
func temporalCLI(t *testing.T) string {
	if p := os.Getenv("TIDEMARK_TEMPORAL_CLI"); p != "" {
		return p
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p
	}
	msg := "the temporal CLI is not installed: `go install github.com/temporalio/cli/cmd/temporal@v1.5.1` (about 12 minutes), or set TIDEMARK_TEMPORAL_CLI"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if ctx.Err() != nil {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
