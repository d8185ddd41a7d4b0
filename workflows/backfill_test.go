package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/workflows"
)

var (
	a  *activities.Backfill
	t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	// far is a watermark past every test's input.
	far = t0.Add(365 * 24 * time.Hour)
)

// chunks records the chunk inputs the mocked activity saw.
type chunks struct {
	mu   sync.Mutex
	seen []activities.ChunkInput
}

func (c *chunks) result(in activities.ChunkInput) activities.ChunkResult {
	c.mu.Lock()
	c.seen = append(c.seen, in)
	c.mu.Unlock()
	return activities.ChunkResult{Index: in.Index, Events: 10, Outputs: 7, Skipped: 2, Failed: 1, Attempt: 1}
}

// newTestEnv returns a test environment that logs warnings and errors only.
func newTestEnv() *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	return s.NewTestWorkflowEnvironment()
}

func newEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *chunks) {
	env := newTestEnv()
	env.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
	env.RegisterActivity(a)
	env.OnActivity(a.BackfillPlan, mock.Anything, mock.Anything).Return(activities.Plan{Source: "test.apps", Watermark: far}, nil)
	c := &chunks{}
	return env, c
}

func rangeInput() workflows.BackfillInput {
	return workflows.BackfillInput{Job: "test", From: t0, To: t0.Add(10*time.Hour + 30*time.Minute), Chunk: workflows.Duration(time.Hour), Parallelism: 3}
}

// The chunks of a range cover it exactly once: contiguous, in order of
// index, the first at From and the last ending at To.
func TestBackfillCoversRangeOnce(t *testing.T) {
	env, c := newEnv(t)
	env.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ChunkInput) (activities.ChunkResult, error) {
			return c.result(in), nil
		})
	in := rangeInput()
	env.ExecuteWorkflow(workflows.Backfill, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var sum workflows.Summary
	if err := env.GetWorkflowResult(&sum); err != nil {
		t.Fatal(err)
	}
	if len(c.seen) != 11 || sum.Chunks != 11 || sum.Events != 110 || sum.Outputs != 77 || sum.Failed != 11 || sum.Errors != 11 || sum.Runs != 1 {
		t.Fatalf("summary %+v after %d chunks", sum, len(c.seen))
	}
	slices.SortFunc(c.seen, func(x, y activities.ChunkInput) int { return x.Index - y.Index })
	for i, ch := range c.seen {
		wantFrom := in.From
		if i > 0 {
			wantFrom = c.seen[i-1].To
		}
		if ch.Index != i || !ch.From.Equal(wantFrom) || !ch.To.After(ch.From) || ch.Job != "test" {
			t.Fatalf("chunk %d: %+v", i, ch)
		}
	}
	if last := c.seen[len(c.seen)-1]; !last.To.Equal(in.To) {
		t.Fatalf("last chunk ends at %v, want %v", last.To, in.To)
	}
}

// At most Parallelism chunks run at once, the progress query says how far
// the backfill is, and a signal changes the parallelism while it runs.
func TestBackfillParallelismProgressAndSignal(t *testing.T) {
	env, c := newEnv(t)
	env.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).After(10 * time.Minute).Return(
		func(_ context.Context, in activities.ChunkInput) (activities.ChunkResult, error) {
			return c.result(in), nil
		})
	var progress []workflows.Progress
	query := func() {
		v, err := env.QueryWorkflow(workflows.ProgressQuery)
		if err != nil {
			t.Error(err)
			return
		}
		var p workflows.Progress
		if err := v.Get(&p); err != nil {
			t.Error(err)
		}
		progress = append(progress, p)
	}
	env.RegisterDelayedCallback(query, 5*time.Minute)  // first 3 running
	env.RegisterDelayedCallback(query, 15*time.Minute) // 3 done, next 3 running
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.ParallelismSignal, 6) }, 16*time.Minute)
	env.RegisterDelayedCallback(query, 25*time.Minute) // 6 done, 5 running
	env.ExecuteWorkflow(workflows.Backfill, rangeInput())
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(progress) != 3 {
		t.Fatalf("progress %+v", progress)
	}
	want := []struct{ done, running int }{{0, 3}, {3, 3}, {6, 5}}
	for i, p := range progress {
		if p.Done != want[i].done || p.Running != want[i].running || p.Chunks != 11 || p.State != "running" || p.Job != "test" {
			t.Errorf("progress %d: %+v, want done %d running %d", i, p, want[i].done, want[i].running)
		}
	}
	if p := progress[1]; p.Events != 30 || p.Outputs != 21 || p.Errors != 3 || p.Percent < 27 || p.Percent > 28 {
		t.Errorf("progress counts %+v", p)
	}
}

