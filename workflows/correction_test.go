package workflows_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
			if in.ChunkRows != workflows.DefaultCorrectionChunkRows { // what the chunk counts on its worker
				return activities.CorrectionResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("chunk input's chunkRows %d, want the run's %d", in.ChunkRows, workflows.DefaultCorrectionChunkRows), "Test", nil)
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
	if p := correctionProgress(t, env); p.State != "done" || p.Done != p.Chunks || p.Percent != 100 || p.Skipped != 2 || p.Compared != 41 {
		t.Errorf("progress %+v", p)
	}
}

// correctionProgress is the answer of the workflow's progress query.
func correctionProgress(t *testing.T, env *testsuite.TestWorkflowEnvironment) workflows.CorrectionProgress {
	t.Helper()
	v, err := env.QueryWorkflow(workflows.ProgressQuery)
	if err != nil {
		t.Fatal(err)
	}
	var p workflows.CorrectionProgress
	if err := v.Get(&p); err != nil {
		t.Fatal(err)
	}
	return p
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
// chunk comes after the last page, and the last run's ledger and
// re-backfill have all (the earliest correction was in the first run).
func TestCorrectionPagesAndContinuesAsNew(t *testing.T) {
	const tableChunks = 23
	target := activities.CorrectionTarget{Source: "mysql.shop.big", Database: "shop", Table: "big"}
	firstAt := time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Second)
	var (
		mu       sync.Mutex // the mocked activities run on goroutines of their own
		ran      = map[int]int{}
		since    time.Time
		pages    []int // each page's first chunk
		runs     int
		ledger   []activities.CorrectionEntry
		in       = workflows.CorrectionInput{Parallelism: 2, PageChunks: 5, MaxChunksPerRun: 7}
		progress workflows.CorrectionProgress
		sum      workflows.CorrectionSummary
	)
	for {
		runs++
		if runs > 10 {
			t.Fatal("the correction does not end")
		}
		env := pagedEnv(t, &mu, map[string]int{target.Source: tableChunks}, nil, func(in activities.CorrectionPageInput) {
			if string(in.Page.From[0]) != strconv.Itoa(in.Page.First*10) || in.Page.Chunks != 5 {
				t.Errorf("page input %+v", in)
			}
			pages = append(pages, in.Page.First)
		})
		env.OnActivity(ca.CorrectionPlan, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.CorrectionPlanInput) ([]activities.CorrectionSourcePlan, error) {
				if runs > 1 {
					t.Errorf("run %d planned the table again", runs)
				}
				if in.PageChunks != 2 {
					t.Errorf("plan input %+v: want the first page of Parallelism chunks", in)
				}
				return []activities.CorrectionSourcePlan{bigPage(target, tableChunks, 0, in.PageChunks)}, nil
			})
		env.OnActivity(ca.CorrectionChunk, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.CorrectionChunkInput) (activities.CorrectionResult, error) {
				mu.Lock()
				defer mu.Unlock()
				if since.IsZero() {
					since = in.Since
				}
				if !in.Since.Equal(since) {
					t.Errorf("chunk %d: since %v, the run's start %v", in.Chunk.Index, in.Since, since)
				}
				ran[in.Chunk.Index]++
				r := activities.CorrectionResult{Source: in.Target.Source, Chunk: in.Chunk.Index}
				r.Compared = 10
				switch in.Chunk.Index {
				case 3: // in the first run
					r.Different, r.Corrections, r.First = 1, 1, firstAt
					r.Keys = map[string][]string{correction.KindDifferent: {"30"}}
				case 17:
					r.Different, r.Corrections, r.First = 1, 1, firstAt.Add(time.Hour)
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
		env.OnActivity(ca.CorrectionRebackfillJobs, mock.Anything, mock.Anything).Return(
			[]activities.RebackfillJob{{Job: "reads-big", Sources: []string{target.Source}}}, nil)
		env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in workflows.BackfillInput) (workflows.Summary, error) {
			return workflows.Summary{Job: in.Job}, nil
		}, workflow.RegisterOptions{Name: workflows.BackfillWorkflow})
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
		if err := env.GetWorkflowResult(&sum); err != nil {
			t.Fatal(err)
		}
		progress = correctionProgress(t, env)
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
	if len(ledger) != 1 || ledger[0].Chunks != tableChunks+1 || ledger[0].Compared != 240 || ledger[0].Different != 2 ||
		!slices.Equal(ledger[0].Keys[correction.KindDifferent], []string{"30", "170"}) || !ledger[0].Started.Equal(since) {
		t.Errorf("ledger %+v", ledger)
	}
	if len(sum.Rebackfill) != 1 || !sum.Rebackfill[0].From.Equal(firstAt) || sum.Rebackfill[0].Sources[0].Keys != 2 {
		t.Errorf("re-backfills %+v: want one from %v, the first run's correction", sum.Rebackfill, firstAt)
	}
	if progress.State != "done" || progress.Done != tableChunks+1 || progress.Chunks != tableChunks+1 || progress.Percent != 100 || progress.Compared != 240 {
		t.Errorf("progress %+v", progress)
	}
}

