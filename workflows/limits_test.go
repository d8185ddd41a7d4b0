package workflows_test

import (
	"context"
	"errors"
	"github.com/tidemark-dev/tidemark/eventcenter"
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

// The limits are refused with errors that say what to change: by the
// starter (WithDefaults) and by the workflow for inputs started elsewhere.
func TestBackfillLimits(t *testing.T) {
	day := t0.Add(24 * time.Hour)
	for name, tc := range map[string]struct {
		in   workflows.BackfillInput
		want string
	}{
		"parallelism":      {workflows.BackfillInput{Job: "test", From: t0, To: day, Parallelism: 2001}, "parallelism 2001 is above the limit of 1000"},
		"1ns chunks":       {workflows.BackfillInput{Job: "test", From: t0, To: day, Chunk: 1}, "makes 86400000000000 chunks, more than 1000000"},
		"bad watermark":    {workflows.BackfillInput{Job: "test", From: t0, To: day, Watermark: "hope"}, `watermark "hope"`},
		"truncate sample":  {workflows.BackfillInput{Job: "test", Sample: "x.csv", Watermark: "truncate"}, "a sample table takes"},
		"negative segment": {workflows.BackfillInput{Job: "test", From: t0, To: day, Options: activities.Options{SegmentEvents: -1}}, "segmentEvents -1: must not be negative"},
		"negative rows":    {workflows.BackfillInput{Job: "test", Sample: "x.csv", ChunkRows: -5, Parallelism: -1}, "chunkRows -5, parallelism -1: must not be negative"},
	} {
		if _, err := tc.in.WithDefaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: starter: %v, want %q", name, err, tc.want)
		}
		env, _ := newEnv(t)
		env.ExecuteWorkflow(workflows.Backfill, tc.in)
		var ae *temporal.ApplicationError
		if err := env.GetWorkflowError(); !errors.As(err, &ae) || ae.Type() != workflows.ErrTypeBadInput || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: workflow: %v, want BadInput %q", name, err, tc.want)
		}
	}
}

// A chunk size so large that the old count overflowed to -1 (and the
// backfill ended "done" having run nothing) makes one chunk.
func TestRangeChunksHugeChunk(t *testing.T) {
	c := eventcenter.Chunks{From: t0, To: t0.Add(time.Hour), Size: time.Duration(1<<63 - 1)}
	if n := c.Len(); n != 1 {
		t.Fatalf("%d chunks, want 1", n)
	}
	if r := c.At(0); !r.From.Equal(t0) || !r.To.Equal(t0.Add(time.Hour)) {
		t.Fatalf("[%v, %v)", r.From, r.To)
	}
}

// WithDefaults writes every default into the input, so the running
// backfill does not depend on the worker's defaults.
func TestWithDefaults(t *testing.T) {
	in, err := workflows.BackfillInput{Job: "test", From: t0, To: t0.Add(time.Hour)}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if in.Parallelism != workflows.DefaultParallelism || time.Duration(in.Chunk) != workflows.DefaultChunk || in.SegmentEvents != activities.DefaultRangeSegmentEvents ||
		in.Watermark != workflows.WatermarkRefuse || in.Write != activities.WriteFill || time.Duration(in.StallTimeout) != workflows.DefaultStallTimeout ||
		time.Duration(in.WatermarkTimeout) != workflows.DefaultWatermarkTimeout || in.MaxChunksPerRun == 0 || in.ProgressEvery == 0 || in.HeartbeatTimeout == 0 {
		t.Fatalf("%+v", in)
	}
	// The segment by sink and input: a range to a sink that writes as it
	// goes commits less often; file sinks and sample tables hold a
	// segment in memory.
	for _, tc := range []struct {
		sink, sample string
		want         int
	}{
		{"", "", activities.DefaultRangeSegmentEvents},
		{"featurestore:x.out", "", activities.DefaultRangeSegmentEvents},
		{"file:///tmp/out", "", activities.DefaultSegmentEvents},
		{"s3://b/p", "", activities.DefaultSegmentEvents},
		{"", "s3://b/t.csv", activities.DefaultSegmentEvents},
		{"featurestore:x.out", "s3://b/t.csv", activities.DefaultSegmentEvents},
		{"file:///tmp/out", "s3://b/t.csv", activities.DefaultSegmentEvents},
	} {
		in := workflows.BackfillInput{Job: "test", Sample: tc.sample}
		if tc.sample == "" {
			in.From, in.To = t0, t0.Add(time.Hour)
		}
		in.Sink = tc.sink
		if in, err = in.WithDefaults(); err != nil || in.SegmentEvents != tc.want {
			t.Errorf("sink %q, sample %q: segment %d, want %d (%v)", tc.sink, tc.sample, in.SegmentEvents, tc.want, err)
		}
	}
	// Except a sample table's rows per chunk: the plan sizes them from the
	// table (TestBackfillSampleSizedChunks); set, they are kept.
	for _, rows := range []int{0, 5000} {
		in, err := workflows.BackfillInput{Job: "test", Sample: "s3://b/t.csv", ChunkRows: rows}.WithDefaults()
		if err != nil {
			t.Fatal(err)
		}
		if in.ChunkRows != rows || in.Parallelism != workflows.DefaultParallelism {
			t.Fatalf("sample table with %d rows per chunk: %+v", rows, in)
		}
	}
}

