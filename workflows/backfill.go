package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter"
)

// Names under which the backfill is registered and found.
const (
	// TaskQueue is the default task queue of tidemark's workers.
	TaskQueue = "tidemark"
	// BackfillWorkflow is the workflow type of Backfill, as given to
	// `temporal workflow start --type`.
	BackfillWorkflow = "Backfill"
	// ProgressQuery is the query type answered with a Progress.
	ProgressQuery = "progress"
	// ProgressMemo is the memo field holding the last published Progress.
	ProgressMemo = "progress"
	// ParallelismSignal changes a running backfill's Parallelism (an int
	// of at least 1): `temporal workflow signal --workflow-id <id> --name parallelism --input 8`.
	ParallelismSignal = "parallelism"
)

// Search attributes published by Backfill. They must be registered in the
// namespace (devtemporal does; elsewhere `temporal operator
// search-attribute create --name TidemarkJob --type Keyword`, and so on).
var (
	// SearchJob is the backfilled job's name.
	SearchJob = temporal.NewSearchAttributeKeyKeyword("TidemarkJob")
	// SearchProgress is the percentage of chunks done, 0 to 100.
	SearchProgress = temporal.NewSearchAttributeKeyFloat64("TidemarkProgress")
	// SearchEvents is the number of events (sample rows) of finished chunks.
	SearchEvents = temporal.NewSearchAttributeKeyInt64("TidemarkEvents")
)

// Defaults of BackfillInput.
const (
	DefaultChunk           = time.Hour
	DefaultParallelism     = 4
	DefaultMaxChunksPerRun = 1000
	DefaultProgressEvery   = 2 * time.Second
	// DefaultHeartbeatTimeout lets a chunk's worker crash be noticed within
	// this time; its retry then resumes after the last heartbeat.
	DefaultHeartbeatTimeout = 30 * time.Second
)

// BackfillInput asks for a backfill: a job over a time range or over a
// sample table. It is JSON, so the stock CLI can start one:
//
//	temporal workflow start --task-queue tidemark --type Backfill \
//	  --input '{"job":"credit.limit","from":"2026-11-01T00:00:00Z","to":"2026-11-02T00:00:00Z","chunk":"1h"}'
type BackfillInput struct {
	// Job is the name of a job the workers know. Required.
	Job string `json:"job"`
	// From, To: the backfill replays the job's trigger events with
	// From <= event time < To (RFC 3339). Required unless Sample is set.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// Sample, instead of a range, is a sample table of (key, time) rows:
	// a path the workers can read, file:///path or s3://bucket/key (see
	// activities.SampleChunk for the format). Each row runs the job once,
	// as of the row's time.
	Sample string `json:"sample,omitempty"`
	// Chunk is the time span of a range chunk, e.g. "15m". Default 1h.
	Chunk Duration `json:"chunk,omitzero"`
	// ChunkRows is the number of sample rows per chunk. Default 10000.
	ChunkRows int `json:"chunkRows,omitempty"`
	// Parallelism is the most chunks run at once. Default 4.
	Parallelism int `json:"parallelism,omitempty"`
	// Sink, KnownAt, Params, SegmentEvents: how each chunk runs the job
	// (see activities.Options). Default: as live, to the job's outputs.
	activities.Options
	// MaxChunksPerRun: after starting this many chunks, the workflow waits
	// for them and continues as new (also when Temporal suggests it), so
	// its history stays small. Default 1000.
	MaxChunksPerRun int `json:"maxChunksPerRun,omitempty"`
	// ProgressEvery is the least time between two publications of the
	// progress as search attributes and memo. Default 2s.
	ProgressEvery Duration `json:"progressEvery,omitzero"`
	// HeartbeatTimeout of a chunk. Default 30s.
	HeartbeatTimeout Duration `json:"heartbeatTimeout,omitzero"`
	// State carries the progress across continue-as-new; leave it unset.
	State *BackfillState `json:"state,omitempty"`
}

