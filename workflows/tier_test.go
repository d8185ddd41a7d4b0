package workflows_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/workflows"
)

var ta *activities.Tier

func newTierEnv(sources ...string) (*testsuite.TestWorkflowEnvironment, map[string]int) {
	env := newTestEnv()
	env.RegisterWorkflowWithOptions(workflows.Tier, workflow.RegisterOptions{Name: workflows.TierWorkflow})
	env.RegisterActivity(ta)
	env.OnActivity(ta.TierPlan, mock.Anything, mock.Anything).Return(func(_ context.Context, given []string) (activities.TierPlan, error) {
		if len(given) > 0 {
			return activities.TierPlan{Cutoff: t0, Sources: given}, nil
		}
		return activities.TierPlan{Cutoff: t0, Sources: sources}, nil
	})
	return env, map[string]int{}
}

// TestTier: one activity per source at the plan's cutoff, a failing
// attempt retried, the summary adding the sources up.
func TestTier(t *testing.T) {
	env, attempts := newTierEnv("a", "b")
	env.OnActivity(ta.TierSource, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.TierSourceInput) (activities.TierReport, error) {
		attempts[in.Source]++
		if !in.Cutoff.Equal(t0) {
			t.Errorf("TierSource(%+v): cutoff, want %v", in, t0)
		}
		if in.Source == "a" && attempts["a"] == 1 {
			return activities.TierReport{}, errors.New("S3 went away")
		}
		return activities.TierReport{Source: in.Source, Events: 10, Segments: 1, Bytes: 100}, nil
	})
	env.ExecuteWorkflow(workflows.TierWorkflow, workflows.TierInput{})
	var sum workflows.TierSummary
	if err := env.GetWorkflowResult(&sum); err != nil {
		t.Fatal(err)
	}
	if sum.Events != 20 || sum.Bytes != 200 || len(sum.Sources) != 2 || !sum.Cutoff.Equal(t0) {
		t.Errorf("summary %+v", sum)
	}
	if attempts["a"] != 2 || attempts["b"] != 1 {
		t.Errorf("attempts %v, want a twice (one retry), b once", attempts)
	}
}

// TestTierSourceFails: a source that fails for good fails the run, after
// the other sources were tiered.
func TestTierSourceFails(t *testing.T) {
	env, attempts := newTierEnv()
	env.OnActivity(ta.TierSource, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.TierSourceInput) (activities.TierReport, error) {
		attempts[in.Source]++
		if in.Source == "bad" {
			return activities.TierReport{}, temporal.NewNonRetryableApplicationError("corrupt segment", "Corrupt", nil)
		}
		return activities.TierReport{Source: in.Source, Events: 1}, nil
	})
	env.ExecuteWorkflow(workflows.TierWorkflow, workflows.TierInput{Sources: []string{"bad", "good"}})
	if err := env.GetWorkflowError(); err == nil {
		t.Fatal("the run succeeded with a failed source")
	}
	if attempts["bad"] != 1 || attempts["good"] != 1 {
		t.Errorf("attempts %v, want each source once", attempts)
	}
}

// TestReplayTierHistories: the history recorded by workers.TestTierWorkflow
// (TIDEMARK_UPDATE_HISTORIES=1 rewrites it) replays on today's code, and
// the same history with its sources tiered by an activity type this code
// never schedules fails as nondeterministic.
func TestReplayTierHistories(t *testing.T) {
	for _, tc := range []struct {
		file             string
		nondeterministic bool
	}{
		{"tier_v1.json", false},
		{"tier_nondeterministic.json", true},
	} {
		t.Run(strings.TrimSuffix(tc.file, ".json"), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.Tier, workflow.RegisterOptions{Name: workflows.TierWorkflow})
			err := r.ReplayWorkflowHistoryFromJSONFile(nil, filepath.Join("testdata", tc.file))
			switch {
			case !tc.nondeterministic && err != nil:
				t.Fatalf("replay: %v", err)
			case tc.nondeterministic && !isNondeterminism(err):
				t.Fatalf("the broken history: %v, want a nondeterminism error", err)
			}
		})
	}
}
