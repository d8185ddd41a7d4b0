package workflows_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/workflows"
)

// Histories recorded from real runs (workers.TestBackfill with
// TIDEMARK_UPDATE_HISTORIES=1 rewrites them) must replay on today's code:
// a change that would break running backfills fails here. The broken
// history, whose chunks were scheduled as an activity type this code never
// schedules, must fail as nondeterministic: it proves the replayer checks.
func TestReplayHistories(t *testing.T) {
	for _, tc := range []struct {
		file             string
		nondeterministic bool
	}{
		{"backfill_range.json", false},
		{"backfill_cancel.json", false},
		{"backfill_nondeterministic.json", true},
		// Recorded before versioning (commit 1644896): a backfill that
		// relied on the default parallelism (then 4), and one whose
		// parallelism a signal changed.
		{"backfill_v0_defaults.json", false},
		{"backfill_v0_signal.json", false},
		// A v0 continuation whose parallelism a signal had set to 5000
		// (v0 did not clamp signals), above today's limit of 1000: it
		// replays only if judged by the rules of its own version.
		// Derived from backfill_v1_can_last.json: its input rewritten as
		// a v0 run continued as new would have sent it (no version in
		// the state, no fields of later versions); the commands are
		// those of v0 for it.
		{"backfill_v0_over_limit.json", false},
		// Recorded by workers.TestBackfillHistories at version 1 (commit
		// e450c25).
		{"backfill_v1_defaults.json", false},
		{"backfill_v1_update.json", false},
		{"backfill_v1_can_first.json", false},
		{"backfill_v1_can_last.json", false},
		{"backfill_v1_failed_chunk.json", false},
		{"backfill_v1_sample.json", false},
		{"backfill_v1_cancel.json", false},
		// Recorded by workers.TestBackfillHistories at version 2: the same
		// cases, the same ID started again (its file sink folder cleared)
		// and a truncation that leaves nothing.
		{"backfill_v2_defaults.json", false},
		{"backfill_v2_update.json", false},
		{"backfill_v2_can_first.json", false},
		{"backfill_v2_can_last.json", false},
		{"backfill_v2_failed_chunk.json", false},
		{"backfill_v2_sample.json", false},
		{"backfill_v2_sample_again.json", false},
		{"backfill_v2_cancel.json", false},
		{"backfill_v2_truncated.json", false},
		// Recorded by workers.TestBackfillHistories at version 3 (the
		// chunk sized to the range and parallelism): the same, plus a
		// range without a chunk.
		{"backfill_v3_defaults.json", false},
		{"backfill_v3_default_chunk.json", false},
		{"backfill_v3_update.json", false},
		{"backfill_v3_can_first.json", false},
		{"backfill_v3_can_last.json", false},
		{"backfill_v3_failed_chunk.json", false},
		{"backfill_v3_sample.json", false},
		{"backfill_v3_sample_again.json", false},
		{"backfill_v3_cancel.json", false},
		{"backfill_v3_truncated.json", false},
		// Derived from backfill_v1_sample.json and backfill_v3_sample.json:
		// their inputs without chunkRows, which the workflow filled with
		// 10 000 until the plan sized a sample's chunks (only the plan's
		// input differs, which replay does not compare; the chunks are
		// those of the recorded plan).
		{"backfill_v1_sample_default_rows.json", false},
		{"backfill_v3_sample_default_rows.json", false},
	} {
		t.Run(strings.TrimSuffix(tc.file, ".json"), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
			err := r.ReplayWorkflowHistoryFromJSONFile(nil, filepath.Join("testdata", tc.file))
			switch {
			case !tc.nondeterministic && err != nil:
				t.Fatalf("replay: %v", err)
			case tc.nondeterministic && err == nil:
				t.Fatal("the broken history replayed without error")
			case tc.nondeterministic && !isNondeterminism(err):
				t.Fatalf("the broken history failed, but not as nondeterministic: %v", err)
			}
		})
	}
}

func isNondeterminism(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if strings.Contains(err.Error(), "nondeterministic") || strings.Contains(err.Error(), "[TMPRL1100]") {
			return true
		}
	}
	return false
}

// The default parallelism changed from 4 to 8. Without the GetVersion
// patch that keeps the old default for histories started before it, the
// history of a backfill that relied on the default fails replay as
// nondeterministic (TMPRL1100): this is the break the patch prevents.
func TestReplayNeedsThePatch(t *testing.T) {
	defer workflows.Unpatched()()
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(workflows.Backfill, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
	err := r.ReplayWorkflowHistoryFromJSONFile(nil, filepath.Join("testdata", "backfill_v0_defaults.json"))
	if !isNondeterminism(err) {
		t.Fatalf("unpatched, the v0 defaults history replayed with %v; want a nondeterminism error", err)
	}
	t.Logf("unpatched: %v", err)
}