// Cancelling stops new chunks, cancels the running ones, and ends the
// workflow cancelled with the summary so far.
func TestBackfillCancel(t *testing.T) {
	env, c := newEnv(t)
	canceled := 0
	env.SetOnActivityCanceledListener(func(*activity.Info) { canceled++ })
	env.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).After(10 * time.Minute).Return(
		func(_ context.Context, in activities.ChunkInput) (activities.ChunkResult, error) {
			return c.result(in), nil
		})
	env.RegisterDelayedCallback(env.CancelWorkflow, 15*time.Minute)
	env.ExecuteWorkflow(workflows.Backfill, rangeInput())
	err := env.GetWorkflowError()
	var ce *temporal.CanceledError
	if !errors.As(err, &ce) {
		t.Fatalf("want a cancellation, got %v", err)
	}
	var sum workflows.Summary
	if err := ce.Details(&sum); err != nil {
		t.Fatal(err)
	}
	if sum.Events != 30 || sum.Outputs != 21 {
		t.Fatalf("summary %+v: want the first 3 chunks", sum)
	}
	if len(c.seen) != 3 || canceled != 3 {
		t.Fatalf("%d chunks finished, %d cancelled; want 3 and 3", len(c.seen), canceled)
	}
}

// After MaxChunksPerRun chunks the workflow continues as new with its
// state; the continuation finishes the rest.
func TestBackfillContinueAsNew(t *testing.T) {
	env, c := newEnv(t)
	env.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ChunkInput) (activities.ChunkResult, error) {
			return c.result(in), nil
		})
	in := rangeInput()
	in.MaxChunksPerRun = 4
	env.ExecuteWorkflow(workflows.Backfill, in)
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	if can.WorkflowType.Name != workflows.BackfillWorkflow {
		t.Fatalf("continues as %q", can.WorkflowType.Name)
	}
	var next workflows.BackfillInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.State == nil || next.State.Next != 4 || next.State.Done != 4 || next.State.Chunks != 11 || next.State.Summary.Events != 40 || next.State.Runs != 1 {
		t.Fatalf("state %+v", next.State)
	}

	// The continuation: no new plan, chunks 4.. only, totals carried over.
	env2, c2 := newEnv(t)
	env2.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ChunkInput) (activities.ChunkResult, error) {
			return c2.result(in), nil
		})
	next.MaxChunksPerRun = 100
	env2.ExecuteWorkflow(workflows.Backfill, next)
	var sum workflows.Summary
	if err := env2.GetWorkflowResult(&sum); err != nil {
		t.Fatal(err)
	}
	if len(c2.seen) != 7 || sum.Events != 110 || sum.Runs != 2 {
		t.Fatalf("continuation ran %d chunks, summary %+v", len(c2.seen), sum)
	}
	for _, ch := range c2.seen {
		if ch.Index < 4 {
			t.Fatalf("chunk %d ran again", ch.Index)
		}
	}
	env2.AssertNotCalled(t, "BackfillPlan", mock.Anything, mock.Anything)
}

// Temporal's continue-as-new suggestion is followed too.
func TestBackfillContinueAsNewSuggested(t *testing.T) {
	env, c := newEnv(t)
	env.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ChunkInput) (activities.ChunkResult, error) {
			return c.result(in), nil
		})
	env.SetContinueAsNewSuggested(true)
	env.ExecuteWorkflow(workflows.Backfill, rangeInput())
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
}

