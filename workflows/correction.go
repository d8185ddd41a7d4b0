package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/activities"
)

// Names of the correction.
const (
	// CorrectionWorkflow is the workflow type of Correction.
	CorrectionWorkflow = "Correction"
	// CorrectionSchedule is the id of the nightly schedule that starts it.
	CorrectionSchedule = "tidemark-correction-nightly"
	// LedgerMemo is the memo field telling where the run's drift ledger is.
	LedgerMemo = "ledger"
)

// Defaults of CorrectionInput.
const (
	// DefaultCorrectionChunkRows is correction.DefaultChunkRows (a test
	// keeps them equal; 10 000 before 2026-12-04). The workflow only
	// passes it to its activities (the plans cut chunks of it, a chunk
	// counts it on its worker), whose inputs a replay does not compare:
	// changing it changes no command of a running history, and a run in
	// flight plans its next pages with the new size, its chunks still
	// tiling the table.
	DefaultCorrectionChunkRows = 50_000
	DefaultCorrectionKeyChunk  = 1000
	// DefaultCorrectionParallelism is the workflow's default for an input
	// that sets none (the stock temporal CLI's '{}'). It stays: a running
	// workflow's history was made with it. tidemark correction run and
	// schedule start runs with CorrectionInFlight (tidemark dev's schedule,
	// created paused, does not).
	DefaultCorrectionParallelism = 4
	// CorrectionInFlight is the parallelism tidemark correction run and
	// schedule give a run: its chunks in flight, of which each worker holds
	// as many as its correction.Options.InFlightRows allow (12 chunks of
	// 50 000 rows by default; the others wait on it, heartbeating). The CDC
	// keeps a MySQL source's watermark ~3 s behind MySQL's clock, and a
	// chunk waits for it holding none of its worker's work slots
	// (correction.Options.Parallelism), so 64 chunks of 10000 rows in
	// flight compared 165k rows/s in process where 4 compared 13k
	// (bench/README.md).
	CorrectionInFlight = 64
	// DefaultCorrectionPageChunks: range chunks planned at once (about
	// 70 KB of plan for integer keys). Part of versionPlanPages.
	DefaultCorrectionPageChunks = 1000
	// DefaultCorrectionChunksPerRun: chunks a run starts before it
	// continues as new (a chunk is 3 to 5 events of history; the server
	// fails a run at 51 200 events). Part of versionPlanPages.
	DefaultCorrectionChunksPerRun = 1000
)

// CorrectionInput asks for a correction run. It is JSON, so the stock CLI
// and a Schedule can start one:
//
//	temporal workflow start --task-queue tidemark --type Correction --input '{}'
type CorrectionInput struct {
	// Sources to correct (concrete names). Default: every table the
	// registry's mysql sources capture.
	Sources []string `json:"sources,omitempty"`
	// Keys, if set, repairs only these keys of the one source in Sources.
	Keys []string `json:"keys,omitempty"`
	// ChunkRows: rows per range chunk. Default DefaultCorrectionChunkRows
	// (50 000).
	ChunkRows int `json:"chunkRows,omitempty"`
	// KeyChunk: keys per key chunk (extra keys, repairs). Default 1000.
	KeyChunk int `json:"keyChunk,omitempty"`
	// Parallelism: the most chunks in flight at once. Most of them wait for
	// the source's watermark; a worker compares at most its
	// correction.Options.Parallelism at a time. Default 4 (tidemark
	// correction run and schedule: CorrectionInFlight).
	Parallelism int `json:"parallelism,omitempty"`
	// HeartbeatTimeout of a chunk: how soon a dead worker's chunk is
	// retried elsewhere. Default 30s.
	HeartbeatTimeout Duration `json:"heartbeatTimeout,omitzero"`
	// NoRebackfill: start no re-backfill (see Rebackfill). Default false:
	// the jobs opted in (job.Rebackfill) that read a source the run
	// changed are backfilled.
	NoRebackfill bool `json:"noRebackfill,omitempty"`
	// RebackfillParallelism: the most re-backfills run at once. Default 2.
	RebackfillParallelism int `json:"rebackfillParallelism,omitempty"`
	// PageChunks: a table's range chunks planned at once (fewer if its
	// keys are long: a page holds at most correction.MaxPageBytes of
	// bounds). The next page is planned when fewer than max(Parallelism,
	// PageChunks/2) chunks are left to start. The first plan holds about
	// Parallelism chunks in all (at least one of each source), so a run
	// of many sources starts soon. Default 1000.
	PageChunks int `json:"pageChunks,omitempty"`
	// MaxChunksPerRun: chunks a workflow run starts before it continues
	// as new (sooner if the server suggests it), once its chunks in
	// flight have ended. Default 1000.
	MaxChunksPerRun int `json:"maxChunksPerRun,omitempty"`
	// State is the run's state carried across continue-as-new; nil for a
	// new run.
	State *CorrectionState `json:"state,omitempty"`
}

