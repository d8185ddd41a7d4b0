package workflows_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/parity"
	"github.com/tidemark-dev/tidemark/workflows"
)

var pa *activities.Parity

// TestParity runs a parity of five hours in hour chunks with a mocked
// chunk activity: every chunk runs once, never more than Parallelism at
// once; the counts are summed, the examples kept per cause up to Examples,
// and the objects listed.
func TestParity(t *testing.T) {
	env := newTestEnv()
	env.RegisterWorkflowWithOptions(workflows.Parity, workflow.RegisterOptions{Name: workflows.ParityWorkflow})
	env.RegisterActivity(pa)
	t0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	var running, most, calls atomic.Int32
	env.OnActivity(pa.ParityChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ParityChunkInput) (activities.ParityChunkResult, error) {
			calls.Add(1)
			n := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			if in.From != t0.Add(time.Duration(in.Chunk)*time.Hour) || in.To.Sub(in.From) != time.Hour || in.Job != "j" {
				return activities.ParityChunkResult{}, fmt.Errorf("chunk %d: %s [%v, %v)", in.Chunk, in.Job, in.From, in.To)
			}
			d := parity.Diff{Trigger: eventcenter.ID{Source: "s", Key: fmt.Sprint(in.Chunk), Time: in.From}, Cause: parity.LateData}
			return activities.ParityChunkResult{
				Report: parity.Report{Job: "j", JobVersion: "2", Events: 10, Triggers: 5, Agree: 4, Counts: map[parity.Cause]int{parity.LateData: 1}, Diffs: []parity.Diff{d}},
				Object: fmt.Sprintf("/tmp/p/chunk-%05d.jsonl", in.Chunk),
			}, nil
		})
	env.ExecuteWorkflow(workflows.ParityWorkflow, workflows.ParityInput{Job: "j", From: t0, To: t0.Add(5 * time.Hour), Parallelism: 2, Examples: 3})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var sum workflows.ParitySummary
	if err := env.GetWorkflowResult(&sum); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 5 || most.Load() > 2 {
		t.Errorf("%d chunk calls, at most %d at once; want 5 and at most 2", calls.Load(), most.Load())
	}
	if sum.Triggers != 25 || sum.Agree != 20 || sum.Events != 50 || sum.Counts[parity.LateData] != 5 || len(sum.Examples) != 3 || len(sum.Objects) != 5 || sum.JobVersion != "2" {
		t.Fatalf("summary %+v", sum)
	}
	env = newTestEnv()
	env.RegisterWorkflowWithOptions(workflows.Parity, workflow.RegisterOptions{Name: workflows.ParityWorkflow})
	env.ExecuteWorkflow(workflows.ParityWorkflow, workflows.ParityInput{Job: "j", From: t0, To: t0})
	if env.GetWorkflowError() == nil {
		t.Fatal("an empty range was accepted")
	}
}

// TestReplayParity: the history recorded by workers.TestParityWorkflow
// replays on today's code; the same history with its chunks scheduled as
// another activity type fails as nondeterministic.
func TestReplayParity(t *testing.T) {
	for file, nondeterministic := range map[string]bool{"parity.json": false, "parity_nondeterministic.json": true} {
		t.Run(file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.Parity, workflow.RegisterOptions{Name: workflows.ParityWorkflow})
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