// A chunk failing after its retries fails the backfill once the running
// chunks finish, with the summary so far.
func TestBackfillChunkFails(t *testing.T) {
	env, c := newEnv(t)
	index := func(i int) any { return mock.MatchedBy(func(in activities.ChunkInput) bool { return in.Index == i }) }
	env.OnActivity(a.BackfillChunk, mock.Anything, index(1)).Return(
		activities.ChunkResult{}, temporal.NewNonRetryableApplicationError("disk on fire", "Boom", nil))
	env.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).After(time.Minute).Return(
		func(_ context.Context, in activities.ChunkInput) (activities.ChunkResult, error) {
			return c.result(in), nil
		})
	env.ExecuteWorkflow(workflows.Backfill, rangeInput())
	var ae *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &ae) || ae.Type() != "ChunkFailed" {
		t.Fatalf("want ChunkFailed, got %v", err)
	}
	var sum workflows.Summary
	if err := ae.Details(&sum); err != nil {
		t.Fatal(err)
	}
	if len(c.seen) != 2 || sum.Events != 20 {
		t.Fatalf("%d chunks, summary %+v: want chunks 0 and 2 only", len(c.seen), sum)
	}
}

// A sample table's chunks are the plan's row runs.
func TestBackfillSample(t *testing.T) {
	env := newTestEnv()
	env.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
	env.RegisterActivity(a)
	plan := activities.SamplePlan{URI: "s3://b/sample.csv", Rows: 25, ChunkRows: 10, Offsets: []int64{9, 200, 400}, Columns: 2, KeyCol: 0, TimeCol: 1}
	env.OnActivity(a.BackfillPlan, mock.Anything, activities.PlanInput{Job: "test", Sample: "s3://b/sample.csv", ChunkRows: 10,
		Options: activities.Options{SegmentEvents: activities.DefaultSegmentEvents, Write: activities.WriteFill}}).
		Return(activities.Plan{Source: "test.apps", Sample: &plan, Watermark: far}, nil)
	c := &chunks{}
	env.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ChunkInput) (activities.ChunkResult, error) {
			return c.result(in), nil
		})
	env.ExecuteWorkflow(workflows.Backfill, workflows.BackfillInput{Job: "test", Sample: "s3://b/sample.csv", ChunkRows: 10})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(c.seen, func(x, y activities.ChunkInput) int { return x.Index - y.Index })
	if len(c.seen) != 3 {
		t.Fatalf("%d chunks", len(c.seen))
	}
	rows := 0
	for i, ch := range c.seen {
		if ch.Sample == nil || ch.Sample.FirstRow != rows || ch.Sample.Offset != plan.Offsets[i] || !ch.From.IsZero() {
			t.Fatalf("chunk %d: %+v", i, ch)
		}
		rows += ch.Sample.Rows
	}
	if rows != 25 {
		t.Fatalf("chunks hold %d rows, want 25", rows)
	}
}

// A sample backfill's progress counts the table's rows, not its chunks,
// whose sizes may differ (a sized plan's last ones are smaller, a table's
// last chunk holds what is left): with chunks of 20, 20 and 10 rows, one
// chunk done is 40 %, two 80 %, all 100 % (a chunk's Events are the rows
// it read).
func TestBackfillSampleProgressCountsRows(t *testing.T) {
	env := newTestEnv()
	env.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
	env.RegisterActivity(a)
	plan := activities.SamplePlan{URI: "s3://b/sample.csv", Rows: 50, ChunkRows: 20, Offsets: []int64{9, 200, 400}, Columns: 2, KeyCol: 0, TimeCol: 1}
	env.OnActivity(a.BackfillPlan, mock.Anything, mock.Anything).Return(activities.Plan{Source: "test.apps", Sample: &plan, Watermark: far}, nil)
	env.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).After(10 * time.Minute).Return(
		func(_ context.Context, in activities.ChunkInput) (activities.ChunkResult, error) {
			return activities.ChunkResult{Index: in.Index, Events: in.Sample.Rows, Attempt: 1}, nil
		})
	var got []workflows.Progress
	for _, at := range []time.Duration{5 * time.Minute, 15 * time.Minute, 25 * time.Minute} {
		env.RegisterDelayedCallback(func() { got = append(got, backfillProgress(t, env)) }, at)
	}
	env.ExecuteWorkflow(workflows.Backfill, workflows.BackfillInput{Job: "test", Sample: "s3://b/sample.csv", Parallelism: 1})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	got = append(got, backfillProgress(t, env))
	want := []struct {
		done    int
		percent float64
	}{{0, 0}, {1, 40}, {2, 80}, {3, 100}}
	if len(got) != len(want) {
		t.Fatalf("progress %+v", got)
	}
	for i, p := range got {
		if p.Done != want[i].done || p.Percent != want[i].percent || p.Rows != 50 || p.Chunks != 3 {
			t.Errorf("progress %d: %+v, want %d chunks done, %v %%", i, p, want[i].done, want[i].percent)
		}
	}
}

