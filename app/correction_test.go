package app

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"

	"github.com/tidemark-dev/tidemark/correction"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/internal/devtemporal"
	"github.com/tidemark-dev/tidemark/workflows"
)

// TestCorrectionReport prints the drift ledger of a store: one run's
// entries, or a source's since a time, then the re-backfills each run
// started, from its workflow's memo (a run Temporal does not know is said
// on stderr); conflicting selections are usage errors.
func TestCorrectionReport(t *testing.T) {
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
	st, err := embedded.Open(embedded.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	entries := []correction.Entry{
		{Run: "correction-1", Source: "mysql.shop.orders", Started: day, Chunks: 3,
			Drift: correction.Drift{Compared: 30, Missing: 2, Different: 1, Corrections: 3, Columns: map[string]int{"amount": 1},
				Keys: map[string][]string{correction.KindMissing: {"7", "9"}, correction.KindDifferent: {"12"}}}},
		{Run: "correction-1", Source: "mysql.shop.log", Started: day, Skipped: "the table has no primary key"},
		{Run: "correction-2", Source: "mysql.shop.orders", Started: day.Add(24 * time.Hour), Drift: correction.Drift{Compared: 31}},
	}
	if err := correction.WriteLedger(context.Background(), st, entries); err != nil {
		t.Fatal(err)
	}
	st.Close()
	store := "pebble://" + dir

	// Run correction-1 is a workflow (no worker runs it) whose memo lists
	// its re-backfills; correction-2 is unknown to Temporal.
	c, err := srv.NewClient(ctx, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rs := []workflows.Rebackfill{{Job: "score", ID: "correction-1/rebackfill/score", From: day.Add(-time.Hour), To: day, Sink: "featurestore", Write: "replace",
		Sources: []workflows.RebackfillSource{{Source: "mysql.shop.orders", Keys: 3, First: day.Add(-time.Hour)}},
		Summary: &workflows.Summary{Events: 4, Outputs: 4, Replaced: 4}}}
	if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "correction-1", TaskQueue: "report-test", Memo: map[string]any{workflows.RebackfillMemo: rs}},
		workflows.CorrectionWorkflow, workflows.CorrectionInput{}); err != nil {
		t.Fatal(err)
	}
	report := func(args ...string) (int, string, string) {
		return run(t, append([]string{"correction", "report", "--store", store, "--address", srv.Addr()}, args...)...)
	}

	code, out, errOut := report("--run", "correction-1")
	if code != ExitOK || !strings.Contains(out, "mysql.shop.log") || !strings.Contains(out, "the table has no primary key") ||
		!strings.Contains(out, "missing keys: 7 9") || !strings.Contains(out, "different keys: 12") || strings.Contains(out, "correction-2") ||
		!strings.Contains(out, "correction-1 started 1 re-backfills:\n"+
			"re-backfill score [2026-12-01T01:00:00Z, 2026-12-01T02:00:00Z) as correction-1/rebackfill/score (sink featurestore, write replace): done: 4 events, 4 outputs, 0 written, 4 replaced, 0 errors\n"+
			"  because the run corrected mysql.shop.orders (3 keys from 2026-12-01T01:00:00Z)\n") {
		t.Errorf("--run: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = report("--source", "mysql.shop.orders", "--since", "2026-12-02")
	if code != ExitOK || !strings.Contains(out, "correction-2") || strings.Contains(out, "correction-1") ||
		!strings.Contains(errOut, "correction-2: re-backfills not listed: Temporal no longer keeps the run") {
		t.Errorf("--source --since: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut = run(t, "correction", "report", "--store", store, "--run", "x", "--source", "y"); code != ExitUsage {
		t.Errorf("--run with --source: exit %d, %s", code, errOut)
	}
	if code, _, errOut = run(t, "correction", "run", "--keys", "1"); code != ExitUsage || !strings.Contains(errOut, "exactly one --source") {
		t.Errorf("--keys without --source: exit %d, %s", code, errOut)
	}
}

// TestCorrectionInFlightFlags: the worker's bound on a correction's rows in
// flight, and the deprecated chunk count it replaced (taken as chunks of
// the 10 000 rows they were then, so a worker started with it keeps its
// memory).
func TestCorrectionInFlightFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		rows int
		err  string
	}{
		{nil, 0, ""},
		{[]string{"--correction-in-flight-rows", "300000"}, 300000, ""},
		{[]string{"--correction-in-flight", "32"}, 320000, ""},
		{[]string{"--correction-in-flight", "-1"}, 0, "--correction-in-flight -1"},
		{[]string{"--correction-in-flight", "4", "--correction-in-flight-rows", "1"}, 0, "give one"},
	} {
		var d correctionDeps
		f := pflag.NewFlagSet("worker", pflag.ContinueOnError)
		d.register(&cli{env: func(string) (string, bool) { return "", false }}, f)
		if err := f.Parse(tc.args); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		err := d.validate()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: error %v, want one saying %q", tc.args, err, tc.err)
		case tc.err == "" && d.inFlightRows != tc.rows:
			t.Errorf("%v: %d rows in flight, want %d", tc.args, d.inFlightRows, tc.rows)
		}
	}
}
