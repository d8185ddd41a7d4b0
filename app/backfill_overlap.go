package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/workflows"
)

// overlap reports whether backfills a and b write records of the same
// triggers to the same feature store, where two at once race on each
// record's version (see workflows/README.md, "Concurrency"): the same job,
// feature store sinks that may be one (the job's own outputs may be any),
// and ranges that overlap (a sample table may hold any time). File sinks
// never overlap: each backfill writes in a folder of its own ID.
func overlap(a, b workflows.BackfillInput) bool {
	if a.Job != b.Job || activities.IsFileSink(a.Sink) || activities.IsFileSink(b.Sink) {
		return false
	}
	sa, sb := featureSource(a.Job, a.Sink), featureSource(b.Job, b.Sink)
	if sa != "" && sb != "" && sa != sb {
		return false
	}
	if a.Sample != "" || b.Sample != "" {
		return true
	}
	return a.From.Before(b.To) && b.From.Before(a.To)
}

// featureSource is the feature store source a sink writes the job's
// records to, "" for the job's own outputs (any source).
func featureSource(jobName, sink string) string {
	switch {
	case sink == "" || sink == "job":
		return ""
	case sink == "featurestore":
		return job.FeatureSource(jobName)
	}
	return strings.TrimPrefix(sink, "featurestore:")
}

// runningOverlaps returns the IDs of the running backfills (other than
// id) that overlap in. It reads Temporal's visibility and each one's start
// input, so it sees backfills started by any client, but not one started
// within the visibility delay (about a second): the check is advisory.
func runningOverlaps(ctx context.Context, c client.Client, id string, in workflows.BackfillInput) ([]string, error) {
	if activities.IsFileSink(in.Sink) {
		return nil, nil
	}
	var ids []string
	req := &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", workflows.BackfillWorkflow)}
	for {
		resp, err := c.ListWorkflow(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("list running backfills: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			x := e.GetExecution()
			if x.GetWorkflowId() == id {
				continue // its start fails as already running, which says more
			}
			other, err := startInput(ctx, c, x.GetWorkflowId(), x.GetRunId())
			var nf *serviceerror.NotFound
			switch {
			case errors.As(err, &nf): // gone since listed
			case err != nil:
				return nil, err
			case overlap(in, other):
				ids = append(ids, x.GetWorkflowId())
			}
		}
		if req.NextPageToken = resp.GetNextPageToken(); len(req.NextPageToken) == 0 {
			return ids, nil
		}
	}
}

// startInput reads the input a backfill's run was started with.
func startInput(ctx context.Context, c client.Client, id, runID string) (workflows.BackfillInput, error) {
	var in workflows.BackfillInput
	h := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !h.HasNext() {
		return in, fmt.Errorf("backfill %s: empty history", id)
	}
	e, err := h.Next()
	if err != nil {
		return in, err
	}
	attrs := e.GetWorkflowExecutionStartedEventAttributes()
	if attrs == nil {
		return in, fmt.Errorf("backfill %s: its history does not start with its input", id)
	}
	if err := converter.GetDefaultDataConverter().FromPayloads(attrs.GetInput(), &in); err != nil {
		return in, fmt.Errorf("backfill %s: its input: %w", id, err)
	}
	return in, nil
}