// bigPage is the plan of chunks first.. (at most n) of a table of
// chunks chunks whose keys are multiples of 10, with its Next and an
// estimate (off, as statistics are) while there is more.
func bigPage(target activities.CorrectionTarget, chunks, first, n int) activities.CorrectionSourcePlan {
	key := func(i int) [][]byte { return [][]byte{[]byte(strconv.Itoa(i * 10))} }
	pl := activities.CorrectionSourcePlan{Target: target}
	for i := first; i < min(first+n, chunks); i++ {
		ch := activities.CorrectionChunk{Index: i, To: key(i + 1)}
		if i > 0 {
			ch.From = key(i)
		}
		if i == chunks-1 {
			ch.To = nil
		}
		pl.Chunks = append(pl.Chunks, ch)
	}
	if first+n < chunks {
		pl.Next = key(first + n)
		pl.Estimate = chunks + 7
	}
	return pl
}

// pagedEnv is a test environment with the Correction workflow and a mocked
// CorrectionPlanPage for the tables of chunks (source → range chunks,
// keys as bigPage's), failing for good for the sources in broken; seen,
// if not nil, is called with each page's input (under mu).
func pagedEnv(t *testing.T, mu *sync.Mutex, chunks map[string]int, broken map[string]bool, seen func(activities.CorrectionPageInput)) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	env := (&testsuite.WorkflowTestSuite{}).NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.Correction, workflow.RegisterOptions{Name: workflows.CorrectionWorkflow})
	env.RegisterActivity(ca)
	env.OnActivity(ca.CorrectionPlanPage, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CorrectionPageInput) (activities.CorrectionSourcePlan, error) {
			mu.Lock()
			defer mu.Unlock()
			if seen != nil {
				seen(in)
			}
			if broken[in.Target.Source] {
				return activities.CorrectionSourcePlan{}, temporal.NewNonRetryableApplicationError("correction: source "+in.Target.Source+": the table does not exist", "Uncorrectable", nil)
			}
			return bigPage(in.Target, chunks[in.Target.Source], in.Page.First, in.Page.Chunks), nil
		})
	return env
}