// backfillProgress answers the progress query of env's backfill; a failure
// is the test's error (it may run in a delayed callback).
func backfillProgress(t *testing.T, env *testsuite.TestWorkflowEnvironment) workflows.Progress {
	t.Helper()
	var p workflows.Progress
	v, err := env.QueryWorkflow(workflows.ProgressQuery)
	if err == nil {
		err = v.Get(&p)
	}
	if err != nil {
		t.Error(err)
	}
	return p
}

// A Parquet table whose row groups hold more rows than the rows per chunk
// asked runs in chunks of whole groups, and the summary warns of it with
// the largest chunk's rows and says the rows over the chunks (rounded) as
// its rows per chunk, or the rows asked if those are more; a table whose
// chunks fit, and a sized plan (no rows asked, chunks as the plan chose
// them), do neither.
func TestBackfillWarnsOfChunksLargerThanAsked(t *testing.T) {
	const warning = "the sample table's row groups hold more than the 300 rows per chunk asked: its chunks are whole row groups, the largest of %d rows"
	for _, c := range []struct {
		name      string
		firstRows []int // of each chunk (one row group each)
		rows      int
		asked     int // BackfillInput.ChunkRows
		planned   int // the plan's ChunkRows
		said      int // the summary's ChunkRows
		largest   int // in the warning; 0 for none
	}{
		{"groups of 1000", []int{0, 1000, 2000}, 2501, 300, 300, 834, 1000}, // 2 501 / 3 = 833.7
		{"groups that fit", []int{0, 1000, 2000}, 2501, 1000, 1000, 1000, 0},
		{"small groups between large", []int{0, 301, 302, 603}, 604, 300, 300, 300, 301}, // 604 / 4 = 151 < 300
		{"sized", []int{0, 1000, 2000}, 2501, 0, 800, 800, 0},
	} {
		env := newTestEnv()
		env.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
		env.RegisterActivity(a)
		n := len(c.firstRows)
		plan := activities.SamplePlan{URI: "s3://b/sample.parquet", Format: activities.FormatParquet, Rows: c.rows, ChunkRows: c.planned,
			FirstRows: c.firstRows, RowGroups: n, Columns: 2, KeyCol: 0, TimeCol: 1}
		for i := range n {
			plan.Offsets, plan.Ends, plan.Groups = append(plan.Offsets, int64(4+100*i)), append(plan.Ends, int64(104+100*i)), append(plan.Groups, i)
		}
		env.OnActivity(a.BackfillPlan, mock.Anything, mock.Anything).Return(activities.Plan{Source: "test.apps", Sample: &plan, Watermark: far}, nil)
		env.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.ChunkInput) (activities.ChunkResult, error) {
				return activities.ChunkResult{Index: in.Index, Events: in.Sample.Rows, Attempt: 1}, nil
			})
		env.ExecuteWorkflow(workflows.Backfill, workflows.BackfillInput{Job: "test", Sample: "s3://b/sample.parquet", ChunkRows: c.asked})
		var sum workflows.Summary
		if err := env.GetWorkflowResult(&sum); err != nil {
			t.Fatal(err)
		}
		var warned []string
		for _, w := range sum.Warnings {
			if strings.Contains(w, "row groups") {
				warned = append(warned, w)
			}
		}
		var want []string
		if c.largest > 0 {
			want = []string{fmt.Sprintf(warning, c.largest)}
		}
		if !slices.Equal(warned, want) {
			t.Errorf("%s: warnings %q, want %q", c.name, sum.Warnings, want)
		}
		if sum.Events != c.rows || sum.Chunks != n || sum.ChunkRows != c.said {
			t.Errorf("%s: summary of %d events, %d chunks of %d rows; want %d, %d of %d", c.name, sum.Events, sum.Chunks, sum.ChunkRows, c.rows, n, c.said)
		}
	}
}

