package outputs

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
)

// WriteMode says what a FeatureStoreOutput does with a record whose
// trigger already has one in the feature store.
type WriteMode string

// Write modes.
const (
	// Append (the live mode) appends every record without reading: a record
	// whose identity is stored already is dropped by the store (the first
	// copy wins), unseen and uncounted.
	Append WriteMode = ""
	// Fill writes only the records whose trigger has none yet (initialising
	// a new job's features) and counts the others unchanged.
	Fill WriteMode = "fill"
	// Replace writes a new version of every record (after a fix, new
	// parameters or corrected data): see job.ReplacementPos. The old
	// version stays readable as known at its time (AsOf with a KnownAt
	// before the replacement was stored); a latest read returns the new one.
	// A record whose trigger has none yet is written as Fill would.
	Replace WriteMode = "replace"
)

// ParseWriteMode reads a mode's name: "" (Append), "fill" or "replace".
func ParseWriteMode(s string) (WriteMode, error) {
	switch m := WriteMode(s); m {
	case Append, Fill, Replace:
		return m, nil
	}
	return "", fmt.Errorf("outputs: write mode %q: want \"fill\" or \"replace\"", s)
}

// WriteCounts count what a FeatureStoreOutput did with the records given to
// Write, by outcome.
type WriteCounts struct {
	// Written: records stored where the trigger had none (every record in
	// Append mode, which cannot tell).
	Written int `json:"written"`
	// Unchanged: records not stored because the trigger had one (Fill). A
	// record a redone segment finds stored by its own backfill counts as
	// what that backfill did with it (Written or Replaced), once.
	Unchanged int `json:"unchanged"`
	// Replaced: records stored as a new version of the trigger's record.
	Replaced int `json:"replaced"`
}

// Add adds c's counts to w.
func (w *WriteCounts) Add(c WriteCounts) {
	w.Written += c.Written
	w.Unchanged += c.Unchanged
	w.Replaced += c.Replaced
}

// FeatureStoreOutput appends records to the event center as feature events
// (see job.Record.Event).
type FeatureStoreOutput struct {
	store    eventcenter.Appender
	reader   eventcenter.Reader // Fill and Replace
	source   string
	mode     WriteMode
	backfill string

	written, unchanged, replaced atomic.Int64
}

var (
	_ job.Output     = (*FeatureStoreOutput)(nil)
	_ job.Idempotent = (*FeatureStoreOutput)(nil)
)

// FeatureStore writes records to store, under source, or when source is
// "" under each record's job.FeatureSource(job) ("feature.<job>").
//
// In Append mode (the live mode), a record with a fetch lineage (a job with
// job.Lineage) carries it in its feature event's column job.ColLineage; the
// backfill modes store no lineage.
//
// Appends are idempotent per (entity, trigger time, trigger position), so a
// retried trigger stores nothing new. A record recomputed by another job
// version for the same trigger is ignored too: to write it, use a Backfill
// output in Replace mode.
func FeatureStore(store eventcenter.Appender, source string) *FeatureStoreOutput {
	return &FeatureStoreOutput{store: store, source: source}
}

// Backfill returns an output writing where o writes, in mode, for the
// backfill named backfill (its workflow ID), with counts of its own. Its
// events carry job.ColBackfill = backfill, so that a segment redone after a
// crash finds its own records and stores no second version: Fill and
// Replace are idempotent per backfill. Fill and Replace read store before
// writing (one History read of the entity at the trigger time per record).
func (o *FeatureStoreOutput) Backfill(store eventcenter.Store, mode WriteMode, backfill string) *FeatureStoreOutput {
	return &FeatureStoreOutput{store: store, reader: store, source: o.source, mode: mode, backfill: backfill}
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

// Counts returns what Write did so far.
func (o *FeatureStoreOutput) Counts() WriteCounts {
	return WriteCounts{Written: int(o.written.Load()), Unchanged: int(o.unchanged.Load()), Replaced: int(o.replaced.Load())}
}

// Write implements job.Output: one atomic append of the batch (of the
// records the mode keeps).
func (o *FeatureStoreOutput) Write(ctx context.Context, recs []job.Record) error {
	evs := make([]eventcenter.Event, 0, len(recs))
	var c WriteCounts
	// versions remembers the version a replacement of this batch took per
	// (source, entity, time), so two triggers of one entity at one time
	// get the same version, in trigger order.
	versions := map[eventcenter.ID]uint32{}
	for i := range recs {
		r := &recs[i]
		src := o.source
		if src == "" {
			src = job.FeatureSource(r.Job)
		}
		e := r.Event(src)
		if o.backfill != "" {
			e.After[job.ColBackfill] = o.backfill
		}
		if o.mode == Append {
			evs = append(evs, e)
			if r.Lineage != nil {
				e.After[job.ColLineage] = r.Lineage.MarshalBinary()
			}
			c.Written++
			continue
		}
		have, err := o.reader.History(ctx, eventcenter.HistoryQuery{Source: src, Key: e.Key, From: e.Time, To: e.Time.Add(time.Nanosecond)})
		if err != nil {
			return fmt.Errorf("outputs: feature store %s: read %s@%v: %w", src, e.Key, e.Time, err)
		}
		// found: the trigger has a record; mine: one this backfill
		// stored (a segment redone after a crash), of version mineV.
		found, mine, mineV, top := false, false, uint32(0), uint32(0)
		for k := range have {
			h := &have[k]
			pos, v, _ := job.OriginalPos(h.Pos)
			top = max(top, v)
			if pos != r.Trigger.Pos || h.After[job.ColTriggerSource] != r.Trigger.Source || h.After[job.ColTriggerKey] != r.Trigger.Key {
				continue
			}
			if b, _ := h.After[job.ColBackfill].(string); b == o.backfill {
				mine, mineV = true, v
			} else {
				found = true
			}
		}
		switch {
		case mine && mineV == 0: // stored by this backfill where none was
			c.Written++
		case mine:
			c.Replaced++
		case !found:
			c.Written++
			evs = append(evs, e)
		case o.mode == Fill:
			c.Unchanged++
		default:
			at := eventcenter.ID{Source: src, Key: e.Key, Time: e.Time}
			v, ok := versions[at]
			if !ok {
				v = top + 1
				versions[at] = v
			}
			if e.Pos, err = job.ReplacementPos(e.Pos, v); err != nil {
				return fmt.Errorf("outputs: feature store %s: %s@%v: %w", src, e.Key, e.Time, err)
			}
			c.Replaced++
			evs = append(evs, e)
		}
	}
	if len(evs) > 0 {
		if err := o.store.Append(ctx, evs); err != nil {
			return err
		}
	}
	o.written.Add(int64(c.Written))
	o.unchanged.Add(int64(c.Unchanged))
	o.replaced.Add(int64(c.Replaced))
	return nil
}
