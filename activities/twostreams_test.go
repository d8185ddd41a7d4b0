package activities_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/internal/backfilltest"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/live/livetest"
)

// TestTwoStreamsBackfillEqualsLive: a backfill of the job triggered by both
// orders and repayments replays the two sources merged in event order and
// writes exactly the records the live worker wrote (livetest.RunTwoStreams,
// which checks that every order is joined live).
func TestTwoStreamsBackfillEqualsLive(t *testing.T) {
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	liveRecs := livetest.RunTwoStreams(t, livetest.Fake(t), st, t0, 100)

	a := &activities.Backfill{Store: st, Jobs: activities.NewJobs(livetest.TwoStreams(job.Consistency(job.FetchStrong)))}
	in := activities.ChunkInput{Backfill: "bf-two-streams", Job: livetest.TwoStreamsJob, From: t0, To: t0.Add(time.Hour),
		Options: activities.Options{Sink: "featurestore:out.twostreams", SegmentEvents: 64}}
	r, _, err := runChunk(t, a, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Events != 200 || r.Outputs != len(liveRecs) || r.Failed != 0 {
		t.Fatalf("result %+v: want 200 events, %d outputs as live", r, len(liveRecs))
	}
	got, err := backfilltest.FeatureRecords(context.Background(), st, livetest.TwoStreamsJob, "out.twostreams", t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if d := backfilltest.Diff(got, liveRecs); len(d) > 0 {
		t.Fatalf("backfill records differ from live:\n%s", strings.Join(d, "\n"))
	}

	// The plan names both sources and holds the earlier watermark.
	orders, _ := livetest.TwoStreamsEvents(t0, 100)
	end, err := st.Watermark(context.Background(), livetest.Orders)
	if err != nil || end.Before(orders[99].Time) {
		t.Fatalf("orders' watermark %v, %v: want past the last order", end, err)
	}
	if err := st.AdvanceWatermark(context.Background(), livetest.Repayments, 0, end.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	plan := planOf(t, env, a, activities.PlanInput{Job: livetest.TwoStreamsJob})
	if want := []string{livetest.Orders, livetest.Repayments}; !slices.Equal(plan.Sources, want) || !plan.Watermark.Equal(end) ||
		len(plan.Watermarks) != 2 || !plan.Watermarks[0].Watermark.Equal(end) || !plan.Watermarks[1].Watermark.Equal(end.Add(time.Hour)) {
		t.Fatalf("plan %+v: want sources %v, watermark %v (the orders')", plan, want, end)
	}
}

// A backfill of a job the catalog does not know is refused with the jobs it
// knows; the worker's own jobs are in the catalog once it planned.
func TestPlanRefusesJobUnknownToCatalog(t *testing.T) {
	_, a, _ := fixture(t, 10)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err := env.ExecuteActivity(a.BackfillPlan, activities.PlanInput{Job: "nope"})
	if err == nil || !strings.Contains(err.Error(), `the catalog does not know job "nope": it is empty`) {
		t.Fatalf("plan of an unknown job in an empty catalog: %v", err)
	}
	if _, err := env.ExecuteActivity(a.BackfillPlan, activities.PlanInput{Job: backfilltest.JobName}); err != nil {
		t.Fatal(err)
	}
	_, err = env.ExecuteActivity(a.BackfillPlan, activities.PlanInput{Job: "nope"})
	if err == nil || !strings.Contains(err.Error(), `the catalog does not know job "nope" (it knows `+backfilltest.JobName+`)`) {
		t.Fatalf("plan of an unknown job: %v", err)
	}
}