// The manifest of a sample backfill that set no rows per chunk records the
// rows per chunk its plan chose, as it records every other default.
func TestBackfillManifestSizedChunkRows(t *testing.T) {
	env := newTestEnv()
	env.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
	env.RegisterActivity(a)
	plan := activities.SamplePlan{URI: "s3://b/sample.csv", Rows: 25, ChunkRows: 20, Offsets: []int64{9, 200}, Columns: 2, KeyCol: 0, TimeCol: 1}
	env.OnActivity(a.BackfillPlan, mock.Anything, mock.Anything).Return(activities.Plan{Source: "test.apps", Sample: &plan, Watermark: far}, nil)
	c := &chunks{}
	env.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ChunkInput) (activities.ChunkResult, error) {
			return c.result(in), nil
		})
	var got activities.FinishInput
	env.OnActivity(a.BackfillFinish, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FinishInput) (activities.FinishResult, error) {
			got = in
			return activities.FinishResult{}, nil
		})
	env.ExecuteWorkflow(workflows.Backfill, workflows.BackfillInput{Job: "test", Sample: "s3://b/sample.csv",
		Options: activities.Options{Sink: "file://" + t.TempDir()}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var in workflows.BackfillInput
	if err := json.Unmarshal(got.Input, &in); err != nil || in.ChunkRows != 20 || len(c.seen) != 2 {
		t.Fatalf("manifest input %s (%v), %d chunks; want chunkRows 20, 2 chunks", got.Input, err, len(c.seen))
	}
}

// A sample backfill that sets no rows per chunk asks its plan for
// ChunksPerSlot chunks per slot, which the plan sizes (see
// activities.PlanInput); rows per chunk, when set, go to the plan alone. A
// backfill of a version before versionChunkSized (3) asks for neither: its
// plan's chunks keep activities.DefaultChunkRows. The summary records the
// rows per chunk the plan chose.
func TestBackfillSampleSizedChunks(t *testing.T) {
	for _, c := range []struct {
		in      workflows.BackfillInput
		version workflow.Version // 0: the latest
		want    activities.PlanInput
	}{
		{workflows.BackfillInput{Job: "test", Sample: "s3://b/sample.csv", Parallelism: 2}, 0, activities.PlanInput{Chunks: 2 * workflows.ChunksPerSlot}},
		{workflows.BackfillInput{Job: "test", Sample: "s3://b/sample.csv"}, 0, activities.PlanInput{Chunks: workflows.DefaultParallelism * workflows.ChunksPerSlot}},
		{workflows.BackfillInput{Job: "test", Sample: "s3://b/sample.csv", Parallelism: 2, ChunkRows: 5000}, 0, activities.PlanInput{ChunkRows: 5000}},
		{workflows.BackfillInput{Job: "test", Sample: "s3://b/sample.csv", Parallelism: 2}, 2, activities.PlanInput{}},
	} {
		env := newTestEnv()
		env.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
		env.RegisterActivity(a)
		if c.version != 0 {
			env.OnGetVersion("backfill", workflow.DefaultVersion, 3).Return(c.version) // 3: versionLatest
		}
		var got activities.PlanInput
		env.OnActivity(a.BackfillPlan, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.PlanInput) (activities.Plan, error) {
				got = in
				return activities.Plan{Source: "test.apps", Sample: &activities.SamplePlan{URI: in.Sample, ChunkRows: 10}, Watermark: far}, nil
			})
		env.ExecuteWorkflow(workflows.Backfill, c.in)
		if err := env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		if got.ChunkRows != c.want.ChunkRows || got.Chunks != c.want.Chunks {
			t.Errorf("%+v at version %d: plan asked for %d rows per chunk, %d chunks; want %d, %d", c.in, c.version, got.ChunkRows, got.Chunks, c.want.ChunkRows, c.want.Chunks)
		}
		// The summary says what the plan chose.
		var sum workflows.Summary
		if err := env.GetWorkflowResult(&sum); err != nil || sum.ChunkRows != 10 {
			t.Errorf("%+v: summary chunkRows %d (%v), want the plan's 10", c.in, sum.ChunkRows, err)
		}
	}
}

