package workers_test

import (
	"context"
	"encoding/json"
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
// (workflows/testdata/backfill_v3_*.json; TIDEMARK_UPDATE_HISTORIES=1
// rewrites them): the workflow's own defaults, its chunk sized to the
// range and parallelism, the parallelism update (and
// a rejected one) beside the older signal, continue-as-new, a failed chunk
// (a sample table replaced mid-backfill), a sample table to a Parquet file
// sink with its manifest and _SUCCESS, the same ID started again (its
// folder cleared), a cancel, and a truncation that leaves nothing (a
// partition at the floor).
//
// The histories of backfills started before versioning (backfill_v0_*.json)
// were recorded by this test's predecessor at commit 1644896, those of
// version 1 (backfill_v1_*.json) by this test at commit e450c25, those of
// version 2 (backfill_v2_*.json) by this test before commit 967e214; they are
// not rewritten.
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
	const v = "backfill_v3_"     // the prefix of the files written
	write := map[string]string{} // workflow ID -> file
	var runIDs []string

	// Every default, as the stock CLI would send it (the workflow fills them).
	in := base
	in.Sink = "featurestore:hist.defaults"
	var sum workflows.Summary
	if err := backfill(t, c, "hist-defaults", "hist", in).Get(ctx, &sum); err != nil || sum.Chunks != 12 || sum.Written != triggers {
		t.Fatalf("defaults: %+v %v", sum, err)
	}
	write["hist-defaults"] = v + "defaults.json"

	// No chunk: the workflow sizes it to the range and the parallelism (a
	// day at 2 at once: 3h, 8 chunks).
	in = base
	in.To, in.Chunk, in.Parallelism, in.Sink = backfilltest.T0.Add(24*time.Hour), 0, 2, "featurestore:hist.chunk"
	if err := backfill(t, c, "hist-chunk", "hist", in).Get(ctx, &sum); err != nil || sum.Chunks != 8 || sum.Written != triggers {
		t.Fatalf("default chunk: %+v %v", sum, err)
	}
	write["hist-chunk"] = v + "default_chunk.json"

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
	write["hist-update"] = v + "update.json"

	// Continue-as-new: 12 chunks, 5 per run; both the first and the last
	// run's histories.
	in = base
	in.Sink, in.MaxChunksPerRun = "featurestore:hist.can", 5
	run = backfill(t, c, "hist-can", "hist", in)
	runIDs = append(runIDs, run.GetRunID())
	if err := run.Get(ctx, &sum); err != nil || sum.Runs != 3 || sum.Written != triggers {
		t.Fatalf("continue-as-new: %+v %v", sum, err)
	}
	write["hist-can"] = v + "can_last.json"

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
	run = backfill(t, c, "hist-sample", "hist", in)
	sampleRun := run.GetRunID()
	if err := run.Get(ctx, &sum); err != nil || sum.Chunks != 8 || sum.Written != rows { // a training set: one row per sample row
		t.Fatalf("sample: %+v %v", sum, err)
	}
	for _, name := range []string{activities.ManifestName, activities.SuccessName} {
		if _, err := os.Stat(filepath.Join(out, "hist-sample", backfilltest.JobName, name)); err != nil {
			t.Fatalf("sample sink: %v", err)
		}
	}
	// The manifest names the table's version that every chunk read.
	fi, err := os.Stat(sample)
	if err != nil {
		t.Fatal(err)
	}
	m := readManifest(t, filepath.Join(out, "hist-sample", backfilltest.JobName))
	if tab := m.Sample; tab == nil || tab.URI != sample || tab.Format != "csv" || tab.Rows != rows || tab.Size != fi.Size() ||
		tab.Version != fmt.Sprintf("mtime=%d size=%d", fi.ModTime().UnixNano(), fi.Size()) || m.Error != "" {
		t.Fatalf("sample manifest: sample %+v, error %q; want %s, %d rows, %d bytes, its version", m.Sample, m.Error, sample, rows, fi.Size())
	}

	// The same ID started again: the earlier backfill's objects and
	// _SUCCESS are removed before anything runs, then written anew.
	if err := backfill(t, c, "hist-sample", "hist", in).Get(ctx, &sum); err != nil || sum.Written != rows ||
		len(sum.Warnings) != 1 || !strings.Contains(sum.Warnings[0], "of an earlier backfill with this ID") {
		t.Fatalf("sample again: %+v %v", sum, err)
	}
	if _, err := os.Stat(filepath.Join(out, "hist-sample", backfilltest.JobName, activities.SuccessName)); err != nil {
		t.Fatalf("sample sink again: %v", err)
	}
	write["hist-sample"] = v + "sample_again.json"

	// A failed chunk: the sample table is replaced after the first chunks.
	in.Parallelism, in.Sink, in.Format = 1, "featurestore:hist.failed", ""
	run = backfill(t, c, "hist-failed", "hist", in)
	waitProgress(t, c, "hist-failed", func(p workflows.Progress) bool { return p.Done >= 1 })
	if err := os.WriteFile(sample, []byte(b.String()+"app-1,2026-11-01T00:00:00Z,0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = run.Get(ctx, &sum)
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != workflows.ErrTypeChunkFailed || !strings.Contains(err.Error(), "changed since the backfill planned it") {
		t.Fatalf("failed chunk: %v", err)
	}
	write["hist-failed"] = v + "failed_chunk.json"

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
	write["hist-cancel"] = v + "cancel.json"

	// A partition registered at the floor: truncating at the watermark
	// leaves nothing, which fails; the file sink gets no _SUCCESS.
	if err := st.RegisterPartitions(ctx, backfilltest.Apps, []int32{99}); err != nil {
		t.Fatal(err)
	}
	in = base
	in.Sink, in.Watermark = "file://"+out, workflows.WatermarkTruncate
	err = backfill(t, c, "hist-truncated", "hist", in).Get(ctx, &sum)
	if !errors.As(err, &ae) || ae.Type() != workflows.ErrTypeWatermark || !strings.Contains(err.Error(), "nothing ran") {
		t.Fatalf("truncated to nothing: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "hist-truncated", backfilltest.JobName, activities.SuccessName)); !os.IsNotExist(err) {
		t.Fatalf("truncated to nothing: _SUCCESS %v, want none", err)
	}
	// Its manifest says why it failed; a range names no sample table.
	if m := readManifest(t, filepath.Join(out, "hist-truncated", backfilltest.JobName)); m.Status != "failed" || !strings.Contains(m.Error, "nothing ran") || m.Sample != nil {
		t.Fatalf("truncated to nothing: manifest status %q, error %q, sample %+v; want failed, why, none", m.Status, m.Error, m.Sample)
	}
	write["hist-truncated"] = v + "truncated.json"

	if os.Getenv("TIDEMARK_UPDATE_HISTORIES") == "1" {
		for id, file := range write {
			writeHistory(t, c, id, file, nil)
		}
		writeRunHistory(t, c, "hist-can", runIDs[0], v+"can_first.json")
		writeRunHistory(t, c, "hist-sample", sampleRun, v+"sample.json")
	}
}

// readManifest reads the manifest of a backfill's folder in a file sink.
func readManifest(t *testing.T, dir string) activities.Manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, activities.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var m activities.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest %s: %v", b, err)
	}
	return m
}
