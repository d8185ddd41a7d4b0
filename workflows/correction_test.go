package workflows_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/correction"
	"github.com/tidemark-dev/tidemark/workflows"
)

var ca *activities.Correction

// TestCorrection runs a correction of three sources with mocked
// activities: one cannot be planned (no key), one has a chunk that fails
// for good (skipped, the others go on), one is corrected through its range
// chunks and then its extra-key chunk. The ledger gets one entry per
// source, with the drift summed and the skips named; chunks never run more
// than Parallelism at once.
func TestCorrection(t *testing.T) {
	env := newTestEnv()
	env.RegisterWorkflowWithOptions(workflows.Correction, workflow.RegisterOptions{Name: workflows.CorrectionWorkflow})
	env.RegisterActivity(ca)
	ok := activities.CorrectionTarget{Source: "mysql.shop.orders", Database: "shop", Table: "orders"}
	bad := activities.CorrectionTarget{Source: "mysql.shop.broken", Database: "shop", Table: "broken"}
	nokey := activities.CorrectionTarget{Source: "mysql.shop.log", Database: "shop", Table: "log"}
	env.OnActivity(ca.CorrectionPlan, mock.Anything, mock.Anything).Return([]activities.CorrectionSourcePlan{
		{Target: bad, Chunks: []activities.CorrectionChunk{{Index: 0}, {Index: 1}}},
		{Target: nokey, Err: "correction: source mysql.shop.log: the table has no primary key"},
		{Target: ok, Chunks: []activities.CorrectionChunk{{Index: 0}, {Index: 1, From: [][]byte{[]byte("10")}}, {Index: 2, From: [][]byte{[]byte("20")}}}},
	}, nil)
	var running, most atomic.Int32
	env.OnActivity(ca.CorrectionChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CorrectionChunkInput) (activities.CorrectionResult, error) {
			n := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			if in.Target.Source == bad.Source && in.Chunk.Index == 1 {
				return activities.CorrectionResult{}, temporal.NewNonRetryableApplicationError("correction: source mysql.shop.broken: the table does not exist", "Uncorrectable", nil)
			}
			r := activities.CorrectionResult{Source: in.Target.Source, Chunk: in.Chunk.Index}
			r.Compared = 10
			if in.Chunk.Keys != nil {
				r.Compared = 1
				r.Extra, r.Corrections = 1, 1
				r.Keys = map[string][]string{correction.KindExtra: {"99"}}
			} else if in.Chunk.Index == 1 {
				r.Missing, r.Corrections = 1, 1
				r.Keys = map[string][]string{correction.KindMissing: {"12"}}
			}
			return r, nil
		})
	env.OnActivity(ca.CorrectionExtras, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CorrectionExtrasInput) ([]activities.CorrectionChunk, error) {
			if in.Target.Source != ok.Source || in.First != 3 {
				return nil, errors.New("extras asked for the wrong source or index")
			}
			return []activities.CorrectionChunk{{Index: 3, Keys: [][][]byte{{[]byte("99")}}}}, nil
		})
	var ledger []activities.CorrectionEntry
	env.OnActivity(ca.CorrectionLedger, mock.Anything, mock.Anything).Return(
		func(_ context.Context, entries []activities.CorrectionEntry) error { ledger = entries; return nil })

	env.ExecuteWorkflow(workflows.CorrectionWorkflow, workflows.CorrectionInput{Parallelism: 2})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var sum workflows.CorrectionSummary
	if err := env.GetWorkflowResult(&sum); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(entrySources(sum.Entries), []string{bad.Source, nokey.Source, ok.Source}) || len(ledger) != 3 {
		t.Fatalf("entries %+v, ledger %+v", sum.Entries, ledger)
	}
	if e := sum.Entries[0]; e.Skipped != "correction: source mysql.shop.broken: the table does not exist" {
		t.Errorf("broken: skipped %q", e.Skipped)
	}
	if e := sum.Entries[1]; e.Skipped == "" {
		t.Errorf("log: not skipped")
	}
	e := sum.Entries[2]
	if e.Skipped != "" || e.Chunks != 4 || e.Compared != 31 || e.Missing != 1 || e.Extra != 1 || e.Corrections != 2 ||
		!slices.Equal(e.Keys[correction.KindMissing], []string{"12"}) || !slices.Equal(e.Keys[correction.KindExtra], []string{"99"}) {
		t.Errorf("orders: %+v", e)
	}
	if n := most.Load(); n > 2 {
		t.Errorf("%d chunks ran at once, parallelism 2", n)
	}
	val, err := env.QueryWorkflow(workflows.ProgressQuery)
	if err != nil {
		t.Fatal(err)
	}
	var p workflows.CorrectionProgress
	if err := val.Get(&p); err != nil {
		t.Fatal(err)
	}
	if p.State != "done" || p.Done != p.Chunks || p.Percent != 100 || p.Skipped != 2 || p.Compared != 41 {
		t.Errorf("progress %+v", p)
	}
}

func entrySources(es []activities.CorrectionEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Source)
	}
	return out
}

// TestReplayCorrection replays recorded Corrections on today's code: one
// of today's (workers.TestCorrectionWorkflow with
// TIDEMARK_UPDATE_HISTORIES=1 rewrites it), one from before its progress
// was throttled (versionProgressEvery: correction_v0, recorded at
// f04e1e1, which published on every chunk's end), one that re-backfilled a job
// as a child Backfill (workers.TestCorrectionRebackfill rewrites it), and
// copies whose chunks were scheduled as an activity type, or whose child
// was started as a workflow type, this code never uses, which must fail as
// nondeterministic. They replay under their recorded workflow IDs, which
// the children's IDs derive from.
func TestReplayCorrection(t *testing.T) {
	for _, tc := range []struct {
		file, id         string
		nondeterministic bool
	}{
		{"correction.json", "correction-1", false},
		{"correction_v0.json", "correction-1", false},
		{"correction_nondeterministic.json", "correction-1", true},
		{"correction_rebackfill.json", "correction-rb-1", false},
		{"correction_rebackfill_nondeterministic.json", "correction-rb-1", true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
			if err != nil {
				t.Fatal(err)
			}
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.Correction, workflow.RegisterOptions{Name: workflows.CorrectionWorkflow})
			err = r.ReplayWorkflowHistoryWithOptions(nil, h, worker.ReplayWorkflowHistoryOptions{OriginalExecution: workflow.Execution{ID: tc.id}})
			switch {
			case !tc.nondeterministic && err != nil:
				t.Fatalf("replay: %v", err)
			case tc.nondeterministic && !isNondeterminism(err):
				t.Fatalf("the broken history: %v, want a nondeterminism error", err)
			}
		})
	}
}