// TestCorrectionSkipsMidTable: a source whose table is gone after its
// first page is skipped with the reason, its chunks so far counted, while
// the other source is corrected; the run ends, without continuing as new,
// done at 100 %.
func TestCorrectionSkipsMidTable(t *testing.T) {
	var mu sync.Mutex
	big := activities.CorrectionTarget{Source: "mysql.shop.big", Database: "shop", Table: "big"}
	small := activities.CorrectionTarget{Source: "mysql.shop.small", Database: "shop", Table: "small"}
	tries := 0
	env := pagedEnv(t, &mu, map[string]int{big.Source: 40, small.Source: 1}, map[string]bool{big.Source: true}, func(activities.CorrectionPageInput) { tries++ })
	env.OnActivity(ca.CorrectionPlan, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CorrectionPlanInput) ([]activities.CorrectionSourcePlan, error) {
			return []activities.CorrectionSourcePlan{bigPage(big, 40, 0, 3), bigPage(small, 1, 0, 3)}, nil
		})
	env.OnActivity(ca.CorrectionChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CorrectionChunkInput) (activities.CorrectionResult, error) {
			return activities.CorrectionResult{Source: in.Target.Source, Chunk: in.Chunk.Index, Drift: correction.Drift{Compared: 10}}, nil
		})
	env.OnActivity(ca.CorrectionExtras, mock.Anything, mock.Anything).Return([]activities.CorrectionChunk(nil), nil)
	var ledger []activities.CorrectionEntry
	env.OnActivity(ca.CorrectionLedger, mock.Anything, mock.Anything).Return(
		func(_ context.Context, entries []activities.CorrectionEntry) error { ledger = entries; return nil })
	env.ExecuteWorkflow(workflows.CorrectionWorkflow, workflows.CorrectionInput{Parallelism: 2, PageChunks: 3, MaxChunksPerRun: 100})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(ledger) != 2 || !strings.Contains(ledger[0].Skipped, "the table does not exist") || ledger[0].Chunks != 3 ||
		ledger[1].Skipped != "" || ledger[1].Chunks != 1 {
		t.Fatalf("ledger %+v", ledger)
	}
	if p := correctionProgress(t, env); p.State != "done" || p.Percent != 100 || p.Skipped != 1 || p.Done != 4 {
		t.Errorf("progress %+v", p)
	}
	if tries != 1 {
		t.Errorf("the skipped source's next page was asked for %d times", tries)
	}
}

// TestCorrectionBeforePages: a run whose history was made before pages
// (GetVersion "pages" at its default) plans every chunk at once and never
// continues as new, whatever its MaxChunksPerRun.
func TestCorrectionBeforePages(t *testing.T) {
	var mu sync.Mutex
	target := activities.CorrectionTarget{Source: "mysql.shop.t", Database: "shop", Table: "t"}
	env := pagedEnv(t, &mu, nil, nil, func(activities.CorrectionPageInput) { t.Error("a page was planned") })
	env.OnGetVersion("pages", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	env.OnActivity(ca.CorrectionPlan, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CorrectionPlanInput) ([]activities.CorrectionSourcePlan, error) {
			if in.PageChunks != 0 {
				t.Errorf("plan input %+v: want every chunk", in)
			}
			return []activities.CorrectionSourcePlan{bigPage(target, 5, 0, 5)}, nil
		})
	env.OnActivity(ca.CorrectionChunk, mock.Anything, mock.Anything).Return(activities.CorrectionResult{}, nil)
	env.OnActivity(ca.CorrectionExtras, mock.Anything, mock.Anything).Return([]activities.CorrectionChunk(nil), nil)
	env.OnActivity(ca.CorrectionLedger, mock.Anything, mock.Anything).Return(nil)
	env.ExecuteWorkflow(workflows.CorrectionWorkflow, workflows.CorrectionInput{Parallelism: 2, MaxChunksPerRun: 1})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("%v: want the run to end without continuing as new", err)
	}
}