// A range backfill that sets no chunk gets its range over ChunksPerSlot ×
// Parallelism, in whole hours from 1h to 24h; one that sets a chunk keeps
// it.
func TestDefaultChunk(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		span        time.Duration
		parallelism int
		chunk       workflows.Duration
		want        time.Duration
	}{
		{time.Hour, 0, 0, time.Hour},                                     // shorter than an hour a slot: hours
		{day, 0, 0, time.Hour},                                           // a day at the default 8: 24 chunks, as before
		{day, 2, 0, 3 * time.Hour},                                       // 8 chunks for 2 slots
		{day, 5, 0, 2 * time.Hour},                                       // 1.2h rounded up
		{10 * day, 8, 0, 8 * time.Hour},                                  // 7.5h rounded up
		{90 * day, 8, 0, 24 * time.Hour},                                 // at most a day
		{day, 2, workflows.Duration(15 * time.Minute), 15 * time.Minute}, // set: kept
		{100*365*day - time.Hour, 1, 0, 24 * time.Hour},                  // the longest range: in bounds
	} {
		in, err := workflows.BackfillInput{Job: "test", From: t0, To: t0.Add(tc.span), Parallelism: tc.parallelism, Chunk: tc.chunk}.WithDefaults()
		if err != nil {
			t.Fatalf("%v at parallelism %d: %v", tc.span, tc.parallelism, err)
		}
		if time.Duration(in.Chunk) != tc.want {
			t.Errorf("%v at parallelism %d (chunk %v): chunk %v, want %v", tc.span, tc.parallelism, time.Duration(tc.chunk), time.Duration(in.Chunk), tc.want)
		}
	}
}

// The parallelism update rejects values out of range with an error the
// caller gets, and applies the others at once.
func TestBackfillParallelismUpdate(t *testing.T) {
	env, c := newEnv(t)
	env.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).After(10 * time.Minute).Return(
		func(_ context.Context, in activities.ChunkInput) (activities.ChunkResult, error) {
			return c.result(in), nil
		})
	type answer struct {
		rejected, err error
		old           int
	}
	answers := map[int]*answer{}
	update := func(n int) {
		ans := &answer{}
		answers[n] = ans
		env.UpdateWorkflow(workflows.ParallelismUpdate, "", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { ans.rejected = err },
			OnAccept:   func() {},
			OnComplete: func(v any, err error) { ans.err = err; ans.old, _ = v.(int) },
		}, n)
	}
	var during workflows.Progress
	env.RegisterDelayedCallback(func() { update(0); update(5000); update(6) }, 5*time.Minute)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.ProgressQuery)
		if err == nil {
			err = v.Get(&during)
		}
		if err != nil {
			t.Error(err)
		}
	}, 6*time.Minute)
	env.ExecuteWorkflow(workflows.Backfill, rangeInput())
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 5000} {
		if a := answers[n]; a.rejected == nil || !strings.Contains(a.rejected.Error(), "want 1 to 1000") {
			t.Errorf("update %d: rejected with %v", n, a.rejected)
		}
	}
	if a := answers[6]; a.rejected != nil || a.err != nil || a.old != 3 {
		t.Errorf("update 6: %+v, want accepted, answering 3", a)
	}
	if during.Running != 6 || during.Parallelism != 6 {
		t.Errorf("after the update: %+v, want 6 running", during)
	}
}

