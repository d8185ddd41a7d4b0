package workers_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/eventcenter/tiered"
	"github.com/tidemark-dev/tidemark/internal/backfilltest"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/workers"
	"github.com/tidemark-dev/tidemark/workflows"
)

// TestTierWorkflow runs the tiering workflow on a real Temporal server: it
// moves every event of the backfill fixture into the cold tier, and a
// backfill over the range, now entirely cold, writes exactly the records of
// the same backfill run before tiering. With TIDEMARK_UPDATE_HISTORIES=1 it
// writes workflows/testdata/tier_v1.json.
func TestTierWorkflow(t *testing.T) {
	ctx := context.Background()
	srv := server(t, false)
	c := dial(t, srv)
	hot, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	// The tiered store's clock runs two days ahead: with a one-hour hot
	// window, everything stored so far is older than the window.
	st, err := tiered.New(tiered.Config{Hot: hot, Cold: tiered.Dir(t.TempDir()), HotWindow: time.Hour,
		Now: func() time.Time { return time.Now().Add(48 * time.Hour) }, Slice: time.Hour, EvictGrace: tiered.EvictGraceNone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	evs := backfilltest.Events(3000, 50, 2*time.Hour)
	if err := backfilltest.Fill(ctx, st, evs); err != nil {
		t.Fatal(err)
	}
	startWorker(t, c, "tier", workers.Deps{Store: st, Jobs: []*job.Job{backfilltest.Job()}})
	in := workflows.BackfillInput{Job: backfilltest.JobName, From: backfilltest.T0, To: backfilltest.T0.Add(2 * time.Hour),
		Chunk: workflows.Duration(20 * time.Minute), Options: activities.Options{Sink: "featurestore:out.before"}}
	var sum workflows.Summary
	if err := backfill(t, c, "tier-before", "tier", in).Get(ctx, &sum); err != nil {
		t.Fatal(err)
	}
	before, err := backfilltest.FeatureRecords(ctx, st, backfilltest.JobName, "out.before", backfilltest.T0, backfilltest.T0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "tier-now", TaskQueue: "tier"}, workflows.TierWorkflow, workflows.TierInput{})
	if err != nil {
		t.Fatal(err)
	}
	var tier workflows.TierSummary
	if err := run.Get(ctx, &tier); err != nil {
		t.Fatal(err)
	}
	// The fixture's events and the records the first backfill stored (and
	// the job's catalog entry).
	moved := 0
	for _, r := range tier.Sources {
		if r.Source != "tidemark.catalog" {
			moved += r.Events
		}
	}
	if want := len(evs) + len(before); moved != want || tier.Bytes <= 0 {
		t.Fatalf("tiering summary %+v, want %d events moved", tier, want)
	}
	var rows int
	for _, src := range []string{backfilltest.Apps, backfilltest.Users} {
		m, err := st.Manifest(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		for _, seg := range m.Segments {
			rows += seg.Rows
		}
	}
	if rows != len(evs) {
		t.Fatalf("the segments hold %d events, want %d", rows, len(evs))
	}

	in.Options.Sink = "featurestore:out.after"
	if err := backfill(t, c, "tier-after", "tier", in).Get(ctx, &sum); err != nil {
		t.Fatal(err)
	}
	after, err := backfilltest.FeatureRecords(ctx, st, backfilltest.JobName, "out.after", backfilltest.T0, backfilltest.T0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != backfilltest.Triggers(evs) {
		t.Errorf("the backfill over the cold range wrote %d records, want %d", len(after), backfilltest.Triggers(evs))
	}
	if d := backfilltest.Diff(after, before); len(d) > 0 {
		t.Fatalf("the backfill over the cold range differs from the one before tiering:\n%s", strings.Join(d, "\n"))
	}
	if os.Getenv("TIDEMARK_UPDATE_HISTORIES") == "1" {
		writeHistory(t, c, "tier-now", "tier_v1.json", nil)
	}
}
