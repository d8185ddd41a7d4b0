package workflows_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/catalog"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/workflows"
)

// TestCorrectionRebackfill runs a correction that changes two of three
// sources, with the catalog's jobs (real CorrectionRebackfillJobs on an
// in-memory event center) and a fake Backfill child: only jobs opted in
// that trigger on or read a changed source get a child, with the ID
// derived from the run, the range from their sources' earliest correction
// to the run's time (clipped to MaxRange), their sink and write mode and
// watermark "truncate"; at most RebackfillParallelism run at once; a
// failed child is noted and the correction still succeeds.
func TestCorrectionRebackfill(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	logic := func(*job.Context) (eventcenter.Row, error) { return nil, nil }
	const srcA, srcB, srcC = "mysql.shop.a", "mysql.shop.b", "mysql.shop.c"
	jobs := []*job.Job{
		job.MustNew("j1", logic, job.Trigger(srcA), job.Rebackfill(job.RebackfillOptions{})),
		job.MustNew("j2", logic, job.Trigger("app.other"), job.Reads(srcA, srcB), job.Rebackfill(job.RebackfillOptions{Write: "fill", Sink: "featurestore:x"})),
		job.MustNew("j3", logic, job.Trigger(srcB), job.Rebackfill(job.RebackfillOptions{MaxRange: 10 * time.Minute})),
		job.MustNew("j4", logic, job.Trigger(srcA)),                                          // not opted in
		job.MustNew("j5", logic, job.Trigger(srcC), job.Rebackfill(job.RebackfillOptions{})), // its source unchanged
	}
	if _, err := catalog.Publish(ctx, st, jobs...); err != nil {
		t.Fatal(err)
	}

	env := newTestEnv()
	now := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	env.SetStartTime(now)
	env.RegisterWorkflowWithOptions(workflows.Correction, workflow.RegisterOptions{Name: workflows.CorrectionWorkflow})
	env.RegisterActivity(&activities.Correction{Store: st})
	firstA, firstB := now.Add(-3*time.Hour), now.Add(-time.Hour)
	env.OnActivity(ca.CorrectionPlan, mock.Anything, mock.Anything).Return([]activities.CorrectionSourcePlan{
		{Target: activities.CorrectionTarget{Source: srcA}, Chunks: []activities.CorrectionChunk{{Index: 0}, {Index: 1}}},
		{Target: activities.CorrectionTarget{Source: srcB}, Chunks: []activities.CorrectionChunk{{Index: 0}}},
		{Target: activities.CorrectionTarget{Source: srcC}, Chunks: []activities.CorrectionChunk{{Index: 0}}},
	}, nil)
	env.OnActivity(ca.CorrectionChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CorrectionChunkInput) (activities.CorrectionResult, error) {
			r := activities.CorrectionResult{Source: in.Target.Source, Chunk: in.Chunk.Index}
			r.Compared = 10
			switch {
			case in.Target.Source == srcA && in.Chunk.Index == 0:
				r.Missing, r.Corrections, r.First = 2, 2, firstA.Add(time.Hour)
			case in.Target.Source == srcA:
				r.Different, r.Corrections, r.First = 1, 1, firstA
			case in.Target.Source == srcB:
				r.Extra, r.Corrections, r.First = 1, 1, firstB
			}
			return r, nil
		})
	env.OnActivity(ca.CorrectionExtras, mock.Anything, mock.Anything).Return([]activities.CorrectionChunk(nil), nil)
	env.OnActivity(ca.CorrectionLedger, mock.Anything, mock.Anything).Return(nil)

	type child struct {
		id string
		in workflows.BackfillInput
	}
	var children []child
	running, most := 0, 0
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in workflows.BackfillInput) (workflows.Summary, error) {
		children = append(children, child{workflow.GetInfo(ctx).WorkflowExecution.ID, in})
		running++
		most = max(most, running)
		defer func() { running-- }()
		if err := workflow.Sleep(ctx, time.Minute); err != nil {
			return workflows.Summary{}, err
		}
		if in.Job == "j3" {
			return workflows.Summary{}, errors.New("disk on fire")
		}
		return workflows.Summary{Job: in.Job, Replaced: 7}, nil
	}, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})

	env.ExecuteWorkflow(workflows.CorrectionWorkflow, workflows.CorrectionInput{Parallelism: 2, RebackfillParallelism: 2})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var sum workflows.CorrectionSummary
	if err := env.GetWorkflowResult(&sum); err != nil {
		t.Fatal(err)
	}

	run := sum.Run
	want := []struct {
		job, sink, write string
		from             time.Time
		clipped          bool
		sources          []string
		keys             []int
	}{
		{"j1", "featurestore", "replace", firstA, false, []string{srcA}, []int{3}},
		{"j2", "featurestore:x", "fill", firstA, false, []string{srcA, srcB}, []int{3, 1}},
		{"j3", "featurestore", "replace", now.Add(-10 * time.Minute), true, []string{srcB}, []int{1}},
	}
	// The children run concurrently: the order they started in is not the
	// run's (by job).
	slices.SortFunc(children, func(a, b child) int { return strings.Compare(a.in.Job, b.in.Job) })
	if len(sum.Rebackfill) != len(want) || len(children) != len(want) {
		t.Fatalf("rebackfills %+v, children %+v", sum.Rebackfill, children)
	}
	for i, w := range want {
		r, c := sum.Rebackfill[i], children[i]
		var srcs []string
		var keys []int
		for _, s := range r.Sources {
			srcs, keys = append(srcs, s.Source), append(keys, s.Keys)
		}
		if r.Job != w.job || r.ID != run+"/rebackfill/"+w.job || !r.From.Equal(w.from) || !r.To.Equal(now) || r.Clipped != w.clipped ||
			!slices.Equal(srcs, w.sources) || !slices.Equal(keys, w.keys) {
			t.Errorf("rebackfill %d: %+v", i, r)
		}
		if c.id != r.ID || c.in.Job != w.job || !c.in.From.Equal(w.from) || !c.in.To.Equal(now) ||
			c.in.Sink != w.sink || c.in.Write != w.write || c.in.Watermark != workflows.WatermarkTruncate {
			t.Errorf("child %d: %s %+v", i, c.id, c.in)
		}
	}
	if r := sum.Rebackfill[0]; r.Summary == nil || r.Summary.Replaced != 7 || r.Error != "" {
		t.Errorf("j1: summary %+v, error %q", r.Summary, r.Error)
	}
	if r := sum.Rebackfill[2]; r.Summary != nil || r.Error != "disk on fire" {
		t.Errorf("j3: summary %+v, error %q", r.Summary, r.Error)
	}
	if most != 2 {
		t.Errorf("%d re-backfills ran at once, want 2 (RebackfillParallelism)", most)
	}
}