func (in *CorrectionInput) setDefaults() {
	if in.ChunkRows <= 0 {
		in.ChunkRows = DefaultCorrectionChunkRows
	}
	if in.KeyChunk <= 0 {
		in.KeyChunk = DefaultCorrectionKeyChunk
	}
	if in.Parallelism <= 0 {
		in.Parallelism = DefaultCorrectionParallelism
	}
	if in.HeartbeatTimeout <= 0 {
		in.HeartbeatTimeout = Duration(DefaultHeartbeatTimeout)
	}
	if in.RebackfillParallelism <= 0 {
		in.RebackfillParallelism = DefaultRebackfillParallelism
	}
	if in.PageChunks <= 0 {
		in.PageChunks = DefaultCorrectionPageChunks
	}
	if in.MaxChunksPerRun <= 0 {
		in.MaxChunksPerRun = DefaultCorrectionChunksPerRun
	}
}

// CorrectionProgress is the answer of the progress query (ProgressQuery)
// and the memo's ProgressMemo of a Correction.
type CorrectionProgress struct {
	// State: "planning", "running", "ledger", "rebackfill", "done".
	State string `json:"state"`
	// Sources in the run; Chunks of all of them (extra-key chunks are
	// added when a source's range chunks are done), Done and Running.
	Sources int     `json:"sources"`
	Chunks  int     `json:"chunks"`
	Done    int     `json:"done"`
	Running int     `json:"running"`
	Percent float64 `json:"percent"`
	// Counts of finished chunks.
	Compared    int `json:"compared"`
	Drifted     int `json:"drifted"`
	Corrections int `json:"corrections"`
	// Skipped sources so far.
	Skipped int       `json:"skipped"`
	Started time.Time `json:"started"`
	Elapsed Duration  `json:"elapsed"`
}

// CorrectionSummary is the result of a Correction: its ledger entries, one
// per source (skipped sources name the reason), and the re-backfills it
// ran.
type CorrectionSummary struct {
	Run        string                       `json:"run"`
	Entries    []activities.CorrectionEntry `json:"entries"`
	Rebackfill []Rebackfill                 `json:"rebackfill,omitempty"`
}

// maxLedgerKeys bounds the keys per kind a ledger entry keeps.
const maxLedgerKeys = 100

const (
	// versionProgressEvery: Correction histories from it publish their
	// progress at most every correctionProgressEvery while running (a
	// publish skipped so is made by a timer when the interval is over),
	// and publish every later state, "failed" too.
	versionProgressEvery workflow.Version = 1
	// correctionProgressEvery is how often a running correction publishes
	// its progress (memo, search attributes); the progress query is
	// always current. Part of versionProgressEvery: changing it changes
	// the commands of running histories.
	correctionProgressEvery = time.Second

	// versionPlanPages: Correction histories from it plan a table's range
	// chunks a page (PageChunks) at a time as they run, and continue as
	// new after MaxChunksPerRun chunks (or when the server suggests it),
	// so no activity result and no run holds every chunk of a big table.
	// Before, one activity planned every chunk of every source, and one
	// run ran them: about 10 000 chunks (100M rows at 10 000 a chunk)
	// reached the server's limit of a history.
	versionPlanPages workflow.Version = 1
)

// CorrectionState is a Correction's state carried across continue-as-new:
// its start, its counts so far, and each source's part.
type CorrectionState struct {
	Started  time.Time               `json:"started"`
	Progress CorrectionProgress      `json:"progress"`
	Sources  []CorrectionSourceState `json:"sources"`
}

// CorrectionSourceState is a source's part of a Correction that continues
// as new: its ledger entry so far, the range chunks planned and not run,
// and where the rest of its table's plan starts.
type CorrectionSourceState struct {
	Target activities.CorrectionTarget `json:"target"`
	Entry  activities.CorrectionEntry  `json:"entry"`
	// Queue: the chunks planned and not yet run, in order.
	Queue []activities.CorrectionChunk `json:"queue,omitempty"`
	// Next: where the rest of the table's range chunks start (nil: all
	// are planned); NextIndex: the index of the first of them.
	Next      [][]byte `json:"next,omitempty"`
	NextIndex int      `json:"nextIndex,omitempty"`
	// Estimate: the table's range chunks in all, from its statistics
	// (progress only).
	Estimate int `json:"estimate,omitempty"`
	// Extras: the extra-key chunks were planned.
	Extras bool `json:"extras,omitempty"`
	// First: the earliest correction's time.
	First time.Time `json:"first,omitzero"`
}