// TestCorrectionStateStaysSmall: a run of 20 tables of 300 chunks, every
// chunk archived and drifted, continues as new with a small state, and
// ends with a small ledger: pages are planned for one source at a time,
// when the queue runs short, so the queue holds the first plan and a page
// and a half, not a page of every source; and an entry lists its first
// archive objects and keys, not all.
func TestCorrectionStateStaysSmall(t *testing.T) {
	const sources, chunks, limit = 20, 300, 128 << 10
	var mu sync.Mutex
	tables := map[string]int{}
	var targets []activities.CorrectionTarget
	for i := range sources {
		tg := activities.CorrectionTarget{Source: fmt.Sprintf("mysql.shop.big%02d", i), Database: "shop", Table: fmt.Sprintf("big%02d", i)}
		targets = append(targets, tg)
		tables[tg.Source] = chunks
	}
	in := workflows.CorrectionInput{Parallelism: 64}
	var ledger []activities.CorrectionEntry
	for runs := 1; ; runs++ {
		if runs > 20 {
			t.Fatal("the correction does not end")
		}
		env := pagedEnv(t, &mu, tables, nil, nil)
		env.OnActivity(ca.CorrectionPlan, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.CorrectionPlanInput) ([]activities.CorrectionSourcePlan, error) {
				var out []activities.CorrectionSourcePlan
				for _, tg := range targets { // as the activity shares the first page among the sources
					out = append(out, bigPage(tg, chunks, 0, max(1, in.PageChunks/len(targets))))
				}
				return out, nil
			})
		env.OnActivity(ca.CorrectionChunk, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in activities.CorrectionChunkInput) (activities.CorrectionResult, error) {
				return activities.CorrectionResult{Source: in.Target.Source, Chunk: in.Chunk.Index, Object: correction.ArchiveName(in.Target.Source, in.Since, in.Chunk.Index),
					Drift: correction.Drift{Compared: 10, Different: 1, Corrections: 1, Keys: map[string][]string{correction.KindDifferent: {strconv.Itoa(in.Chunk.Index * 10)}}}}, nil
			})
		env.OnActivity(ca.CorrectionExtras, mock.Anything, mock.Anything).Return([]activities.CorrectionChunk(nil), nil)
		env.OnActivity(ca.CorrectionLedger, mock.Anything, mock.Anything).Return(
			func(_ context.Context, entries []activities.CorrectionEntry) error { ledger = entries; return nil })
		env.OnActivity(ca.CorrectionRebackfillJobs, mock.Anything, mock.Anything).Return([]activities.RebackfillJob(nil), nil)
		env.ExecuteWorkflow(workflows.CorrectionWorkflow, in)
		var can *workflow.ContinueAsNewError
		err := env.GetWorkflowError()
		if err == nil {
			break
		}
		if !errors.As(err, &can) {
			t.Fatal(err)
		}
		size := 0
		for _, p := range can.Input.Payloads {
			size += len(p.Data)
		}
		var next workflows.CorrectionInput // fresh: decoding into in would keep fields the JSON leaves out
		if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
			t.Fatal(err)
		}
		in = next
		queued := 0
		for _, s := range in.State.Sources {
			queued += len(s.Queue)
		}
		if queued > 64+1500 || size > limit {
			t.Fatalf("run %d continues with %d queued chunks in %d bytes", runs, queued, size)
		}
	}
	b, err := json.Marshal(ledger)
	if err != nil {
		t.Fatal(err)
	}
	archived := 0
	for _, e := range ledger {
		archived += e.Archived
	}
	if len(ledger) != sources || archived != sources*chunks || len(b) > limit {
		t.Errorf("ledger of %d entries, %d objects archived, in %d bytes", len(ledger), archived, len(b))
	}
}

// TestCorrectionChunkRowsDefault: the workflow's default chunk size is
// the corrector's (the workflow package may not import correction), and
// changing it breaks no running history: a recorded run whose input left
// chunkRows to the default (10 000 when it ran; derived here from a
// recorded one by dropping the field) replays on today's default.
func TestCorrectionChunkRowsDefault(t *testing.T) {
	if workflows.DefaultCorrectionChunkRows != correction.DefaultChunkRows {
		t.Fatalf("workflows.DefaultCorrectionChunkRows %d, correction.DefaultChunkRows %d",
			workflows.DefaultCorrectionChunkRows, correction.DefaultChunkRows)
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "correction_can_first.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	started := doc["events"].([]any)[0].(map[string]any)["workflowExecutionStartedEventAttributes"].(map[string]any)
	payload := started["input"].(map[string]any)["payloads"].([]any)[0].(map[string]any)
	var in map[string]any
	if err := json.Unmarshal(must(base64.StdEncoding.DecodeString(payload["data"].(string))), &in); err != nil {
		t.Fatal(err)
	}
	if in["chunkRows"] == nil {
		t.Fatalf("the recorded input %v sets no chunkRows: nothing to derive", in)
	}
	delete(in, "chunkRows")
	payload["data"] = base64.StdEncoding.EncodeToString(must(json.Marshal(in)))
	h, err := client.HistoryFromJSON(bytes.NewReader(must(json.Marshal(doc))), client.HistoryJSONOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(workflows.Correction, workflow.RegisterOptions{Name: workflows.CorrectionWorkflow})
	if err := r.ReplayWorkflowHistoryWithOptions(nil, h, worker.ReplayWorkflowHistoryOptions{OriginalExecution: workflow.Execution{ID: "correction-1"}}); err != nil {
		t.Fatalf("replay with chunkRows left to the default: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