// BackfillState is what a run hands to its continuation.
type BackfillState struct {
	Plan activities.Plan `json:"plan"`
	// Chunks is the number of chunks; chunks [0, Next) were started, and
	// Done of them finished. A run continues as new only when every chunk
	// it started is done.
	Chunks  int       `json:"chunks"`
	Next    int       `json:"next"`
	Done    int       `json:"done"`
	Summary Summary   `json:"summary"`
	Started time.Time `json:"started"`
	Runs    int       `json:"runs"`
}

// Summary is the result of a backfill.
type Summary struct {
	Job    string `json:"job"`
	Chunks int    `json:"chunks"`
	// Events: trigger-source events replayed, or sample rows read.
	Events int `json:"events"`
	// Outputs: records written (OK runs).
	Outputs int `json:"outputs"`
	// Errors: runs that failed or were stale, plus sample rows whose key
	// had no state at the row's time (Failed + Stale + Missing).
	Errors  int `json:"errors"`
	Failed  int `json:"failed"`
	Stale   int `json:"stale"`
	Missing int `json:"missing"`
	Skipped int `json:"skipped"`
	// FirstErrors: a few error messages.
	FirstErrors []string `json:"firstErrors,omitempty"`
	// Resumed: chunks that resumed after a heartbeat of a failed attempt.
	Resumed int `json:"resumed"`
	// Duration from the start of the first run to the end.
	Duration Duration `json:"duration"`
	// Runs: the number of workflow runs (1 + continue-as-new count).
	Runs int `json:"runs"`
}

func (s *Summary) add(r *activities.ChunkResult) {
	s.Events += r.Events
	s.Outputs += r.Outputs
	s.Failed += r.Failed
	s.Stale += r.Stale
	s.Missing += r.Missing
	s.Skipped += r.Skipped
	s.Errors = s.Failed + s.Stale + s.Missing
	if r.Resumed {
		s.Resumed++
	}
	for _, e := range r.Errors {
		if len(s.FirstErrors) < 10 {
			s.FirstErrors = append(s.FirstErrors, fmt.Sprintf("chunk %d: %s", r.Index, e))
		}
	}
}

// Progress is the answer of the progress query.
type Progress struct {
	Job string `json:"job"`
	// State: "planning", "running", "canceling", "done", "failed", "canceled".
	State string `json:"state"`
	// Chunks in all; Done of them finished, Running now.
	Chunks  int `json:"chunks"`
	Done    int `json:"done"`
	Running int `json:"running"`
	// Percent of chunks done.
	Percent float64 `json:"percent"`
	// Rows of the sample table (0 for a range): the events to expect.
	Rows int `json:"rows,omitempty"`
	// Counts of finished chunks.
	Events  int `json:"events"`
	Outputs int `json:"outputs"`
	Errors  int `json:"errors"`
	// Started is the start of the first run; Elapsed the time since.
	Started time.Time `json:"started"`
	Elapsed Duration  `json:"elapsed"`
	Runs    int       `json:"runs"`
}

// Validate reports what is wrong with in; it does not check what only
// the workers know (the job's name, the sink), which the plan activity does.
func (in *BackfillInput) Validate() error {
	switch {
	case in.Job == "":
		return errors.New("backfill: no job")
	case in.Sample != "" && (!in.From.IsZero() || !in.To.IsZero()):
		return errors.New("backfill: give either a range (from, to) or a sample table, not both")
	case in.Sample == "" && (in.From.IsZero() || in.To.IsZero()):
		return errors.New("backfill: give a range (from, to) or a sample table")
	case in.Sample == "" && !in.From.Before(in.To):
		return fmt.Errorf("backfill: range [%v, %v) is empty", in.From, in.To)
	case in.Sample == "" && in.To.Sub(in.From) >= 100*365*24*time.Hour:
		return fmt.Errorf("backfill: range [%v, %v) is longer than 100 years", in.From, in.To)
	case in.Chunk < 0, in.ChunkRows < 0, in.Parallelism < 0, in.MaxChunksPerRun < 0, in.ProgressEvery < 0, in.HeartbeatTimeout < 0:
		return errors.New("backfill: chunk, chunkRows, parallelism, maxChunksPerRun, progressEvery and heartbeatTimeout must not be negative")
	}
	return nil
}