// toPlan tells whether the source has range chunks left to plan.
func (s *CorrectionSourceState) toPlan() bool { return s.Next != nil && s.Entry.Skipped == "" }

// Correction compares the MySQL tables of the registry's sources with the
// event center and corrects it (see package correction): it plans the
// chunks of every source, runs them (Parallelism at once, each retried on
// failure and heartbeating), then each source's extra-key chunks, and
// writes the drift ledger. A big table's range chunks are planned a page
// at a time as they run, and the run continues as new every
// MaxChunksPerRun chunks, after the chunks in flight end. A source whose
// plan or chunk fails for good is skipped, with the reason in its ledger
// entry; the others go on. Then it re-backfills the jobs opted in that
// read a source it changed, as child Backfill workflows, and waits for
// them (see rebackfill).
func Correction(ctx workflow.Context, in CorrectionInput) (CorrectionSummary, error) {
	if len(in.Keys) > 0 && len(in.Sources) != 1 {
		return CorrectionSummary{}, temporal.NewNonRetryableApplicationError("correction: keys repair the keys of exactly one source", "BadInput", nil)
	}
	in.setDefaults()
	logger := workflow.GetLogger(ctx)
	var a *activities.Correction
	info := workflow.GetInfo(ctx)
	run := info.WorkflowExecution.ID
	started := workflow.Now(ctx)
	if in.State != nil {
		started = in.State.Started
	}

	type sourceState struct {
		CorrectionSourceState
		pending int // chunks (and plans) not finished, queued or running
	}
	var sources []*sourceState
	type work struct {
		src   *sourceState
		chunk activities.CorrectionChunk
	}
	var queue []work
	p := CorrectionProgress{State: "planning", Started: started}
	progress := func() CorrectionProgress {
		p.Elapsed = Duration(workflow.Now(ctx).Sub(started))
		all := p.Chunks
		for _, s := range sources {
			if s.toPlan() && s.Estimate > s.NextIndex {
				all += s.Estimate - s.NextIndex // the rest of a big table, not planned yet
			}
		}
		if all > 0 {
			p.Percent = float64(p.Done) * 100 / float64(all)
		}
		return p
	}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (CorrectionProgress, error) { return progress(), nil }); err != nil {
		return CorrectionSummary{}, err
	}
	// Progress is published at most every correctionProgressEvery (from
	// versionProgressEvery on; before, on every chunk's end): each publish
	// is two commands and a visibility write on the server, per chunk.
	// A publish skipped so starts a timer that publishes when the second
	// is over, and every later state is published.
	throttled := workflow.GetVersion(ctx, "progress", workflow.DefaultVersion, versionProgressEvery) >= versionProgressEvery
	var (
		sel       workflow.Selector // the chunk loop's (set when running)
		published time.Time
		catchUp   bool // a timer will publish what was skipped
		publish   func()
	)
	publish = func() {
		now := workflow.Now(ctx)
		if throttled && p.State == "running" && !published.IsZero() && now.Sub(published) < correctionProgressEvery {
			if !catchUp {
				catchUp = true
				sel.AddFuture(workflow.NewTimer(ctx, correctionProgressEvery-now.Sub(published)), func(workflow.Future) {
					catchUp = false
					publish()
				})
			}
			return
		}
		published = now
		q := progress()
		if err := workflow.UpsertTypedSearchAttributes(ctx, SearchProgress.ValueSet(q.Percent), SearchEvents.ValueSet(int64(q.Compared))); err != nil {
			logger.Warn("correction: progress search attributes", "error", err)
		}
		if err := workflow.UpsertMemo(ctx, map[string]any{ProgressMemo: q, LedgerMemo: "tidemark correction report --run " + run}); err != nil {
			logger.Warn("correction: progress memo", "error", err)
		}
	}
	paged := in.State != nil || workflow.GetVersion(ctx, "pages", workflow.DefaultVersion, versionPlanPages) >= versionPlanPages
	failed := func(err error) error {
		if throttled {
			p.State = "failed"
			publish()
		}
		return err
	}

	if st := in.State; st != nil {
		p = st.Progress
		p.State, p.Running = "planning", 0
		for _, ss := range st.Sources {
			s := &sourceState{CorrectionSourceState: ss, pending: len(ss.Queue)}
			for _, ch := range ss.Queue {
				queue = append(queue, work{s, ch})
			}
			s.Queue = nil
			sources = append(sources, s)
		}
	} else {
		planCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: time.Hour,
			HeartbeatTimeout:    time.Duration(in.HeartbeatTimeout),
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
		})
		planIn := activities.CorrectionPlanInput{Sources: in.Sources, Keys: in.Keys, ChunkRows: in.ChunkRows, KeyChunk: in.KeyChunk}
		if paged {
			planIn.PageChunks = min(in.PageChunks, in.Parallelism)
		}
		var plans []activities.CorrectionSourcePlan
		if err := workflow.ExecuteActivity(planCtx, a.CorrectionPlan, planIn).Get(ctx, &plans); err != nil {
			return CorrectionSummary{Run: run}, failed(err)
		}
		for _, pl := range plans {
			s := &sourceState{CorrectionSourceState: CorrectionSourceState{Target: pl.Target, Extras: len(in.Keys) > 0}}
			s.Entry = activities.CorrectionEntry{Run: run, Source: pl.Target.Source, Started: started, Skipped: pl.Err}
			sources = append(sources, s)
			if pl.Err != "" {
				p.Skipped++
				continue
			}
			for _, ch := range pl.Chunks {
				queue = append(queue, work{s, ch})
			}
			s.pending = len(pl.Chunks)
			s.Next, s.NextIndex, s.Estimate = pl.Next, len(pl.Chunks), pl.Estimate
			p.Chunks += len(pl.Chunks)
		}
		p.Sources = len(sources)
	}
	p.State = "running"
	publish()

	chunkCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 6 * time.Hour,
		HeartbeatTimeout:    time.Duration(in.HeartbeatTimeout),
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 10,
		},
	})
	sel = workflow.NewSelector(ctx)
	skip := func(s *sourceState, err error) {
		if s.Entry.Skipped == "" {
			s.Entry.Skipped = errorMessage(err)
			p.Skipped++
			logger.Warn("correction: skipping a source", "source", s.Target.Source, "error", err)
		}
	}
	// planned queues a source's newly planned chunks.
	planned := func(s *sourceState, chunks []activities.CorrectionChunk) {
		for _, ch := range chunks {
			queue = append(queue, work{s, ch})
		}
		s.pending += len(chunks)
		p.Chunks += len(chunks)
	}
	// nextToPlan is the first source with range chunks left to plan (nil:
	// none).
	nextToPlan := func() *sourceState {
		for _, s := range sources {
			if s.toPlan() {
				return s
			}
		}
		return nil
	}
	// refill plans the next page of the first source with range chunks
	// left to plan, when fewer than max(Parallelism, PageChunks/2) chunks
	// are queued and no page is being planned: the queue (carried across
	// continue-as-new) holds at most the first plan and a page and a half
	// however many big sources the run has, and the next page is planned
	// while half a page of chunks runs. A page being planned runs beside
	// the Parallelism chunks.
	paging := false
	refill := func() {
		if paging || len(queue) >= max(in.Parallelism, in.PageChunks/2) {
			return
		}
		s := nextToPlan()
		if s == nil {
			return
		}
		paging = true
		s.pending++
		p.Running++
		f := workflow.ExecuteActivity(chunkCtx, a.CorrectionPlanPage, activities.CorrectionPageInput{
			Target: s.Target, ChunkRows: in.ChunkRows,
			Page: activities.CorrectionPage{From: s.Next, First: s.NextIndex, Chunks: in.PageChunks},
		})
		sel.AddFuture(f, func(f workflow.Future) {
			paging = false
			s.pending--
			p.Running--
			var pl activities.CorrectionSourcePlan
			if err := f.Get(ctx, &pl); err != nil {
				skip(s, err)
				return
			}
			s.Next = pl.Next
			s.NextIndex += len(pl.Chunks)
			planned(s, pl.Chunks)
		})
	}
	// finished is called when a chunk (or the extras plan) of s ends.
	var finished func(s *sourceState)
	finished = func(s *sourceState) {
		if s.pending > 0 || s.Next != nil || s.Extras || s.Entry.Skipped != "" {
			return
		}
		s.Extras = true
		s.pending++
		p.Running++
		f := workflow.ExecuteActivity(chunkCtx, a.CorrectionExtras, activities.CorrectionExtrasInput{Target: s.Target, First: s.Entry.Chunks, Since: started})
		sel.AddFuture(f, func(f workflow.Future) {
			s.pending--
			p.Running--
			var chunks []activities.CorrectionChunk
			if err := f.Get(ctx, &chunks); err != nil {
				skip(s, err)
				return
			}
			planned(s, chunks)
		})
	}
	startedHere := 0 // chunks this run started
	// continuing: start no more chunks; once those in flight have ended,
	// continue as new (a run that started none goes on, whatever the
	// server suggests).
	continuing := func() bool {
		return paged && startedHere > 0 && (startedHere >= in.MaxChunksPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested())
	}
	for len(queue) > 0 || p.Running > 0 || (paged && !continuing() && nextToPlan() != nil) {
		if paged && !continuing() {
			refill()
		}
		for p.Running < in.Parallelism && len(queue) > 0 && !continuing() {
			w := queue[0]
			queue = queue[1:]
			if w.src.Entry.Skipped != "" {
				w.src.pending--
				p.Done++
				continue
			}
			p.Running++
			startedHere++
			f := workflow.ExecuteActivity(chunkCtx, a.CorrectionChunk, activities.CorrectionChunkInput{Target: w.src.Target, Chunk: w.chunk, Since: started, ChunkRows: in.ChunkRows})
			sel.AddFuture(f, func(f workflow.Future) {
				p.Running--
				p.Done++
				w.src.pending--
				var r activities.CorrectionResult
				if err := f.Get(ctx, &r); err != nil {
					skip(w.src, err)
					return
				}
				w.src.Entry.Chunks++
				if r.Object != "" {
					w.src.Entry.AddObject(r.Object)
				}
				w.src.Entry.Add(r.Drift, maxLedgerKeys)
				if !r.First.IsZero() && (w.src.First.IsZero() || r.First.Before(w.src.First)) {
					w.src.First = r.First
				}
				p.Compared += r.Compared
				p.Drifted += r.Drifted()
				p.Corrections += r.Corrections
				finished(w.src)
			})
			if paged && !continuing() {
				refill()
			}
		}
		if p.Running == 0 {
			if len(queue) > 0 && continuing() {
				break
			}
			continue // only chunks of skipped sources were left
		}
		sel.Select(ctx)
		publish()
	}
	if len(queue) > 0 || nextToPlan() != nil {
		// Continue as new: every activity of this run has ended, the
		// chunks not run yet go with the state.
		for _, w := range queue {
			w.src.Queue = append(w.src.Queue, w.chunk)
		}
		st := &CorrectionState{Started: started, Progress: p}
		for _, s := range sources {
			st.Sources = append(st.Sources, s.CorrectionSourceState)
		}
		next := in
		next.State = st
		logger.Info("correction: continuing as new", "done", p.Done, "chunks", p.Chunks)
		return CorrectionSummary{}, workflow.NewContinueAsNewError(ctx, CorrectionWorkflow, next)
	}

	p.State = "ledger"
	if throttled {
		publish()
	}
	sum := CorrectionSummary{Run: run}
	for _, s := range sources {
		sum.Entries = append(sum.Entries, s.Entry)
	}
	ledgerCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10},
	})
	if err := workflow.ExecuteActivity(ledgerCtx, a.CorrectionLedger, sum.Entries).Get(ctx, nil); err != nil {
		return sum, failed(err)
	}
	if workflow.GetVersion(ctx, "rebackfill", workflow.DefaultVersion, versionRebackfill) >= versionRebackfill && !in.NoRebackfill {
		var changes []RebackfillSource
		for _, s := range sources {
			if s.Entry.Corrections > 0 && !s.First.IsZero() {
				changes = append(changes, RebackfillSource{Source: s.Target.Source, Keys: s.Entry.Corrections, First: s.First})
			}
		}
		p.State = "rebackfill"
		if throttled {
			publish()
		}
		rs, err := rebackfill(ctx, run, changes, in.RebackfillParallelism, in.HeartbeatTimeout, func(rs []Rebackfill) {
			if err := workflow.UpsertMemo(ctx, map[string]any{RebackfillMemo: rs}); err != nil {
				logger.Warn("correction: re-backfill memo", "error", err)
			}
		})
		sum.Rebackfill = rs
		if err != nil {
			return sum, failed(err)
		}
	}
	p.State = "done"
	publish()
	return sum, nil
}
