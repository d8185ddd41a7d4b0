package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/activities"
)

// Names of the tiering workflow.
const (
	// TierWorkflow is the workflow type of Tier.
	TierWorkflow = "Tier"
	// TierSchedule is the ID of the Temporal schedule that starts Tier
	// daily (`tidemark tier schedule`).
	TierSchedule = "tidemark-tier"
)

// TierInput asks for one tiering run.
type TierInput struct {
	// Sources to tier; empty: every source the cold tier knows.
	Sources []string `json:",omitempty"`
}

// TierSummary is what a tiering run moved.
type TierSummary struct {
	Cutoff  time.Time
	Sources []activities.TierReport
	Events  int
	Bytes   int64
}

// Tier moves the events stored before the hot window's start into the
// cold tier: one activity fixes the cutoff and the sources, then one
// activity per source, in order, moves that source's events (copy into
// segments, verify, commit the manifest, evict from hot). A source's
// activity is retried on failure; a retry, like a rerun of the whole
// workflow, completes what a killed attempt left. A source that still
// fails after the retries fails the run, after the others ran.
func Tier(ctx workflow.Context, in TierInput) (TierSummary, error) {
	var a *activities.Tier
	var sum TierSummary
	pctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	var plan activities.TierPlan
	if err := workflow.ExecuteActivity(pctx, a.TierPlan, in.Sources).Get(ctx, &plan); err != nil {
		return sum, err
	}
	sum.Cutoff = plan.Cutoff
	sctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 6 * time.Hour,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 10 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute, MaximumAttempts: 10,
		},
	})
	var failed error
	for _, src := range plan.Sources {
		var rep activities.TierReport
		err := workflow.ExecuteActivity(sctx, a.TierSource, activities.TierSourceInput{Source: src, Cutoff: plan.Cutoff}).Get(ctx, &rep)
		if err != nil {
			workflow.GetLogger(ctx).Error("tiering a source failed", "source", src, "error", err)
			if failed == nil {
				failed = err
			}
			continue
		}
		sum.Sources = append(sum.Sources, rep)
		sum.Events += rep.Events
		sum.Bytes += rep.Bytes
	}
	return sum, failed
}
