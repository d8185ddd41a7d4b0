package activities

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/tidemark-dev/tidemark/correction"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/source"
)

// The correction's types, named here so that the workflow (which may import
// activities, not correction) can hold them.
type (
	CorrectionTarget = correction.Target
	CorrectionChunk  = correction.Chunk
	CorrectionResult = correction.ChunkResult
	CorrectionEntry  = correction.Entry
	CorrectionDrift  = correction.Drift
	CorrectionPage   = correction.Page
)

// Correction holds the correction's dependencies: the MySQL server the
// registry's mysql sources live on, and the event center.
type Correction struct {
	// DB reads MySQL (correction.Open). Required.
	DB *sql.DB
	// Store is the event center. Required.
	Store eventcenter.Store
	// Sources is the registry. Required.
	Sources *source.Config
	// Options tune the comparison (zone, snapshots, watermark timeout);
	// chunk sizes come from the workflow's input.
	Options correction.Options
	// Metrics, if not nil, are set from each ledger entry written.
	Metrics *correction.Metrics
	// Heartbeats, if set (workers.Register sets the worker's client),
	// sends a chunk's resume point to the server directly before its first
	// write, and the chunk writes only once it is there. Nil (the activity
	// test environment): activity.RecordHeartbeat, which the SDK may hold
	// back for up to 0.8 × the heartbeat timeout after an earlier
	// heartbeat, so a crash in that window leaves the retry no point.
	Heartbeats HeartbeatClient

	once sync.Once
	c    *correction.Corrector
}

// corrector is the worker's one Corrector: its index of a source (a replay
// of the whole source) serves every chunk of a run that this worker runs,
// and its chunks' marks spare the extras a scan of the table.
func (a *Correction) corrector() *correction.Corrector {
	a.once.Do(func() { a.c = correction.New(a.DB, a.Store, a.Options) })
	return a.c
}

// CorrectionPlanInput asks for the chunks of a run.
type CorrectionPlanInput struct {
	Sources   []string `json:"sources,omitempty"` // default: every mysql source's table
	Keys      []string `json:"keys,omitempty"`    // a repair of these keys of the one source
	ChunkRows int      `json:"chunkRows"`
	KeyChunk  int      `json:"keyChunk"`
	// PageChunks, if not 0, plans at most this many range chunks in all,
	// shared among the sources (at least one each); the rest come from
	// CorrectionPlanPage, from each source's Next on.
	PageChunks int `json:"pageChunks,omitempty"`
}

// CorrectionSourcePlan is one source's part of a run: its range (or key)
// chunks, or why it cannot be corrected (Err).
type CorrectionSourcePlan struct {
	Target CorrectionTarget  `json:"target"`
	Chunks []CorrectionChunk `json:"chunks,omitempty"`
	// Next, if not nil, is the key the rest of the table's chunks start
	// at: plan them with CorrectionPlanPage.
	Next [][]byte `json:"next,omitempty"`
	// Estimate, with Next, is the table's range chunks in all, from the
	// server's estimate of its rows (0: unknown), for progress.
	Estimate int    `json:"estimate,omitempty"`
	Err      string `json:"err,omitempty"`
}

