package outputs

import (
	"context"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
)

// FeatureStoreOutput appends records to the event center as feature events
// (see job.Record.Event).
type FeatureStoreOutput struct {
	store  eventcenter.Appender
	source string
}

var (
	_ job.Output     = (*FeatureStoreOutput)(nil)
	_ job.Idempotent = (*FeatureStoreOutput)(nil)
)

// FeatureStore writes records to store, under source, or when source is
// "" under each record's job.FeatureSource(job) ("feature.<job>").
//
// Appends are idempotent per (entity, trigger time, trigger position), so a
// retried trigger stores nothing new. A record recomputed by another job
// version for the same trigger is ignored too: write a new version's
// backfill to another source or to files.
func FeatureStore(store eventcenter.Appender, source string) *FeatureStoreOutput {
	return &FeatureStoreOutput{store: store, source: source}
}

// Name implements job.Output.
func (o *FeatureStoreOutput) Name() string {
	if o.source == "" {
		return "featurestore"
	}
	return "featurestore:" + o.source
}

// Idempotent implements job.Idempotent.
func (o *FeatureStoreOutput) Idempotent() {}

// Write implements job.Output: one atomic append of the batch.
func (o *FeatureStoreOutput) Write(ctx context.Context, recs []job.Record) error {
	evs := make([]eventcenter.Event, len(recs))
	for i := range recs {
		src := o.source
		if src == "" {
			src = job.FeatureSource(recs[i].Job)
		}
		evs[i] = recs[i].Event(src)
	}
	return o.store.Append(ctx, evs)
}