// The watermark policies: refuse (the default) fails before any chunk,
// truncate runs the range up to the watermark and says so, wait waits for
// it, and a range that held no event is warned about.
func TestBackfillWatermark(t *testing.T) {
	in := rangeInput() // 10h30m
	wm := t0.Add(5*time.Hour + 30*time.Minute)
	plan := activities.Plan{Source: "test.apps", Watermark: wm}
	setup := func() (*testsuite.TestWorkflowEnvironment, *chunks) {
		env := newTestEnv()
		env.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
		env.RegisterActivity(a)
		env.OnActivity(a.BackfillPlan, mock.Anything, mock.Anything).Return(plan, nil)
		c := &chunks{}
		env.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.ChunkInput) (activities.ChunkResult, error) {
				return c.result(in), nil
			})
		return env, c
	}

	env, c := setup()
	env.ExecuteWorkflow(workflows.Backfill, in)
	var ae *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &ae) || ae.Type() != workflows.ErrTypeWatermark || !strings.Contains(err.Error(), "after the watermark of test.apps (2026-11-01T05:30:00Z)") {
		t.Fatalf("refuse: %v", err)
	}
	if len(c.seen) != 0 {
		t.Fatalf("refuse ran %d chunks", len(c.seen))
	}

	env, c = setup()
	in.Watermark = workflows.WatermarkTruncate
	env.ExecuteWorkflow(workflows.Backfill, in)
	var sum workflows.Summary
	if err := env.GetWorkflowResult(&sum); err != nil {
		t.Fatal(err)
	}
	if !sum.Truncated || !sum.To.Equal(wm.Add(time.Nanosecond)) || sum.Chunks != 6 || len(c.seen) != 6 || len(sum.Warnings) != 1 || !strings.Contains(sum.Warnings[0], "ran [") {
		t.Fatalf("truncate: %+v after %d chunks", sum, len(c.seen))
	}

	env, c = setup()
	in.Watermark = workflows.WatermarkWait
	env.OnActivity(a.BackfillWaitWatermark, mock.Anything, activities.WaitInput{Source: "test.apps", Until: in.To.Add(-time.Nanosecond)}).Return(in.To, nil)
	env.ExecuteWorkflow(workflows.Backfill, in)
	sum = workflows.Summary{}
	if err := env.GetWorkflowResult(&sum); err != nil || sum.Chunks != 11 || len(c.seen) != 11 || sum.Truncated {
		t.Fatalf("wait: %+v %v", sum, err)
	}

	// A source without a watermark has stored nothing known: a range in
	// the past is refused (see TestBackfillWatermarkEverySource); one
	// reaching into the future is refused by the clock.
	plan.Watermark = time.Time{}
	env, c = setup()
	env.ExecuteWorkflow(workflows.Backfill, rangeInput())
	if err := env.GetWorkflowError(); !errors.As(err, &ae) || ae.Type() != workflows.ErrTypeWatermark || !strings.Contains(err.Error(), "which it has never reported") || len(c.seen) != 0 {
		t.Fatalf("no watermark: %v after %d chunks", err, len(c.seen))
	}
	plan.Watermark = far
	env, c = setup()
	future := rangeInput()
	future.To = env.Now().Add(time.Hour)
	future.From = future.To.Add(-3 * time.Hour)
	env.ExecuteWorkflow(workflows.Backfill, future)
	if err := env.GetWorkflowError(); !errors.As(err, &ae) || ae.Type() != workflows.ErrTypeWatermark || !strings.Contains(err.Error(), ", after now (") || len(c.seen) != 0 {
		t.Fatalf("a range into the future: %v", err)
	}

	// A source whose partitions are registered at the floor has stored
	// nothing up to any time: it is behind, not unwatched (a zero watermark
	// of RegisterPartitions), so a past range is refused, not run.
	plan.Watermark, plan.Floor = time.Time{}, true
	env, c = setup()
	env.ExecuteWorkflow(workflows.Backfill, rangeInput())
	if err := env.GetWorkflowError(); !errors.As(err, &ae) || ae.Type() != workflows.ErrTypeWatermark || !strings.Contains(err.Error(), "at the floor") || len(c.seen) != 0 {
		t.Fatalf("a source at the floor: %v after %d chunks", err, len(c.seen))
	}
	plan.Floor = false

	// A range of no events: done, with a warning.
	env = newTestEnv()
	env.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
	env.RegisterActivity(a)
	env.OnActivity(a.BackfillPlan, mock.Anything, mock.Anything).Return(activities.Plan{Source: "test.apps", Watermark: far}, nil)
	env.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).Return(activities.ChunkResult{}, nil)
	env.ExecuteWorkflow(workflows.Backfill, rangeInput())
	sum = workflows.Summary{}
	if err := env.GetWorkflowResult(&sum); err != nil || len(sum.Warnings) != 1 || !strings.Contains(sum.Warnings[0], "held 0 events of test.apps") {
		t.Fatalf("empty range: %+v %v", sum, err)
	}

	// A sample table none of whose rows had state: done, with a warning,
	// also when a row's read failed; one row with state is enough to say
	// nothing.
	for _, withState := range []int{0, 1} {
		env = newTestEnv()
		env.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
		env.RegisterActivity(a)
		env.OnActivity(a.BackfillPlan, mock.Anything, mock.Anything).Return(
			activities.Plan{Source: "test.apps", Watermark: far, Sample: &activities.SamplePlan{URI: "s.csv", Rows: 5, ChunkRows: 5, Offsets: []int64{10}}}, nil)
		env.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).Return(activities.ChunkResult{Events: 5, Missing: 4 - withState, Failed: 1, WithState: withState, Outputs: withState}, nil)
		env.ExecuteWorkflow(workflows.Backfill, workflows.BackfillInput{Job: "test", Sample: "s.csv"})
		sum = workflows.Summary{}
		if err := env.GetWorkflowResult(&sum); err != nil {
			t.Fatal(err)
		}
		if warned := len(sum.Warnings) == 1 && strings.Contains(sum.Warnings[0], "none of the 5 sample rows had state"); warned != (withState == 0) || len(sum.Warnings) > 1 {
			t.Fatalf("%d of 5 sample rows with state: warnings %q", withState, sum.Warnings)
		}
	}
}

