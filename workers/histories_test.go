package workers_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/internal/backfilltest"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/workers"
	"github.com/tidemark-dev/tidemark/workflows"
)

// TestBackfillHistoriesV0 recorded, at commit 1644896 (before defaults were
// resolved by the starter and before versioning), the histories of
// backfills that relied on the workflow's defaults and on the parallelism
// signal: workflows/testdata/backfill_v0_*.json. Those histories stand for
// backfills running when a new worker version is deployed, and
// workflows.TestReplayHistories keeps them replayable. Today's code records
// new histories, not these: this test only checks that the runs succeed.
func TestBackfillHistoriesV0(t *testing.T) {
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

	// Every default: 12 chunks, 4 at once (the default of that time).
	in := base
	in.Sink = "featurestore:hist.v0.defaults"
	var sum workflows.Summary
	if err := backfill(t, c, "hist-v0-defaults", "hist", in).Get(ctx, &sum); err != nil || sum.Chunks != 12 {
		t.Fatalf("defaults: %+v %v", sum, err)
	}

	// The parallelism signal, sent after the first chunk.
	in = base
	in.Sink, in.Parallelism = "featurestore:hist.v0.signal", 1
	run := backfill(t, c, "hist-v0-signal", "hist", in)
	waitProgress(t, c, "hist-v0-signal", func(p workflows.Progress) bool { return p.Done >= 1 })
	if err := c.SignalWorkflow(ctx, "hist-v0-signal", "", workflows.ParallelismSignal, 3); err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, &sum); err != nil || sum.Chunks != 12 {
		t.Fatalf("signal: %+v %v", sum, err)
	}
	if os.Getenv("TIDEMARK_UPDATE_HISTORIES_V0") == "1" {
		writeHistory(t, c, "hist-v0-defaults", "backfill_v0_defaults.json", nil)
		writeHistory(t, c, "hist-v0-signal", "backfill_v0_signal.json", nil)
	}
}