// CorrectionPlan lists the run's sources and cuts each table into chunks.
// A source that cannot be corrected (no key, table gone, unmapped type,
// an error reading it) is listed with Err; naming a source that does not
// exist fails the activity without retry.
func (a *Correction) CorrectionPlan(ctx context.Context, in CorrectionPlanInput) ([]CorrectionSourcePlan, error) {
	ctx, stop := heartbeatEvery(ctx, heartbeatInterval(ctx), func() any { return nil })
	defer stop()
	targets, err := correction.Targets(ctx, a.DB, a.Sources, in.Sources)
	if errors.Is(err, correction.ErrNoTable) {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), "UnknownSource", err)
	}
	if err != nil {
		return nil, err
	}
	var out []CorrectionSourcePlan
	for _, t := range targets {
		p := CorrectionSourcePlan{Target: t}
		schema, err := correction.LoadSchema(ctx, a.DB, t)
		if err == nil && len(in.Keys) == 0 && len(out) == 0 {
			// The first source's chunks run first: its index is built
			// on this worker while MySQL plans (on another worker, it is
			// built again there, by the first chunk that asks).
			a.corrector().Warm(t.Source, schema)
		}
		if err == nil {
			if len(in.Keys) > 0 {
				p.Chunks, err = correction.KeyChunks(schema, in.Keys, in.KeyChunk, 0)
			} else {
				page := correction.Page{}
				if in.PageChunks > 0 {
					page.Chunks = max(1, in.PageChunks/len(targets))
				}
				p.Chunks, p.Next, err = correction.PlanPage(ctx, a.DB, schema, in.ChunkRows, page)
				if p.Next != nil {
					rows := int64(cmp.Or(max(in.ChunkRows, 0), correction.DefaultChunkRows))
					p.Estimate = int((correction.EstimateRows(ctx, a.DB, schema) + rows - 1) / rows)
				}
			}
		}
		if err != nil {
			p.Err = err.Error()
		}
		out = append(out, p)
	}
	return out, nil
}

// CorrectionPageInput asks for the next page of a source's range chunks.
type CorrectionPageInput struct {
	Target    CorrectionTarget `json:"target"`
	Page      CorrectionPage   `json:"page"`
	ChunkRows int              `json:"chunkRows"`
}

// CorrectionPlanPage plans the next page of a source's range chunks
// (correction.PlanPage): a big table is planned a page at a time, as its
// chunks run, so no activity result and no workflow run holds all of them.
// A source that became uncorrectable fails without retry.
func (a *Correction) CorrectionPlanPage(ctx context.Context, in CorrectionPageInput) (CorrectionSourcePlan, error) {
	ctx, stop := heartbeatEvery(ctx, heartbeatInterval(ctx), func() any { return nil })
	defer stop()
	schema, err := correction.LoadSchema(ctx, a.DB, in.Target)
	if err != nil {
		return CorrectionSourcePlan{}, permanentIfSource(err)
	}
	p := CorrectionSourcePlan{Target: in.Target}
	if p.Chunks, p.Next, err = correction.PlanPage(ctx, a.DB, schema, in.ChunkRows, in.Page); err != nil {
		return CorrectionSourcePlan{}, err
	}
	return p, nil
}

// CorrectionChunkInput is one chunk of one source.
type CorrectionChunkInput struct {
	Target CorrectionTarget `json:"target"`
	Chunk  CorrectionChunk  `json:"chunk"`
	// Since is the run's start: corrections stored since are the run's
	// (a retried chunk counts those of its dead attempt; Chunk.Since).
	Since time.Time `json:"since,omitzero"`
	// ChunkRows is the run's rows per range chunk, which the chunk counts
	// against its worker's correction.Options.InFlightRows (0, as in
	// chunks scheduled by workflow code before it was sent, and their
	// retries: the worker's ChunkRows).
	ChunkRows int `json:"chunkRows,omitempty"`
}