// A file sink ends with the finish activity (manifest, _SUCCESS) with the
// backfill's status, also when the backfill fails.
func TestBackfillFinishesFileSinks(t *testing.T) {
	for _, fail := range []bool{false, true} {
		env, c := newEnv(t)
		var got activities.FinishInput
		env.OnActivity(a.BackfillFinish, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.FinishInput) (activities.FinishResult, error) {
				got = in
				return activities.FinishResult{}, nil
			})
		env.OnActivity(a.BackfillChunk, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.ChunkInput) (activities.ChunkResult, error) {
				if fail && in.Index == 2 {
					return activities.ChunkResult{}, temporal.NewNonRetryableApplicationError("disk on fire", "Boom", nil)
				}
				return c.result(in), nil
			})
		in := rangeInput()
		in.Sink = "file:///tmp/out"
		env.ExecuteWorkflow(workflows.Backfill, in)
		want := map[bool]string{false: "done", true: "failed"}[fail]
		if got.Status != want || got.Job != "test" || !strings.Contains(string(got.Input), `"sink":"file:///tmp/out"`) || !strings.Contains(string(got.Summary), `"events":`) {
			t.Fatalf("finish input %+v, want status %s", got, want)
		}
		if err := env.GetWorkflowError(); (err != nil) != fail {
			t.Fatalf("fail %v: %v", fail, err)
		}
	}
}

// A sample table whose rows reach past the watermark is refused with what
// a table can do: wait, or leave out those rows (a table is not truncated).
func TestBackfillSampleWatermarkHint(t *testing.T) {
	wm := t0.Add(5 * time.Hour)
	env := newTestEnv()
	env.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
	env.RegisterActivity(a)
	env.OnActivity(a.BackfillPlan, mock.Anything, mock.Anything).Return(
		activities.Plan{Source: "test.apps", Watermark: wm, Sample: &activities.SamplePlan{URI: "s.csv", Rows: 5, ChunkRows: 5, Offsets: []int64{10}, Latest: wm.Add(time.Hour)}}, nil)
	env.ExecuteWorkflow(workflows.Backfill, workflows.BackfillInput{Job: "test", Sample: "s.csv"})
	var ae *temporal.ApplicationError
	err := env.GetWorkflowError()
	if !errors.As(err, &ae) || ae.Type() != workflows.ErrTypeWatermark || !strings.Contains(err.Error(), "without the table's rows after") || strings.Contains(err.Error(), `"truncate"`) {
		t.Fatalf("%v, want a watermark refusal that offers wait or fewer rows, not truncate", err)
	}
}

// A manifest keeps at most a few KiB of a backfill's error, cut between
// characters.
func TestCut(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 8, "short"},
		{"exactly8", 8, "exactly8"},
		{"longer than n", 6, "longer…"},
		{"ab€cd", 3, "ab…"}, // € is 3 bytes: not cut inside it
		{"ab€cd", 5, "ab€…"},
		{"€", 1, "…"},
		{"anything", 0, "…"},
		{"a\xffbcdef", 4, "abc…"}, // bytes that are not UTF-8 dropped from what is kept
		{"a\xffb", 3, "a\xffb"},   // kept whole when it fits
	} {
		if got := workflows.Cut(c.s, c.n); got != c.want {
			t.Errorf("cut(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}