func (in *BackfillInput) setDefaults() {
	if in.Chunk == 0 {
		in.Chunk = Duration(DefaultChunk)
	}
	if in.ChunkRows == 0 {
		in.ChunkRows = activities.DefaultChunkRows
	}
	if in.Parallelism == 0 {
		in.Parallelism = DefaultParallelism
	}
	if in.MaxChunksPerRun == 0 {
		in.MaxChunksPerRun = DefaultMaxChunksPerRun
	}
	if in.ProgressEvery == 0 {
		in.ProgressEvery = Duration(DefaultProgressEvery)
	}
	if in.HeartbeatTimeout == 0 {
		in.HeartbeatTimeout = Duration(DefaultHeartbeatTimeout)
	}
	if in.SegmentEvents == 0 {
		in.SegmentEvents = activities.DefaultSegmentEvents
	}
}

// rangeChunks cuts a validated range backfill as replays are cut.
func rangeChunks(in BackfillInput) eventcenter.Chunks {
	return eventcenter.Chunks{From: in.From, To: in.To, Size: time.Duration(in.Chunk)}
}

// Backfill runs a job over a time range or a sample table in chunks (see
// the package documentation). It returns the Summary; a cancelled backfill
// ends cancelled with the Summary so far as details, a failed chunk (after
// its retries) fails it with the Summary so far as details.
func Backfill(ctx workflow.Context, in BackfillInput) (Summary, error) {
	if err := in.Validate(); err != nil {
		return Summary{}, temporal.NewNonRetryableApplicationError(err.Error(), "BadInput", nil)
	}
	in.setDefaults()
	logger := workflow.GetLogger(ctx)
	var a *activities.Backfill

	st := in.State
	if st == nil {
		st = &BackfillState{Started: workflow.Now(ctx), Summary: Summary{Job: in.Job}}
	}
	st.Runs++
	st.Summary.Runs = st.Runs
	running := 0
	state := "planning"
	progress := func() Progress {
		p := Progress{
			Job: in.Job, State: state, Chunks: st.Chunks, Done: st.Done, Running: running,
			Events: st.Summary.Events, Outputs: st.Summary.Outputs, Errors: st.Summary.Errors,
			Started: st.Started, Elapsed: Duration(workflow.Now(ctx).Sub(st.Started)), Runs: st.Runs,
		}
		if st.Plan.Sample != nil {
			p.Rows = st.Plan.Sample.Rows
		}
		if st.Chunks > 0 {
			p.Percent = float64(p.Done) * 100 / float64(st.Chunks)
		}
		return p
	}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Progress, error) { return progress(), nil }); err != nil {
		return Summary{}, err
	}
	var published time.Time
	publish := func(force bool) {
		now := workflow.Now(ctx)
		if !force && now.Sub(published) < time.Duration(in.ProgressEvery) {
			return
		}
		published = now
		p := progress()
		if err := workflow.UpsertTypedSearchAttributes(ctx,
			SearchJob.ValueSet(in.Job), SearchProgress.ValueSet(p.Percent), SearchEvents.ValueSet(int64(p.Events))); err != nil {
			logger.Warn("backfill: progress search attributes", "error", err)
		}
		if err := workflow.UpsertMemo(ctx, map[string]any{ProgressMemo: p}); err != nil {
			logger.Warn("backfill: progress memo", "error", err)
		}
	}

	opts := in.Options
	if st.Chunks == 0 {
		publish(true)
		planCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: time.Hour,
			HeartbeatTimeout:    time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
		})
		plan := activities.Plan{}
		err := workflow.ExecuteActivity(planCtx, a.BackfillPlan, activities.PlanInput{
			Job: in.Job, Options: opts, Sample: in.Sample, ChunkRows: in.ChunkRows,
		}).Get(ctx, &plan)
		if err != nil {
			state = "failed"
			publish(true)
			return st.Summary, err
		}
		st.Plan = plan
		if plan.Sample != nil {
			st.Chunks = len(plan.Sample.Offsets)
		} else {
			st.Chunks = rangeChunks(in).Len()
		}
		st.Summary.Chunks = st.Chunks
		if st.Chunks == 0 { // an empty sample table
			state = "done"
			publish(true)
			return st.Summary, nil
		}
	}

	state = "running"
	chunkCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 24 * time.Hour,
		HeartbeatTimeout:    time.Duration(in.HeartbeatTimeout),
		WaitForCancellation: true,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
			MaximumAttempts:    20,
		},
	})
	backfillID := workflow.GetInfo(ctx).WorkflowExecution.ID
	chunkInput := func(i int) activities.ChunkInput {
		c := activities.ChunkInput{Backfill: backfillID, Job: in.Job, Index: i, Options: opts}
		if st.Plan.Sample != nil {
			c.Sample = st.Plan.Sample.Chunk(i)
		} else {
			r := rangeChunks(in).At(i)
			c.From, c.To = r.From, r.To
		}
		return c
	}

	sel := workflow.NewSelector(ctx)
	setPar := workflow.GetSignalChannel(ctx, ParallelismSignal)
	parallelism := func(c workflow.ReceiveChannel) {
		var n int
		c.Receive(ctx, &n)
		if n < 1 {
			logger.Warn("backfill: ignoring parallelism below 1", "parallelism", n)
			return
		}
		in.Parallelism = n
	}
	sel.AddReceive(setPar, func(c workflow.ReceiveChannel, _ bool) { parallelism(c) })
	var failure error
	started := 0
	publish(true)
	for {
		for running < in.Parallelism && st.Next < st.Chunks && failure == nil && ctx.Err() == nil &&
			started < in.MaxChunksPerRun && !workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			ci := chunkInput(st.Next)
			st.Next++
			running++
			started++
			sel.AddFuture(workflow.ExecuteActivity(chunkCtx, a.BackfillChunk, ci), func(f workflow.Future) {
				running--
				var r activities.ChunkResult
				if err := f.Get(ctx, &r); err != nil {
					if failure == nil && !temporal.IsCanceledError(err) {
						failure = fmt.Errorf("backfill: chunk %d: %w", ci.Index, err)
					}
					return
				}
				st.Done++
				st.Summary.add(&r)
			})
		}
		if running == 0 {
			break
		}
		sel.Select(ctx)
		if ctx.Err() != nil {
			state = "canceling"
		}
		publish(false)
	}
	st.Summary.Duration = Duration(workflow.Now(ctx).Sub(st.Started))

	switch {
	case ctx.Err() != nil:
		state = "canceled"
		publish(true)
		return st.Summary, temporal.NewCanceledError(st.Summary)
	case failure != nil:
		state = "failed"
		publish(true)
		return st.Summary, temporal.NewNonRetryableApplicationError(failure.Error(), "ChunkFailed", failure, st.Summary)
	case st.Next < st.Chunks:
		for setPar.Len() > 0 { // carry pending signals into the next run
			parallelism(setPar)
		}
		publish(true)
		next := in
		next.State = st
		logger.Info("backfill: continuing as new", "done", st.Next, "chunks", st.Chunks)
		return Summary{}, workflow.NewContinueAsNewError(ctx, BackfillWorkflow, next)
	}
	state = "done"
	publish(true)
	return st.Summary, nil
}

// Duration is a time.Duration that JSON spells as Go does ("1h30m"); it
// also reads a number of nanoseconds.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("duration %s: want a string like \"1h\" or nanoseconds", b)
	}
	*d = Duration(n)
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }
