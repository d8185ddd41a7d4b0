package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter"
)

// Names of the late-data impact run.
const (
	// LateImpactWorkflow is the workflow type of LateImpact.
	LateImpactWorkflow = "LateImpact"
)

// Defaults of LateImpactInput.
const (
	DefaultLateImpactHorizon   = 24 * time.Hour
	DefaultLateImpactMaxReruns = 1000
)

// LateImpactInput asks for the impact of one late event: the live outputs
// whose runs would have read it, re-run for the jobs that opted in. Ingest
// starts one per late event it stores (ingest.Config.OnLate), with
// activities.LateImpactID as the workflow ID; the stock CLI can start one too:
//
//	temporal workflow start --task-queue tidemark --type LateImpact --input \
//	  '{"event":{"Source":"mysql.loan.orders","Key":"o5","Time":"2026-11-26T08:01:00Z","Pos":{"Log":0,"Offset":99}}}'
type LateImpactInput struct {
	Event eventcenter.ID `json:"event"`
	// Watermark is the source's watermark the event was behind when
	// stored (ingest.Late), for the record.
	Watermark time.Time `json:"watermark,omitzero"`
	// Horizon: an event stored more than this after its time is not looked
	// at (the run fails, saying so): a backfill's work. Default 24h.
	Horizon Duration `json:"horizon,omitzero"`
	// MaxReruns: a job with more affected records is not re-run. Default
	// 1000.
	MaxReruns int `json:"max_reruns,omitempty"`
}

// LateImpactSummary is the result of LateImpact.
type LateImpactSummary struct {
	Event eventcenter.ID `json:"event"`
	// Jobs: what the event changes of each job reading its source.
	Jobs []activities.LateImpactJob `json:"jobs"`
	// Reruns: the re-runs' counts, for the jobs re-run.
	Reruns []activities.LateImpactRerunResult `json:"reruns,omitempty"`
}

// LateImpact finds the live outputs a late event changes (one activity for
// every job reading its source) and re-runs exactly those triggers for the
// jobs that opted in (one activity per job), publishing records that
// supersede the live ones.
func LateImpact(ctx workflow.Context, in LateImpactInput) (LateImpactSummary, error) {
	if in.Event.Source == "" || in.Event.Time.IsZero() {
		return LateImpactSummary{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("late impact: want an event, got %+v", in.Event), "BadInput", nil)
	}
	if in.Horizon <= 0 {
		in.Horizon = Duration(DefaultLateImpactHorizon)
	}
	if in.MaxReruns <= 0 {
		in.MaxReruns = DefaultLateImpactMaxReruns
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 10,
		},
	})
	var a *activities.Parity
	sum := LateImpactSummary{Event: in.Event}
	find := activities.LateImpactFindInput{Event: in.Event, Horizon: time.Duration(in.Horizon), MaxReruns: in.MaxReruns}
	if err := workflow.ExecuteActivity(actx, a.LateImpactFind, find).Get(ctx, &sum.Jobs); err != nil {
		return sum, err
	}
	run := workflow.GetInfo(ctx).WorkflowExecution.ID
	for _, ji := range sum.Jobs {
		if !ji.Rerun {
			continue
		}
		var res activities.LateImpactRerunResult
		rerun := activities.LateImpactRerunInput{Run: run, Job: ji.Job, Affected: ji.Affected}
		if err := workflow.ExecuteActivity(actx, a.LateImpactRerun, rerun).Get(ctx, &res); err != nil {
			return sum, err
		}
		sum.Reruns = append(sum.Reruns, res)
	}
	return sum, nil
}