// CorrectionChunk compares and corrects one chunk (correction.Corrector.Chunk),
// heartbeating while it waits for the watermark and compares. A retry
// (after a worker died or MySQL went away) reads a new snapshot, writes
// only what is still wrong, and counts what the dead attempt corrected
// (stored since the run started), so its events and result equal a clean
// run's.
// A source that became uncorrectable (table dropped, a column of an
// unmapped type added) fails without retry.
func (a *Correction) CorrectionChunk(ctx context.Context, in CorrectionChunkInput) (CorrectionResult, error) {
	// The heartbeat carries the point of the chunk's first attempt: a
	// retry after a crash resumes there (correction.Chunk.Resume).
	var point atomic.Pointer[correction.Point]
	if activity.HasHeartbeatDetails(ctx) {
		var p correction.Point
		if err := activity.GetHeartbeatDetails(ctx, &p); err == nil && p.File != "" {
			in.Chunk.Resume = &p
			point.Store(&p)
		}
	}
	ctx, stop := heartbeatEvery(ctx, heartbeatInterval(ctx), func() any {
		if p := point.Load(); p != nil {
			return *p
		}
		return nil
	})
	defer stop()
	c := a.corrector()
	schema, err := correction.LoadSchema(ctx, a.DB, in.Target)
	if err != nil {
		return CorrectionResult{}, permanentIfSource(err)
	}
	if in.Chunk.Rows == 0 {
		in.Chunk.Rows = in.ChunkRows
	}
	if in.Chunk.Since.IsZero() {
		in.Chunk.Since = in.Since
	}
	if a.Options.Archive != nil && in.Chunk.Archive == "" {
		// Named here, not in the plan (which would carry a name a chunk
		// through the workflow's state): dated the run's start, so a run
		// across midnight archives into one folder.
		date := in.Since
		if date.IsZero() {
			date = time.Now()
		}
		in.Chunk.Archive = correction.ArchiveName(in.Target.Source, date, in.Chunk.Index)
	}
	return c.ChunkReporting(ctx, in.Target, schema, in.Chunk, func(p correction.Point) error {
		if !point.CompareAndSwap(nil, &p) {
			return nil // a retry's: the dead attempt's point stays the one to resume at
		}
		activity.RecordHeartbeat(ctx, p) // and the ticker's heartbeats carry it on
		if a.Heartbeats == nil {
			return nil
		}
		if err := a.Heartbeats.RecordActivityHeartbeat(ctx, activity.GetInfo(ctx).TaskToken, p); err != nil {
			return fmt.Errorf("correction: recording the chunk's resume point: %w", err)
		}
		return nil
	})
}

// CorrectionExtrasInput asks for the extra-key chunks of a source.
type CorrectionExtrasInput struct {
	Target CorrectionTarget `json:"target"`
	First  int              `json:"first"` // the index of the first chunk: the number of range chunks
	// Since is the run's start, as its chunks were given it: with it, the
	// marks those chunks left on this worker's index spare a scan of the
	// table (zero: the table is scanned).
	Since time.Time `json:"since,omitzero"`
}

// CorrectionExtras returns key chunks of the keys the event center has and
// MySQL has not (correction.Corrector.Extras).
func (a *Correction) CorrectionExtras(ctx context.Context, in CorrectionExtrasInput) ([]CorrectionChunk, error) {
	ctx, stop := heartbeatEvery(ctx, heartbeatInterval(ctx), func() any { return nil })
	defer stop()
	schema, err := correction.LoadSchema(ctx, a.DB, in.Target)
	if err != nil {
		return nil, permanentIfSource(err)
	}
	return a.corrector().Extras(ctx, in.Target, schema, in.First, in.Since)
}

// CorrectionLedger writes the run's ledger entries to the event center
// (idempotent: a retry stores nothing new) and sets the metrics.
func (a *Correction) CorrectionLedger(ctx context.Context, entries []CorrectionEntry) error {
	if err := correction.WriteLedger(ctx, a.Store, entries); err != nil {
		return err
	}
	for _, e := range entries {
		a.Metrics.Observe(e)
	}
	return nil
}

func permanentIfSource(err error) error {
	if errors.Is(err, correction.ErrNoTable) || errors.Is(err, correction.ErrNoKey) || errors.Is(err, correction.ErrUnmappedType) {
		return temporal.NewNonRetryableApplicationError(err.Error(), "Uncorrectable", err)
	}
	return err
}

// heartbeatInterval is how often a correction activity heartbeats: a
// third of its heartbeat timeout, at most 5 s.
func heartbeatInterval(ctx context.Context) time.Duration {
	d := 5 * time.Second
	if t := activity.GetInfo(ctx).HeartbeatTimeout; t > 0 && t/3 < d {
		d = max(t/3, 10*time.Millisecond)
	}
	return d
}

// heartbeatEvery records a heartbeat with details() (nil: none) every d
// until stop is called, so a chunk waiting on the watermark or on MySQL
// stays alive while its worker does; the returned context ends when
// Temporal cancels the activity.
func heartbeatEvery(ctx context.Context, d time.Duration, details func() any) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if v := details(); v != nil {
					activity.RecordHeartbeat(ctx, v)
				} else {
					activity.RecordHeartbeat(ctx)
				}
			}
		}
	}()
	return ctx, func() { close(done); cancel() }
}
