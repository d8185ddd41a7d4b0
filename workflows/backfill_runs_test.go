package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/workflows"
)

// runEnv is a test environment whose plan answers plan, whose chunks are
// recorded, and whose file sink activities record their inputs in order.
type runEnv struct {
	*testsuite.TestWorkflowEnvironment
	chunks *chunks
	calls  []string // "clear", "plan", "finish:<status>"
	waited *activities.WaitInput
	finish activities.FinishInput
	// chunkErr, if set, is the error of chunk i, or nil.
	chunkErr func(i int) error
	// tweak, if set, changes each chunk's result.
	tweak func(*activities.ChunkResult)
}

func newRunEnv(plan activities.Plan) *runEnv {
	e := &runEnv{TestWorkflowEnvironment: newTestEnv(), chunks: &chunks{}}
	e.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
	e.RegisterActivity(a)
	e.OnActivity(a.BackfillPlan, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.PlanInput) (activities.Plan, error) {
			e.calls = append(e.calls, "plan")
			return plan, nil
		})
	e.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ChunkInput) (activities.ChunkResult, error) {
			if e.chunkErr != nil {
				if err := e.chunkErr(in.Index); err != nil {
					return activities.ChunkResult{}, err
				}
			}
			r := e.chunks.result(in)
			if e.tweak != nil {
				e.tweak(&r)
			}
			return r, nil
		})
	e.OnActivity(a.BackfillClear, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.ClearInput) (int, error) {
			e.calls = append(e.calls, "clear")
			return 3, nil
		})
	e.OnActivity(a.BackfillFinish, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FinishInput) (activities.FinishResult, error) {
			e.calls = append(e.calls, "finish:"+in.Status)
			e.finish = in
			return activities.FinishResult{Success: in.Status == "done"}, nil
		})
	e.OnActivity(a.BackfillWaitWatermark, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.WaitInput) (time.Time, error) {
			e.waited = &in
			return far, nil
		})
	return e
}

// watermarkError returns the workflow's error if it is a Watermark one.
func watermarkError(t *testing.T, env *runEnv) error {
	t.Helper()
	err := env.GetWorkflowError()
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != workflows.ErrTypeWatermark {
		t.Fatalf("workflow error %v, want one of type %s", err, workflows.ErrTypeWatermark)
	}
	return err
}

// A job of two trigger sources, one of which has no watermark: that source
// has stored nothing known, so the input is not covered. Refuse fails
// naming it, wait waits for both sources, truncate runs nothing and fails
// (before, the source without a watermark made the check pass: every
// chunk ran on data nothing said was stored).
func TestBackfillWatermarkEverySource(t *testing.T) {
	plan := activities.Plan{Source: "orders, repayments", Sources: []string{"orders", "repayments"},
		Watermarks: []activities.SourceWatermark{{Source: "orders", Watermark: far}, {Source: "repayments"}}}
	for _, policy := range []string{workflows.WatermarkRefuse, workflows.WatermarkTruncate, workflows.WatermarkWait} {
		t.Run(policy, func(t *testing.T) {
			env := newRunEnv(plan)
			in := rangeInput()
			in.Watermark = policy
			env.ExecuteWorkflow(workflows.Backfill, in)
			switch policy {
			case workflows.WatermarkWait:
				if err := env.GetWorkflowError(); err != nil {
					t.Fatal(err)
				}
				if env.waited == nil || strings.Join(env.waited.Sources, ",") != "orders,repayments" || !env.waited.Until.Equal(in.To.Add(-time.Nanosecond)) {
					t.Fatalf("waited for %+v, want both sources up to the range's end", env.waited)
				}
				if len(env.chunks.seen) != 11 {
					t.Fatalf("ran %d chunks after the wait, want 11", len(env.chunks.seen))
				}
			default:
				err := watermarkError(t, env)
				if !strings.Contains(err.Error(), "the watermark of repayments, which it has never reported") {
					t.Fatalf("%s: %v, want it to name repayments", policy, err)
				}
				if policy == workflows.WatermarkTruncate && !strings.Contains(err.Error(), "nothing ran") {
					t.Fatalf("truncate: %v, want \"nothing ran\"", err)
				}
				if len(env.chunks.seen) != 0 {
					t.Fatalf("%s ran %d chunks", policy, len(env.chunks.seen))
				}
			}
		})
	}
}

// Truncating at a source whose partitions are at the floor leaves no range:
// nothing runs, and a file sink must not be marked a success. The backfill
// fails saying so, and its manifest says failed (no _SUCCESS).
func TestBackfillTruncatedToNothingIsNoSuccess(t *testing.T) {
	env := newRunEnv(activities.Plan{Source: "test.apps", Sources: []string{"test.apps"}, Floor: true,
		Watermarks: []activities.SourceWatermark{{Source: "test.apps", Floor: true}}})
	in := rangeInput()
	in.Watermark, in.Sink = workflows.WatermarkTruncate, "file:///tmp/never"
	env.ExecuteWorkflow(workflows.Backfill, in)
	err := watermarkError(t, env)
	if !strings.Contains(err.Error(), "nothing ran") || !strings.Contains(err.Error(), "at the floor") {
		t.Fatalf("%v: want it to say that nothing ran and why", err)
	}
	if got := strings.Join(env.calls, " "); got != "clear plan finish:failed" {
		t.Fatalf("activities %q, want the folder cleared, the plan, a failed manifest", got)
	}
	if len(env.chunks.seen) != 0 {
		t.Fatalf("ran %d chunks", len(env.chunks.seen))
	}
}

