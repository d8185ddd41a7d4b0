package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/activities"
)

// Names of the parity run.
const (
	// ParityWorkflow is the workflow type of Parity.
	ParityWorkflow = "Parity"
	// ParityMemo is the memo field holding the run's summary (counts per
	// cause and the objects listing every difference).
	ParityMemo = "parity"
)

// Defaults of ParityInput.
const (
	DefaultParityChunk       = time.Hour
	DefaultParityParallelism = 2
	DefaultParityExamples    = 10
)

// ParityInput asks for a parity run of a job over [From, To). It is JSON,
// so the stock CLI can start one:
//
//	temporal workflow start --task-queue tidemark --type Parity \
//	  --input '{"job":"credit-features","from":"2026-11-26T00:00:00Z","to":"2026-11-27T00:00:00Z"}'
type ParityInput struct {
	Job  string    `json:"job"`
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Chunk is the span of event time one activity compares. Default 1h.
	Chunk Duration `json:"chunk,omitzero"`
	// Parallelism: the most chunks compared at once. Default 2.
	Parallelism int `json:"parallelism,omitempty"`
	// Examples: differences per cause the result keeps (the objects list
	// all). Default 10.
	Examples int `json:"examples,omitempty"`
}

// ParitySummary is the result of Parity.
type ParitySummary struct {
	Run        string                         `json:"run"`
	Job        string                         `json:"job"`
	JobVersion string                         `json:"job_version"`
	From       time.Time                      `json:"from"`
	To         time.Time                      `json:"to"`
	Events     int                            `json:"events"`
	Triggers   int                            `json:"triggers"`
	Agree      int                            `json:"agree"`
	Counts     map[activities.ParityCause]int `json:"counts"`
	// Examples: at most Examples differences per cause.
	Examples []activities.ParityDiff `json:"examples,omitempty"`
	// Objects list every difference, one JSON object a line.
	Objects []string `json:"objects,omitempty"`
}

// Parity compares a job's live outputs over [From, To) with the job
// re-evaluated as the live runs could have seen it and as known now, chunk
// by chunk (package parity), and returns the counts per cause with
// examples; the memo's ParityMemo holds the same without the examples.
func Parity(ctx workflow.Context, in ParityInput) (ParitySummary, error) {
	if in.Job == "" || !in.From.Before(in.To) {
		return ParitySummary{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("parity: want a job and from < to, got %q [%v, %v)", in.Job, in.From, in.To), "BadInput", nil)
	}
	if in.Chunk <= 0 {
		in.Chunk = Duration(DefaultParityChunk)
	}
	if in.Parallelism <= 0 {
		in.Parallelism = DefaultParityParallelism
	}
	if in.Examples <= 0 {
		in.Examples = DefaultParityExamples
	}
	run := workflow.GetInfo(ctx).WorkflowExecution.ID
	sum := ParitySummary{Run: run, Job: in.Job, From: in.From, To: in.To, Counts: map[activities.ParityCause]int{}}
	var chunks []activities.ParityChunkInput
	for from := in.From; from.Before(in.To); from = from.Add(time.Duration(in.Chunk)) {
		to := from.Add(time.Duration(in.Chunk))
		if to.After(in.To) {
			to = in.To
		}
		chunks = append(chunks, activities.ParityChunkInput{Run: run, Job: in.Job, From: from, To: to, Chunk: len(chunks), Examples: in.Examples})
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 6 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 10,
		},
	})
	var a *activities.Parity
	results := make([]activities.ParityChunkResult, len(chunks))
	futures := make([]workflow.Future, len(chunks))
	for i := range chunks {
		if i >= in.Parallelism {
			if err := futures[i-in.Parallelism].Get(ctx, &results[i-in.Parallelism]); err != nil {
				return sum, err
			}
		}
		futures[i] = workflow.ExecuteActivity(actx, a.ParityChunk, chunks[i])
	}
	for i := max(0, len(chunks)-in.Parallelism); i < len(chunks); i++ {
		if err := futures[i].Get(ctx, &results[i]); err != nil {
			return sum, err
		}
	}
	shown := map[activities.ParityCause]int{}
	for _, r := range results {
		rep := r.Report
		sum.JobVersion = rep.JobVersion
		sum.Events += rep.Events
		sum.Triggers += rep.Triggers
		sum.Agree += rep.Agree
		for c, n := range rep.Counts {
			sum.Counts[c] += n
		}
		for _, d := range rep.Diffs {
			if shown[d.Cause]++; shown[d.Cause] <= in.Examples {
				sum.Examples = append(sum.Examples, d)
			}
		}
		if r.Object != "" {
			sum.Objects = append(sum.Objects, r.Object)
		}
	}
	memo := sum
	memo.Examples = nil
	if err := workflow.UpsertMemo(ctx, map[string]any{ParityMemo: memo}); err != nil {
		workflow.GetLogger(ctx).Warn("parity: memo", "error", err)
	}
	return sum, nil
}
