package workers

import (
	"context"
	"errors"
	"log/slog"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/workflows"
)

// LateImpactStarter returns an ingest.Config.OnLate that starts the
// LateImpact workflow of each late event on c's task queue
// (workflows.TaskQueue if empty), with activities.LateImpactID as its ID,
// refusing a second run per event
// (WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE).
//
// Starts run off ingest's path, in one goroutine that ends with ctx, with
// at most pending events queued; past that, late events are dropped with
// a warning. Starts are at most once: one dropped, failed, or lost in a
// crash after the batch's Append is not retried (ingest hears of a late
// event once). Its note remains (ingest.LateSource), and `tidemark parity
// impact` finds it.
func LateImpactStarter(ctx context.Context, c client.Client, queue string, pending int, log *slog.Logger) func(context.Context, []ingest.Late) {
	if queue == "" {
		queue = workflows.TaskQueue
	}
	if log == nil {
		log = slog.Default()
	}
	ch := make(chan ingest.Late, pending)
	go func() {
		for {
			var l ingest.Late
			select {
			case <-ctx.Done():
				return
			case l = <-ch:
			}
			opts := client.StartWorkflowOptions{ID: activities.LateImpactID(l.Event), TaskQueue: queue,
				WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE}
			_, err := c.ExecuteWorkflow(ctx, opts, workflows.LateImpactWorkflow, workflows.LateImpactInput{Event: l.Event, Watermark: l.Watermark})
			var dup *serviceerror.WorkflowExecutionAlreadyStarted
			if err != nil && !errors.As(err, &dup) && ctx.Err() == nil {
				log.Warn("late impact: start", "workflow", opts.ID, "event", l.Event, "err", err)
			}
		}
	}()
	return func(_ context.Context, late []ingest.Late) {
		for _, l := range late {
			select {
			case ch <- l:
			default:
				log.Warn("late impact: too many late events pending, dropped (see tidemark parity impact)", "event", l.Event)
			}
		}
	}
}