// A backfill knows itself from an earlier one started with the same
// workflow ID: its chunks carry its first run's ID (which tags its records
// in the feature store), and a file sink's folder is emptied of the
// earlier one's objects and _SUCCESS before anything else, with a
// warning.
func TestBackfillRunIdentity(t *testing.T) {
	env := newRunEnv(activities.Plan{Source: "test.apps", Watermark: far})
	in := rangeInput()
	in.Sink = "file:///tmp/never"
	env.ExecuteWorkflow(workflows.Backfill, in)
	var sum workflows.Summary
	if err := env.GetWorkflowResult(&sum); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(env.calls, " "); got != "clear plan finish:done" {
		t.Fatalf("activities %q, want the folder cleared before the plan and the manifest at the end", got)
	}
	if len(sum.Warnings) != 1 || !strings.Contains(sum.Warnings[0], "removed 3 objects of an earlier backfill") {
		t.Fatalf("warnings %q, want the removed objects said", sum.Warnings)
	}
	run := ""
	for _, c := range env.chunks.seen {
		if c.Run == "" || (run != "" && c.Run != run) {
			t.Fatalf("chunk %d has run %q (another had %q): want the first run's ID in each", c.Index, c.Run, run)
		}
		run = c.Run
	}
	if len(env.chunks.seen) != 11 {
		t.Fatalf("%d chunks, want 11", len(env.chunks.seen))
	}
	if env.finish.Run != run {
		t.Fatalf("the manifest's run %q, want the chunks' %q", env.finish.Run, run)
	}
}

// A file sink's manifest names the sample table's version that the chunks
// read, and says why a backfill that is not done ended: a chunk's failure
// once (the SDK's text of an error repeats its cause's), or the cancel.
func TestManifestSaysWhy(t *testing.T) {
	sp := &activities.SamplePlan{URI: "s3://bucket/sample.csv", Rows: 25, ChunkRows: 10, Offsets: []int64{9, 100, 200},
		Columns: 2, TimeCol: 1, Size: 300, Version: `"etag-1"`, Latest: t0.Add(time.Hour)}
	plan := activities.Plan{Source: "test.apps", Sources: []string{"test.apps"}, Sample: sp, Watermark: far}
	in := workflows.BackfillInput{Job: "test", Sample: sp.URI, ChunkRows: 10, Parallelism: 1,
		Options: activities.Options{Sink: "file:///tmp/never", Format: "parquet"}}
	wantTable := activities.SampleTable{URI: sp.URI, Format: "csv", Rows: 25, Size: 300, Version: `"etag-1"`}

	done := newRunEnv(plan)
	done.ExecuteWorkflow(workflows.Backfill, in)
	if err := done.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if f := done.finish; f.Status != "done" || f.Sample == nil || *f.Sample != wantTable || f.Error != "" {
		t.Fatalf("done: finish %+v, sample %+v; want done, %+v, no error", f, f.Sample, wantTable)
	}

	failed := newRunEnv(plan)
	const why = "sample s3://bucket/sample.csv changed since the backfill planned it"
	failed.chunkErr = func(i int) error {
		if i == 1 {
			return temporal.NewNonRetryableApplicationError(why, activities.ErrTypeSampleChanged, nil)
		}
		return nil
	}
	failed.ExecuteWorkflow(workflows.Backfill, in)
	if err := failed.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), why) {
		t.Fatalf("failed: %v, want the chunk's error", err)
	}
	if f := failed.finish; f.Status != "failed" || f.Sample == nil || *f.Sample != wantTable || strings.Count(f.Error, why) != 1 {
		t.Fatalf("failed: finish status %q, sample %+v, error %q; want failed, the table, the chunk's error once", f.Status, f.Sample, f.Error)
	}

	canceled := newRunEnv(plan)
	canceled.chunkErr = func(int) error {
		canceled.CancelWorkflow()
		return nil
	}
	canceled.ExecuteWorkflow(workflows.Backfill, in)
	var ce *temporal.CanceledError
	if err := canceled.GetWorkflowError(); !errors.As(err, &ce) {
		t.Fatalf("canceled: %v, want a cancel", err)
	}
	if f := canceled.finish; f.Status != "canceled" || !strings.Contains(f.Error, "cancel") || f.Sample == nil {
		t.Fatalf("canceled: finish status %q, error %q, sample %+v; want canceled and why", f.Status, f.Error, f.Sample)
	}
}

// Sample rows whose key begins or ends with white space are summed over
// the chunks, and a done backfill warns of them, naming the first.
func TestBackfillWarnsOfSpacedKeys(t *testing.T) {
	sp := &activities.SamplePlan{URI: "/tmp/sample.csv", Rows: 25, ChunkRows: 10, Offsets: []int64{9, 100, 200}, Columns: 2, TimeCol: 1, Latest: t0.Add(time.Hour)}
	env := newRunEnv(activities.Plan{Source: "test.apps", Sources: []string{"test.apps"}, Sample: sp, Watermark: far})
	env.tweak = func(r *activities.ChunkResult) {
		if r.Index > 0 {
			r.SpacedKeys, r.SpacedKey = 2, fmt.Sprintf(`row %d: " app-1"`, r.Index*10+3)
		}
	}
	env.ExecuteWorkflow(workflows.Backfill, workflows.BackfillInput{Job: "test", Sample: sp.URI, ChunkRows: 10, Parallelism: 1})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var sum workflows.Summary
	if err := env.GetWorkflowResult(&sum); err != nil {
		t.Fatal(err)
	}
	if sum.SpacedKeys != 4 || sum.SpacedKey != `row 13: " app-1"` || len(sum.Warnings) != 1 ||
		!strings.Contains(sum.Warnings[0], `4 sample rows have a key that begins or ends with white space (row 13: " app-1")`) {
		t.Fatalf("summary: spaced keys %d (%s), warnings %q", sum.SpacedKeys, sum.SpacedKey, sum.Warnings)
	}
}
