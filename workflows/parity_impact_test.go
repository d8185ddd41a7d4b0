package workflows_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/parity"
	"github.com/tidemark-dev/tidemark/workflows"
)

// TestLateImpact runs LateImpact with mocked activities: the find activity
// gets the defaults; only the job marked for re-run is re-run, with its
// affected triggers and the workflow's ID as the writer's name; a run
// without an event fails without calling anything.
func TestLateImpact(t *testing.T) {
	env := newTestEnv()
	env.RegisterWorkflowWithOptions(workflows.LateImpact, workflow.RegisterOptions{Name: workflows.LateImpactWorkflow})
	env.RegisterActivity(pa)
	ev := eventcenter.ID{Source: "s", Key: "k", Time: time.Date(2026, 11, 26, 8, 1, 0, 0, time.UTC)}
	aff := []parity.Affected{{Trigger: eventcenter.ID{Source: "apps", Key: "a1", Time: ev.Time.Add(time.Minute)}, RecordID: "r1", By: []eventcenter.ID{ev}}}
	env.OnActivity(pa.LateImpactFind, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.LateImpactFindInput) ([]activities.LateImpactJob, error) {
			if in.Event.Key != "k" || in.Horizon != workflows.DefaultLateImpactHorizon || in.MaxReruns != workflows.DefaultLateImpactMaxReruns {
				return nil, fmt.Errorf("find input %+v", in)
			}
			return []activities.LateImpactJob{
				{Job: "a", Count: 1, Skipped: "no opt-in", Affected: aff},
				{Job: "b", Count: 1, Rerun: true, Affected: aff},
				{Job: "c"},
			}, nil
		})
	var reruns []activities.LateImpactRerunInput
	env.OnActivity(pa.LateImpactRerun, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.LateImpactRerunInput) (activities.LateImpactRerunResult, error) {
			reruns = append(reruns, in)
			return activities.LateImpactRerunResult{Job: in.Job, Replaced: len(in.Affected)}, nil
		})
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: activities.LateImpactID(ev)})
	env.ExecuteWorkflow(workflows.LateImpactWorkflow, workflows.LateImpactInput{Event: ev})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var sum workflows.LateImpactSummary
	if err := env.GetWorkflowResult(&sum); err != nil {
		t.Fatal(err)
	}
	if len(reruns) != 1 || reruns[0].Job != "b" || len(reruns[0].Affected) != 1 || reruns[0].Run != activities.LateImpactID(ev) {
		t.Fatalf("re-runs %+v, want job b's one trigger, named after the workflow", reruns)
	}
	if len(sum.Jobs) != 3 || len(sum.Reruns) != 1 || sum.Reruns[0].Replaced != 1 {
		t.Fatalf("summary %+v", sum)
	}

	env = newTestEnv()
	env.RegisterWorkflowWithOptions(workflows.LateImpact, workflow.RegisterOptions{Name: workflows.LateImpactWorkflow})
	env.ExecuteWorkflow(workflows.LateImpactWorkflow, workflows.LateImpactInput{})
	if env.GetWorkflowError() == nil {
		t.Fatal("a run without an event was accepted")
	}
}

// TestLateImpactID: one ID per event, another for another event.
func TestLateImpactID(t *testing.T) {
	at := time.Date(2026, 11, 26, 8, 1, 0, 0, time.UTC)
	a := eventcenter.ID{Source: "s", Key: "k", Time: at}
	b := a
	b.Pos.Offset = 1
	if activities.LateImpactID(a) != activities.LateImpactID(eventcenter.ID{Source: "s", Key: "k", Time: at.In(time.Local)}) || activities.LateImpactID(a) == activities.LateImpactID(b) {
		t.Fatalf("IDs %s, %s", activities.LateImpactID(a), activities.LateImpactID(b))
	}
}

// TestReplayLateImpact: the history recorded by workers.TestLateImpactWorkflow
// replays on today's code; the same history with its re-run scheduled as
// another activity type fails as nondeterministic.
func TestReplayLateImpact(t *testing.T) {
	for file, nondeterministic := range map[string]bool{"late_impact.json": false, "late_impact_nondeterministic.json": true} {
		t.Run(file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.LateImpact, workflow.RegisterOptions{Name: workflows.LateImpactWorkflow})
			err := r.ReplayWorkflowHistoryFromJSONFile(nil, filepath.Join("testdata", file))
			switch {
			case !nondeterministic && err != nil:
				t.Fatalf("replay: %v", err)
			case nondeterministic && !isNondeterminism(err):
				t.Fatalf("the broken history: %v, want a nondeterminism error", err)
			}
		})
	}
}
