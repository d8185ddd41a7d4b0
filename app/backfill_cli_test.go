package app

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/internal/devtemporal"
)

// TestBackfillCLITellsTrouble runs the backfill commands against a
// Temporal server, first with no worker on the task queue, then with one:
// every kind of trouble is said and ends in exit 1, unless asked
// otherwise.
func TestBackfillCLITellsTrouble(t *testing.T) {
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
	const queue = "cli-trouble"
	// bf runs a backfill command against srv on queue.
	bf := func(t *testing.T, args ...string) (int, string, string) {
		t.Helper()
		args = append(append([]string{"backfill"}, args...), "--address", srv.Addr())
		if args[1] == "start" {
			args = append(args, "--task-queue", queue, "--job", credit.Name)
		}
		return run(t, args...)
	}
	want := func(t *testing.T, code int, out, errOut string, wantCode int, wantOut, wantErr []string) {
		t.Helper()
		ok := code == wantCode
		for _, w := range wantOut {
			ok = ok && strings.Contains(out, w)
		}
		for _, w := range wantErr {
			ok = ok && strings.Contains(errOut, w)
		}
		if !ok {
			t.Errorf("exit %d (want %d)\nstdout (want %q):\n%s\nstderr (want %q):\n%s", code, wantCode, wantOut, out, wantErr, errOut)
		}
	}

	t.Run("no worker", func(t *testing.T) {
		begin := time.Now()
		code, out, errOut := bf(t, "start", "--id", "no-worker", "--from", "2026-11-25", "--to", "2026-11-26", "--worker-timeout", "3s")
		want(t, code, out, errOut, ExitError, nil, []string{
			"no worker is polling task queue " + queue + ": backfill no-worker waits for one",
			"for 3s: backfill no-worker stays started", "--wait-for-worker"})
		if d := time.Since(begin); d > 20*time.Second {
			t.Errorf("gave up after %v, want about 3s", d)
		}
		// A running ID is an error, not the running backfill's handle; a
		// backfill over the same records is refused, one beside them not.
		code, out, errOut = bf(t, "start", "--id", "no-worker", "--from", "2026-11-25", "--to", "2026-11-26", "--detach")
		want(t, code, out, errOut, ExitError, nil, []string{"backfill no-worker is already running (run ", "backfill cancel --id no-worker"})
		code, out, errOut = bf(t, "start", "--id", "overlap", "--from", "2026-11-25T12:00:00Z", "--to", "2026-11-27", "--detach")
		want(t, code, out, errOut, ExitError, nil, []string{"backfill overlap would write the records of job credit-features that running backfill no-worker writes"})
		code, out, errOut = bf(t, "start", "--id", "apart", "--from", "2026-11-26", "--to", "2026-11-27", "--detach")
		want(t, code, out, errOut, ExitOK, []string{"apart"}, nil)
		code, out, errOut = bf(t, "cancel", "--id", "apart")
		want(t, code, out, errOut, ExitOK, []string{"cancel of backfill apart requested"}, nil)
		code, out, errOut = bf(t, "status", "--id", "no-worker")
		want(t, code, out, errOut, ExitOK, []string{"backfill no-worker: 0/0 chunks", "starting", "no worker is polling task queue " + queue}, nil)
		code, out, errOut = bf(t, "parallelism", "--id", "no-worker", "--set", "2")
		want(t, code, out, errOut, ExitError, nil, []string{"no worker is polling task queue " + queue + ": a change of the parallelism needs one"})
		code, out, errOut = bf(t, "cancel", "--id", "no-worker")
		want(t, code, out, errOut, ExitOK, []string{"cancel of backfill no-worker requested", "the cancel takes effect when one does"}, nil)
	})

	t.Run("cancel of no backfill", func(t *testing.T) {
		code, out, errOut := bf(t, "cancel", "--id", "nonexistent")
		want(t, code, out, errOut, ExitError, nil, []string{`no such backfill "nonexistent"`})
		code, out, errOut = bf(t, "status", "--id", "nonexistent")
		want(t, code, out, errOut, ExitError, nil, []string{`no such backfill "nonexistent"`})
	})

	// Two applications without a user: the credit job fails on them, so a
	// sample of their keys ends with two errors.
	store := filepath.Join(dir, "store")
	func() {
		st, err := embedded.Open(embedded.Config{Dir: store})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var apps []eventcenter.Event
		for i, key := range []string{"a1", "a2"} {
			apps = append(apps, eventcenter.Event{Source: credit.Applications, Key: key, Op: eventcenter.OpInsert,
				Time: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC), Pos: eventcenter.Position{Log: 1, Offset: uint64(i)},
				After: eventcenter.Row{"amount": int64(100)}})
		}
		if err := st.Append(ctx, apps); err != nil {
			t.Fatal(err)
		}
		// As ingest would: every application up to far ahead is stored.
		if err := st.AdvanceWatermark(ctx, credit.Applications, 0, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
	}()

	workerCtx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	var wg sync.WaitGroup
	var werr syncBuffer
	wg.Go(func() {
		Run(workerCtx, []string{"worker", "--store", "pebble://" + store, "--address", srv.Addr(),
			"--log-level", "warn", "--task-queue", queue}, io.Discard, &werr, Jobs(credit.New), Indexes(credit.Indexes()...))
	})

	// Sample rows whose runs fail are errors of the backfill.
	sample := filepath.Join(dir, "sample.csv")
	writeFile(t, sample, "key,time\na1,2026-11-25T10:00:00Z\na2,2026-11-25T11:00:00Z\na9,2026-11-25T12:00:00Z\n") // a9: no state
	t.Run("errors", func(t *testing.T) {
		code, out, errOut := bf(t, "start", "--id", "errors", "--sample", sample, "--sink", "file://"+filepath.Join(dir, "out1"))
		want(t, code, out, errOut, ExitError, []string{"backfill errors done: job credit-features", "2 errors (2 failed, 0 stale)"},
			[]string{"backfill errors done with 2 errors", "--allow-errors"})
		code, out, errOut = bf(t, "start", "--id", "errors-allowed", "--sample", sample, "--sink", "file://"+filepath.Join(dir, "out2"), "--allow-errors")
		want(t, code, out, errOut, ExitOK, []string{"backfill errors-allowed done", "2 errors"}, nil)
	})

	t.Run("0 events", func(t *testing.T) {
		code, out, errOut := bf(t, "start", "--id", "empty", "--from", "2026-11-25", "--to", "2026-11-26", "--sink", "file://"+filepath.Join(dir, "out3"))
		want(t, code, out, errOut, ExitOK, []string{"backfill empty done", "0 events"}, []string{"WARNING: backfill empty: the input held 0 events", "--from -24h --to -1m"})
	})

	// A bad sample table fails the plan: the error names the table and
	// what is wrong with it, not the layers it came through.
	t.Run("bad sample", func(t *testing.T) {
		bad := filepath.Join(dir, "nokey.csv")
		writeFile(t, bad, "id,time\n1,2026-11-25\n")
		code, out, errOut := bf(t, "start", "--id", "bad-sample", "--sample", bad, "--sink", "file://"+filepath.Join(dir, "out4"))
		want(t, code, out, errOut, ExitError, nil, []string{`backfill bad-sample failed: backfill: sample "` + bad + `": columns ["id" "time"] need a key (or entity) column and a time column (BadSample)`})
		if strings.Contains(errOut, "scheduledEventID") {
			t.Errorf("the error shows Temporal's wrapping: %s", errOut)
		}
	})

	t.Run("watermark refusal", func(t *testing.T) {
		code, out, errOut := bf(t, "start", "--id", "future", "--from", "-1h", "--to", "+1h")
		want(t, code, out, errOut, ExitError, nil, []string{"backfill future refused: backfill: the input reaches", "--watermark truncate", "--watermark wait"})
	})

	// A backfill waiting an hour for the clock (its range ends in the
	// future) runs while its parallelism changes.
	t.Run("parallelism", func(t *testing.T) {
		code, out, errOut := bf(t, "start", "--id", "waiting", "--from", "-1h", "--to", "+1h", "--watermark", "wait", "--watermark-timeout", "2h", "--detach")
		want(t, code, out, errOut, ExitOK, []string{"waiting"}, nil)
		code, out, errOut = bf(t, "parallelism", "--id", "waiting", "--set", "5000")
		want(t, code, out, errOut, ExitError, nil, []string{"parallelism 5000: want 1 to 1000"})
		code, out, errOut = bf(t, "parallelism", "--id", "waiting", "--set", "16")
		want(t, code, out, errOut, ExitOK, []string{"backfill waiting: parallelism 16 (was 8)"}, nil)
		code, out, errOut = bf(t, "cancel", "--id", "waiting")
		want(t, code, out, errOut, ExitOK, []string{"cancel of backfill waiting requested"}, nil)
	})

	stopWorker()
	wg.Wait()

	// The memo holds the progress: no worker needed to read it.
	t.Run("status without a worker", func(t *testing.T) {
		code, out, errOut := bf(t, "status", "--id", "errors")
		want(t, code, out, errOut, ExitOK, []string{"backfill errors: job credit-features, 1/1 chunks 100.0%", "3 events", "2 errors", "completed", "0 replaced, 1 sample rows without state,"}, nil)
		code, out, errOut = bf(t, "status", "--id", "future")
		want(t, code, out, errOut, ExitOK, []string{"backfill future: job credit-features", "failed", "ended: backfill: the input reaches"}, nil)
		code, out, errOut = bf(t, "cancel", "--id", "errors")
		want(t, code, out, errOut, ExitError, nil, []string{"backfill errors has already ended (completed at "})
	})
	if t.Failed() {
		t.Logf("worker stderr:\n%s", werr.String())
	}
}