func TestBackfillBadInput(t *testing.T) {
	for name, in := range map[string]workflows.BackfillInput{
		"no job":      {From: t0, To: t0.Add(time.Hour)},
		"no range":    {Job: "test"},
		"empty range": {Job: "test", From: t0, To: t0},
		"both":        {Job: "test", From: t0, To: t0.Add(time.Hour), Sample: "x.csv"},
		"negative":    {Job: "test", From: t0, To: t0.Add(time.Hour), Parallelism: -1},
	} {
		env, _ := newEnv(t)
		env.ExecuteWorkflow(workflows.Backfill, in)
		var ae *temporal.ApplicationError
		if err := env.GetWorkflowError(); !errors.As(err, &ae) || !ae.NonRetryable() {
			t.Errorf("%s: want a non-retryable error, got %v", name, err)
		}
	}
}

// The JSON form the stock CLI sends is read as documented.
func TestBackfillInputJSON(t *testing.T) {
	var in workflows.BackfillInput
	doc := `{"job":"credit.limit","from":"2026-11-01T00:00:00Z","to":"2026-11-02T00:00:00Z","chunk":"15m","parallelism":2,"sink":"file:///tmp/out","knownAt":"trigger","heartbeatTimeout":5000000000}`
	if err := json.Unmarshal([]byte(doc), &in); err != nil {
		t.Fatal(err)
	}
	if in.Job != "credit.limit" || !in.From.Equal(t0) || time.Duration(in.Chunk) != 15*time.Minute || in.Sink != "file:///tmp/out" ||
		in.KnownAt != "trigger" || time.Duration(in.HeartbeatTimeout) != 5*time.Second || in.Parallelism != 2 {
		t.Fatalf("%+v", in)
	}
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
}

// A plan the workers refuse (an unknown job, a bad sink) fails the
// backfill before any chunk runs.
func TestBackfillPlanRefused(t *testing.T) {
	env := newTestEnv()
	env.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
	env.RegisterActivity(a)
	env.OnActivity(a.BackfillPlan, mock.Anything, mock.Anything).Return(activities.Plan{},
		temporal.NewNonRetryableApplicationError(`backfill: unknown job "nope"`, activities.ErrTypeUnknownJob, nil))
	env.ExecuteWorkflow(workflows.Backfill, rangeInput())
	var ae *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &ae) || ae.Type() != activities.ErrTypeUnknownJob {
		t.Fatalf("want the plan's UnknownJob, got %v", err)
	}
	env.AssertNotCalled(t, "BackfillChunk", mock.Anything, mock.Anything)
	v, err := env.QueryWorkflow(workflows.ProgressQuery)
	if err != nil {
		t.Fatal(err)
	}
	var p workflows.Progress
	if err := v.Get(&p); err != nil || p.State != "failed" {
		t.Fatalf("progress %+v %v", p, err)
	}
}

// A range input without a chunk, as the stock CLI may send it: a backfill
// started at versionChunkSized or later cuts a day at parallelism 2 into 8
// chunks of 3h; one that started before (its version marker says so) into
// 24 of an hour, as it did when it ran: the patch keeps its history.
func TestBackfillDefaultChunkByVersion(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version workflow.Version // 0: the latest
		chunks  int
		span    time.Duration
	}{
		{"latest", 0, 8, 3 * time.Hour},
		{"before versionChunkSized", 2, 24, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, c := newEnv(t)
			if tc.version != 0 {
				env.OnGetVersion("backfill", workflow.DefaultVersion, 3).Return(tc.version) // 3: versionLatest
			}
			env.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.ChunkInput) (activities.ChunkResult, error) {
					return c.result(in), nil
				})
			env.ExecuteWorkflow(workflows.Backfill, workflows.BackfillInput{Job: "test", From: t0, To: t0.Add(24 * time.Hour), Parallelism: 2})
			if err := env.GetWorkflowError(); err != nil {
				t.Fatal(err)
			}
			if len(c.seen) != tc.chunks {
				t.Fatalf("%d chunks, want %d", len(c.seen), tc.chunks)
			}
			for _, ch := range c.seen {
				if ch.To.Sub(ch.From) != tc.span {
					t.Fatalf("chunk %d spans %v, want %v", ch.Index, ch.To.Sub(ch.From), tc.span)
				}
			}
		})
	}
}
