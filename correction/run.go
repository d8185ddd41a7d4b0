package correction

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tidemark-dev/tidemark/source"
)

// RunInput says what one run corrects.
type RunInput struct {
	// ID names the run in the ledger. Required.
	ID string
	// Sources to correct (concrete names). Default: every table the
	// registry's mysql sources capture.
	Sources []string
	// Keys, if not empty, repairs only these event keys (of the one source
	// in Sources) instead of comparing whole tables.
	Keys []string
}

// Validate reports what is wrong with in.
func (in RunInput) Validate() error {
	if in.ID == "" {
		return errors.New("correction: a run needs an id")
	}
	if len(in.Keys) > 0 && len(in.Sources) != 1 {
		return errors.New("correction: keys repair the keys of exactly one source")
	}
	return nil
}

// RunResult is a run's summary: a ledger entry per source (skipped ones
// with the reason) and the results of the sources corrected.
type RunResult struct {
	ID      string         `json:"id"`
	Started time.Time      `json:"started"`
	Entries []Entry        `json:"entries"`
	Sources []SourceResult `json:"-"`
}

// Skipped lists the sources the run did not correct, with the reasons.
func (r *RunResult) Skipped() []Entry {
	var out []Entry
	for _, e := range r.Entries {
		if e.Skipped != "" {
			out = append(out, e)
		}
	}
	return out
}

// Run corrects the sources of in one after the other in this process
// (Source for each), then writes the ledger and sets the metrics (m may be
// nil). A source that fails — no key, table gone, a type not mapped, MySQL
// unreachable — is recorded as skipped with the error and the others go
// on; Run itself fails only if it cannot list the targets, ctx ends, or the
// ledger cannot be written. progress, if not nil, is called after every
// chunk.
func (c *Corrector) Run(ctx context.Context, reg *source.Config, in RunInput, m *Metrics, progress func(src string, done, total int)) (RunResult, error) {
	res := RunResult{ID: in.ID, Started: time.Now().UTC()}
	if err := in.Validate(); err != nil {
		return res, err
	}
	targets, err := Targets(ctx, c.db, reg, in.Sources)
	if err != nil {
		return res, err
	}
	for _, t := range targets {
		var keys []string
		if len(in.Keys) > 0 {
			keys = in.Keys
		}
		r, err := c.Source(ctx, t, keys, func(done, total int, _ ChunkResult) {
			if progress != nil {
				progress(t.Source, done, total)
			}
		})
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		e := Entry{Run: in.ID, Source: t.Source, Started: res.Started, Drift: r.Drift, Chunks: len(r.Chunks)}
		for _, o := range r.Objects {
			e.AddObject(o)
		}
		if err != nil {
			e.Skipped = err.Error()
		} else {
			res.Sources = append(res.Sources, r)
		}
		res.Entries = append(res.Entries, e)
	}
	if err := WriteLedger(ctx, c.store, res.Entries); err != nil {
		return res, err
	}
	for _, e := range res.Entries {
		m.Observe(e)
	}
	return res, nil
}

// String summarizes the entry in one line.
func (e *Entry) String() string {
	if e.Skipped != "" {
		return fmt.Sprintf("%s: skipped: %s", e.Source, e.Skipped)
	}
	return fmt.Sprintf("%s: compared %d, missing %d, extra %d, different %d, corrections %d, snapshots %d",
		e.Source, e.Compared, e.Missing, e.Extra, e.Different, e.Corrections, e.Snapshots)
}
