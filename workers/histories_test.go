package workers_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/internal/backfilltest"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/workers"
	"github.com/tidemark-dev/tidemark/workflows"
)

// TestBackfillHistories runs, on a real Temporal server, the backfills
// whose histories workflows.TestReplayHistories replays
// (workflows/testdata/backfill_v1_*.json; TIDEMARK_UPDATE_HISTORIES=1
// rewrites them): the workflow's own defaults, the parallelism update (and
// a rejected one) beside the older signal, continue-as-new, a failed chunk
// (a sample table replaced mid-backfill), a sample table to a Parquet file
// sink with its manifest and _SUCCESS, and a cancel.
//
// The histories of backfills started before versioning (backfill_v0_*.json)
// were recorded by this test's predecessor at commit 1644896 and are not
// rewritten.
func TestBackfillHistories(t *testing.T) {
	ctx := context.Background()
	srv := server(t, false)
	c := dial(t, srv)
	st := openStore(t, "")
	evs := backfilltest.Events(2400, 50, 2*time.Hour)
	if err := backfilltest.Fill(ctx, st, evs); err != nil {
		t.Fatal(err)
	}
	startWorker(t, c, "hist", workers.Deps{Store: st, Jobs: []*job.Job{backfilltest.SlowJob(time.Millisecond)}, Workers: 1})
	base := workflows.BackfillInput{Job: backfilltest.JobName, From: backfilltest.T0, To: backfilltest.T0.Add(2 * time.Hour),
		Chunk: workflows.Duration(10 * time.Minute)}
	triggers := backfilltest.Triggers(evs)
	write := map[string]string{} // workflow ID -> file
	var runIDs []string

	// Every default, as the stock CLI would send it (the workflow fills them).
	in := base
	in.Sink = "featurestore:hist.defaults"
	var sum workflows.Summary
	if err := backfill(t, c, "hist-defaults", "hist", in).Get(ctx, &sum); err != nil || sum.Chunks != 12 || sum.Written != triggers {
		t.Fatalf("defaults: %+v %v", sum, err)
	}
	write["hist-defaults"] = "backfill_v1_defaults.json"

	// The parallelism update after the first chunk; one out of range is
	// rejected with an error for the caller; the older signal still works.
	in = base
	in.Sink, in.Parallelism = "featurestore:hist.update", 1
	run := backfill(t, c, "hist-update", "hist", in)
	waitProgress(t, c, "hist-update", func(p workflows.Progress) bool { return p.Done >= 1 })
	update := func(n int) (int, error) {
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: "hist-update", UpdateName: workflows.ParallelismUpdate,
			Args: []any{n}, WaitForStage: client.WorkflowUpdateStageCompleted})
		if err != nil {
			return 0, err
		}
		var old int
		err = h.Get(ctx, &old)
		return old, err
	}
	if _, err := update(5000); err == nil || !strings.Contains(err.Error(), "want 1 to 1000") {
		t.Fatalf("update to 5000: %v, want it rejected", err)
	}
	if old, err := update(3); err != nil || old != 1 {
		t.Fatalf("update to 3: %d %v", old, err)
	}
	if err := c.SignalWorkflow(ctx, "hist-update", "", workflows.ParallelismSignal, 2); err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, &sum); err != nil || sum.Chunks != 12 {
		t.Fatalf("update: %+v %v", sum, err)
	}
	write["hist-update"] = "backfill_v1_update.json"

	// Continue-as-new: 12 chunks, 5 per run; both the first and the last
	// run's histories.
	in = base
	in.Sink, in.MaxChunksPerRun = "featurestore:hist.can", 5
	run = backfill(t, c, "hist-can", "hist", in)
	runIDs = append(runIDs, run.GetRunID())
	if err := run.Get(ctx, &sum); err != nil || sum.Runs != 3 || sum.Written != triggers {
		t.Fatalf("continue-as-new: %+v %v", sum, err)
	}
	write["hist-can"] = "backfill_v1_can_last.json"

	// A sample table, to a Parquet file sink: manifest and _SUCCESS.
	dir := t.TempDir()
	sample := filepath.Join(dir, "sample.csv")
	var b strings.Builder
	b.WriteString("key,time,label\n")
	rows := 0
	for i, e := range evs {
		if e.Source == backfilltest.Apps {
			rows++
			fmt.Fprintf(&b, "%s,%s,%d\n", e.Key, e.Time.Add(time.Minute).Format(time.RFC3339Nano), i%2)
		}
	}
	if err := os.WriteFile(sample, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	in = workflows.BackfillInput{Job: backfilltest.JobName, Sample: sample, ChunkRows: 300, Parallelism: 2,
		Options: activities.Options{Sink: "file://" + out, Format: "parquet"}}
	if err := backfill(t, c, "hist-sample", "hist", in).Get(ctx, &sum); err != nil || sum.Chunks != 8 || sum.Written != rows { // a training set: one row per sample row
		t.Fatalf("sample: %+v %v", sum, err)
	}
	for _, name := range []string{activities.ManifestName, activities.SuccessName} {
		if _, err := os.Stat(filepath.Join(out, "hist-sample", backfilltest.JobName, name)); err != nil {
			t.Fatalf("sample sink: %v", err)
		}
	}
	write["hist-sample"] = "backfill_v1_sample.json"

	// A failed chunk: the sample table is replaced after the first chunks.
	in.Parallelism, in.Sink, in.Format = 1, "featurestore:hist.failed", ""
	run = backfill(t, c, "hist-failed", "hist", in)
	waitProgress(t, c, "hist-failed", func(p workflows.Progress) bool { return p.Done >= 1 })
	if err := os.WriteFile(sample, []byte(b.String()+"app-1,2026-11-01T00:00:00Z,0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := run.Get(ctx, &sum)
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != workflows.ErrTypeChunkFailed || !strings.Contains(err.Error(), "changed since the backfill planned it") {
		t.Fatalf("failed chunk: %v", err)
	}
	write["hist-failed"] = "backfill_v1_failed_chunk.json"

	// Cancel while chunks run.
	in = base
	in.Sink, in.Parallelism = "featurestore:hist.cancel", 2
	run = backfill(t, c, "hist-cancel", "hist", in)
	waitProgress(t, c, "hist-cancel", func(p workflows.Progress) bool { return p.Done >= 2 })
	if err := c.CancelWorkflow(ctx, "hist-cancel", ""); err != nil {
		t.Fatal(err)
	}
	var ce *temporal.CanceledError
	if err := run.Get(ctx, &sum); !errors.As(err, &ce) {
		t.Fatalf("cancel: %v", err)
	}
	write["hist-cancel"] = "backfill_v1_cancel.json"

	if os.Getenv("TIDEMARK_UPDATE_HISTORIES") == "1" {
		for id, file := range write {
			writeHistory(t, c, id, file, nil)
		}
		writeRunHistory(t, c, "hist-can", runIDs[0], "backfill_v1_can_first.json")
	}
}
