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
	DefaultCorrectionChunkRows = 10000
	DefaultCorrectionKeyChunk  = 1000
	// DefaultCorrectionParallelism is the workflow's default for an input
	// that sets none (the stock temporal CLI's '{}'). It stays: a running
	// workflow's history was made with it. tidemark correction run and
	// schedule start runs with CorrectionInFlight (tidemark dev's schedule,
	// created paused, does not).
	DefaultCorrectionParallelism = 4
	// CorrectionInFlight is the parallelism tidemark correction run and
	// schedule give a run: its chunks in flight, of which each worker holds
	// at most its correction.Options.InFlight. The CDC keeps a MySQL
	// source's watermark ~3 s behind MySQL's clock, and a chunk waits for
	// it holding none of its worker's work slots
	// (correction.Options.Parallelism), so 64 chunks of 10000 rows in
	// flight compared 165k rows/s in process where 4 compared 13k
	// (bench/README.md).
	CorrectionInFlight = 64
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
	// ChunkRows: rows per range chunk. Default 10000.
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
)

// Correction compares the MySQL tables of the registry's sources with the
// event center and corrects it (see package correction): it plans the
// chunks of every source, runs them (Parallelism at once, each retried on
// failure and heartbeating), then each source's extra-key chunks, and
// writes the drift ledger. A source whose plan or chunk fails for good is
// skipped, with the reason in its ledger entry; the others go on. Then it
// re-backfills the jobs opted in that read a source it changed, as child
// Backfill workflows, and waits for them (see rebackfill).
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

	type sourceState struct {
		target  activities.CorrectionTarget
		entry   activities.CorrectionEntry
		pending int       // chunks not finished
		extras  bool      // the extra-key chunks were planned
		first   time.Time // the earliest correction's time
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
		if p.Chunks > 0 {
			p.Percent = float64(p.Done) * 100 / float64(p.Chunks)
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

	planCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    time.Duration(in.HeartbeatTimeout),
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	var plans []activities.CorrectionSourcePlan
	err := workflow.ExecuteActivity(planCtx, a.CorrectionPlan, activities.CorrectionPlanInput{
		Sources: in.Sources, Keys: in.Keys, ChunkRows: in.ChunkRows, KeyChunk: in.KeyChunk,
	}).Get(ctx, &plans)
	if err != nil {
		if throttled {
			p.State = "failed"
			publish()
		}
		return CorrectionSummary{Run: run}, err
	}
	for _, pl := range plans {
		s := &sourceState{target: pl.Target, extras: len(in.Keys) > 0}
		s.entry = activities.CorrectionEntry{Run: run, Source: pl.Target.Source, Started: started, Skipped: pl.Err}
		sources = append(sources, s)
		if pl.Err != "" {
			p.Skipped++
			continue
		}
		for _, ch := range pl.Chunks {
			queue = append(queue, work{s, ch})
		}
		s.pending = len(pl.Chunks)
		p.Chunks += len(pl.Chunks)
	}
	p.Sources = len(sources)
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
		if s.entry.Skipped == "" {
			s.entry.Skipped = errorMessage(err)
			p.Skipped++
			logger.Warn("correction: skipping a source", "source", s.target.Source, "error", err)
		}
	}
	// finished is called when a chunk (or the extras plan) of s ends.
	var finished func(s *sourceState)
	finished = func(s *sourceState) {
		if s.pending > 0 || s.extras || s.entry.Skipped != "" {
			return
		}
		s.extras = true
		s.pending++
		p.Running++
		f := workflow.ExecuteActivity(chunkCtx, a.CorrectionExtras, activities.CorrectionExtrasInput{Target: s.target, First: s.entry.Chunks, Since: started})
		sel.AddFuture(f, func(f workflow.Future) {
			s.pending--
			p.Running--
			var chunks []activities.CorrectionChunk
			if err := f.Get(ctx, &chunks); err != nil {
				skip(s, err)
				return
			}
			for _, ch := range chunks {
				queue = append(queue, work{s, ch})
			}
			s.pending += len(chunks)
			p.Chunks += len(chunks)
		})
	}
	for len(queue) > 0 || p.Running > 0 {
		for p.Running < in.Parallelism && len(queue) > 0 {
			w := queue[0]
			queue = queue[1:]
			if w.src.entry.Skipped != "" {
				w.src.pending--
				p.Done++
				continue
			}
			p.Running++
			f := workflow.ExecuteActivity(chunkCtx, a.CorrectionChunk, activities.CorrectionChunkInput{Target: w.src.target, Chunk: w.chunk, Since: started})
			sel.AddFuture(f, func(f workflow.Future) {
				p.Running--
				p.Done++
				w.src.pending--
				var r activities.CorrectionResult
				if err := f.Get(ctx, &r); err != nil {
					skip(w.src, err)
					return
				}
				w.src.entry.Chunks++
				if r.Object != "" {
					w.src.entry.Objects = append(w.src.entry.Objects, r.Object)
				}
				w.src.entry.Add(r.Drift, maxLedgerKeys)
				if !r.First.IsZero() && (w.src.first.IsZero() || r.First.Before(w.src.first)) {
					w.src.first = r.First
				}
				p.Compared += r.Compared
				p.Drifted += r.Drifted()
				p.Corrections += r.Corrections
				finished(w.src)
			})
		}
		if p.Running == 0 {
			continue // only chunks of skipped sources were left
		}
		sel.Select(ctx)
		publish()
	}

	p.State = "ledger"
	if throttled {
		publish()
	}
	sum := CorrectionSummary{Run: run}
	for _, s := range sources {
		sum.Entries = append(sum.Entries, s.entry)
	}
	ledgerCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10},
	})
	if err := workflow.ExecuteActivity(ledgerCtx, a.CorrectionLedger, sum.Entries).Get(ctx, nil); err != nil {
		if throttled {
			p.State = "failed"
			publish()
		}
		return sum, err
	}
	if workflow.GetVersion(ctx, "rebackfill", workflow.DefaultVersion, versionRebackfill) >= versionRebackfill && !in.NoRebackfill {
		var changes []RebackfillSource
		for _, s := range sources {
			if s.entry.Corrections > 0 && !s.first.IsZero() {
				changes = append(changes, RebackfillSource{Source: s.target.Source, Keys: s.entry.Corrections, First: s.first})
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
			if throttled {
				p.State = "failed"
				publish()
			}
			return sum, err
		}
	}
	p.State = "done"
	publish()
	return sum, nil
}
