package workers

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tidemark-dev/tidemark/workflows"
)

// CorrectionScheduleSpec says when the nightly correction runs.
type CorrectionScheduleSpec struct {
	Hour, Minute int    // time of day
	Zone         string // IANA name; "" is UTC
	// Paused creates the schedule paused, with Note saying why (the dev
	// stack, which has no MySQL server). An update leaves the pause as is.
	Paused bool
	Note   string
}

// EnsureCorrectionSchedule creates the Temporal Schedule
// workflows.CorrectionSchedule, starting the Correction workflow with in on
// queue every day at the spec's time, overlap policy skip; if it exists, it
// updates its time and action. It reports whether it created it.
// `tidemark correction schedule` and the dev stack call it.
func EnsureCorrectionSchedule(ctx context.Context, c client.Client, queue string, sp CorrectionScheduleSpec, in workflows.CorrectionInput) (bool, error) {
	spec := client.ScheduleSpec{
		Calendars:    []client.ScheduleCalendarSpec{{Hour: []client.ScheduleRange{{Start: sp.Hour}}, Minute: []client.ScheduleRange{{Start: sp.Minute}}}},
		TimeZoneName: sp.Zone,
	}
	action := &client.ScheduleWorkflowAction{ID: "correction-nightly", Workflow: workflows.CorrectionWorkflow, TaskQueue: queue, Args: []any{in}}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID: workflows.CorrectionSchedule, Spec: spec, Action: action, Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Memo:   map[string]any{"purpose": "tidemark nightly correction: compare MySQL with the event center and correct it"},
		Paused: sp.Paused, Note: sp.Note,
	})
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return false, fmt.Errorf("create schedule %s: %w", workflows.CorrectionSchedule, err)
	}
	h := c.ScheduleClient().GetHandle(ctx, workflows.CorrectionSchedule)
	err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(u client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		s := u.Description.Schedule
		s.Spec = &spec
		s.Action = action
		if s.Policy == nil {
			s.Policy = &client.SchedulePolicies{}
		}
		s.Policy.Overlap = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP
		return &client.ScheduleUpdate{Schedule: &s}, nil
	}})
	if err != nil {
		return false, fmt.Errorf("update schedule %s: %w", workflows.CorrectionSchedule, err)
	}
	return false, nil
}
