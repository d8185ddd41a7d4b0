package workflows_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
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

// TestReplayCorrection replays recorded Corrections on today's code: the
// two runs of today's, which planned its table a page at a time and
// continued as new (workers.TestCorrectionWorkflow with
// TIDEMARK_UPDATE_HISTORIES=1 rewrites them: correction_can_first and
// correction), one from before pages (versionPlanPages: correction_v1,
// recorded at b0594bb, one plan and one run), one from before its progress
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
		{"correction_can_first.json", "correction-1", false},
		{"correction.json", "correction-1", false},
		{"correction_v1.json", "correction-1", false},
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

// TestCorrectionPagesAndContinuesAsNew corrects a table of 23 range chunks
// planned 5 at a time (the first page: Parallelism) in runs of at most 7
// chunks: every chunk runs exactly once, pages are planned only as
// chunks run, the run continues as new with its queue, counts and start,
// each next run resumes without planning the table again, the extra-key
// chunk comes after the last page, and the last run's ledger has all.
func TestCorrectionPagesAndContinuesAsNew(t *testing.T) {
	const tableChunks = 23
	target := activities.CorrectionTarget{Source: "mysql.shop.big", Database: "shop", Table: "big"}
	key := func(i int) [][]byte { return [][]byte{[]byte(strconv.Itoa(i * 10))} }
	page := func(first, n int) activities.CorrectionSourcePlan {
		pl := activities.CorrectionSourcePlan{Target: target}
		for i := first; i < min(first+n, tableChunks); i++ {
			ch := activities.CorrectionChunk{Index: i, To: key(i + 1)}
			if i > 0 {
				ch.From = key(i)
			}
			if i == tableChunks-1 {
				ch.To = nil
			}
			pl.Chunks = append(pl.Chunks, ch)
		}
		if first+n < tableChunks {
			pl.Next = key(first + n)
			pl.Estimate = tableChunks + 7 // statistics are estimates
		}
		return pl
	}
	var (
		mu       sync.Mutex // the mocked activities run on goroutines of their own
		ran      = map[int]int{}
		since    time.Time
		pages    []int // each page's first chunk
		runs     int
		ledger   []activities.CorrectionEntry
		in       = workflows.CorrectionInput{Parallelism: 2, PageChunks: 5, MaxChunksPerRun: 7}
		progress workflows.CorrectionProgress
	)
	for {
		runs++
		if runs > 10 {
			t.Fatal("the correction does not end")
		}
		env := (&testsuite.WorkflowTestSuite{}).NewTestWorkflowEnvironment()
		env.RegisterWorkflowWithOptions(workflows.Correction, workflow.RegisterOptions{Name: workflows.CorrectionWorkflow})
		env.RegisterActivity(ca)
		env.OnActivity(ca.CorrectionPlan, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.CorrectionPlanInput) ([]activities.CorrectionSourcePlan, error) {
				mu.Lock()
				defer mu.Unlock()
				since = in.Date
				if runs > 1 {
					t.Errorf("run %d planned the table again", runs)
				}
				if in.PageChunks != 2 || in.Date.IsZero() {
					t.Errorf("plan input %+v: want the first page of Parallelism chunks, dated", in)
				}
				return []activities.CorrectionSourcePlan{page(0, in.PageChunks)}, nil
			})
		env.OnActivity(ca.CorrectionPlanPage, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.CorrectionPageInput) (activities.CorrectionSourcePlan, error) {
				mu.Lock()
				defer mu.Unlock()
				if string(in.Page.From[0]) != strconv.Itoa(in.Page.First*10) || in.Page.Chunks != 5 || !in.Date.Equal(since) {
					t.Errorf("page input %+v", in)
				}
				pages = append(pages, in.Page.First)
				return page(in.Page.First, in.Page.Chunks), nil
			})
		env.OnActivity(ca.CorrectionChunk, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.CorrectionChunkInput) (activities.CorrectionResult, error) {
				mu.Lock()
				defer mu.Unlock()
				if !in.Since.Equal(since) {
					t.Errorf("chunk %d: since %v, the run's start %v", in.Chunk.Index, in.Since, since)
				}
				ran[in.Chunk.Index]++
				r := activities.CorrectionResult{Source: in.Target.Source, Chunk: in.Chunk.Index}
				r.Compared = 10
				if in.Chunk.Index == 17 {
					r.Different, r.Corrections = 1, 1
					r.Keys = map[string][]string{correction.KindDifferent: {"170"}}
				}
				return r, nil
			})
		env.OnActivity(ca.CorrectionExtras, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.CorrectionExtrasInput) ([]activities.CorrectionChunk, error) {
				mu.Lock()
				defer mu.Unlock()
				if in.First != tableChunks || ran[tableChunks-1] != 1 {
					t.Errorf("extras planned with first %d after %d chunks", in.First, len(ran))
				}
				return []activities.CorrectionChunk{{Index: tableChunks, Keys: [][][]byte{{[]byte("999")}}}}, nil
			})
		env.OnActivity(ca.CorrectionLedger, mock.Anything, mock.Anything).Return(
			func(_ context.Context, entries []activities.CorrectionEntry) error { ledger = entries; return nil })
		env.ExecuteWorkflow(workflows.CorrectionWorkflow, in)
		if !env.IsWorkflowCompleted() {
			t.Fatal("not completed")
		}
		var can *workflow.ContinueAsNewError
		if err := env.GetWorkflowError(); errors.As(err, &can) {
			var next workflows.CorrectionInput
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
				t.Fatal(err)
			}
			if next.State == nil || !next.State.Started.Equal(since) || next.State.Progress.Done != len(ran) {
				t.Fatalf("run %d continues with state %+v after %d chunks", runs, next.State, len(ran))
			}
			in = next
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		v, err := env.QueryWorkflow(workflows.ProgressQuery)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Get(&progress); err != nil {
			t.Fatal(err)
		}
		break
	}
	for i := range tableChunks + 1 {
		if ran[i] != 1 {
			t.Errorf("chunk %d ran %d times", i, ran[i])
		}
	}
	if len(ran) != tableChunks+1 {
		t.Errorf("%d chunks ran, want %d", len(ran), tableChunks+1)
	}
	if !slices.Equal(pages, []int{2, 7, 12, 17, 22}) {
		t.Errorf("pages planned from %v", pages)
	}
	if runs != 4 { // 24 chunks, 7 a run
		t.Errorf("%d runs, want 4", runs)
	}
	if len(ledger) != 1 || ledger[0].Chunks != tableChunks+1 || ledger[0].Compared != 240 || ledger[0].Different != 1 ||
		!slices.Equal(ledger[0].Keys[correction.KindDifferent], []string{"170"}) || !ledger[0].Started.Equal(since) {
		t.Errorf("ledger %+v", ledger)
	}
	if progress.State != "done" || progress.Done != tableChunks+1 || progress.Chunks != tableChunks+1 || progress.Percent != 100 || progress.Compared != 240 {
		t.Errorf("progress %+v", progress)
	}
}
