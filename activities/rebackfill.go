package activities

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tidemark-dev/tidemark/catalog"
)

// RebackfillJob is a job opted into re-backfills (job.Rebackfill), as its
// catalog entry says, with the sources it triggers on or reads among those
// asked for.
type RebackfillJob struct {
	Job     string   `json:"job"`
	Sources []string `json:"sources"`
	// Sink, Write and MaxRange are the job's job.RebackfillOptions.
	Sink     string        `json:"sink"`
	Write    string        `json:"write"`
	MaxRange time.Duration `json:"maxRange"`
}

// CorrectionRebackfillJobs lists, by name, the catalog's jobs opted into
// re-backfills that trigger on or read any of sources (names compared as
// they are). An entry whose opt-in does not parse is an error naming it.
func (a *Correction) CorrectionRebackfillJobs(ctx context.Context, sources []string) ([]RebackfillJob, error) {
	entries, err := catalog.List(ctx, a.Store)
	if err != nil {
		return nil, err
	}
	var out []RebackfillJob
	for _, e := range entries {
		if e.Rebackfill == nil {
			continue
		}
		var reads []string
		for _, s := range e.Sources() {
			if slices.Contains(sources, s) {
				reads = append(reads, s)
			}
		}
		if len(reads) == 0 {
			continue
		}
		d, err := time.ParseDuration(e.Rebackfill.MaxRange)
		if err != nil {
			return nil, fmt.Errorf("correction: job %s: rebackfill max range: %w", e.Name, err)
		}
		out = append(out, RebackfillJob{Job: e.Name, Sources: reads, Sink: e.Rebackfill.Sink, Write: e.Rebackfill.Write, MaxRange: d})
	}
	return out, nil
}