// TestCorrectionNoRebackfill: NoRebackfill starts no child even when jobs
// opted in read a changed source.
func TestCorrectionNoRebackfill(t *testing.T) {
	env := newTestEnv()
	env.RegisterWorkflowWithOptions(workflows.Correction, workflow.RegisterOptions{Name: workflows.CorrectionWorkflow})
	env.RegisterActivity(ca)
	env.OnActivity(ca.CorrectionPlan, mock.Anything, mock.Anything).Return([]activities.CorrectionSourcePlan{
		{Target: activities.CorrectionTarget{Source: "mysql.shop.a"}, Chunks: []activities.CorrectionChunk{{Index: 0}}},
	}, nil)
	env.OnActivity(ca.CorrectionChunk, mock.Anything, mock.Anything).Return(
		activities.CorrectionResult{Source: "mysql.shop.a", First: time.Now().Add(-time.Hour), Drift: activities.CorrectionDrift{Compared: 1, Missing: 1, Corrections: 1}}, nil)
	env.OnActivity(ca.CorrectionExtras, mock.Anything, mock.Anything).Return([]activities.CorrectionChunk(nil), nil)
	env.OnActivity(ca.CorrectionLedger, mock.Anything, mock.Anything).Return(nil)
	env.ExecuteWorkflow(workflows.CorrectionWorkflow, workflows.CorrectionInput{NoRebackfill: true})
	var sum workflows.CorrectionSummary
	if err := env.GetWorkflowResult(&sum); err != nil {
		t.Fatal(err)
	}
	if len(sum.Rebackfill) != 0 || sum.Entries[0].Corrections != 1 {
		t.Errorf("summary %+v", sum)
	}
}
