package parity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
)

// Affected is a live record that a late (or corrected) event changes: its
// run, had the event been stored in time, would have read it.
type Affected struct {
	Trigger      eventcenter.ID `json:"trigger"`
	RecordID     string         `json:"record_id"`
	LiveStoredAt time.Time      `json:"live_stored_at"`
	// By are the late events the run reads now.
	By []eventcenter.ID `json:"by"`
}

// Impact lists the live records of [from, to) (by trigger time) that the
// late events change: those whose run was stored before the event and, re-
// run now, would read it or no longer read what it hides (a delete). For a
// job with job.Lineage the live run's own fetches say which runs to look
// at: a fetch of the event's source and key (or, for a lookup, an index
// value of its row before or after) at or after its time, affected if
// asking the store that fetch again returns the event or, the lineage not
// truncated, other events than it returned to the live run. For a
// job without lineage, every run after the event of a job that declares
// (job.Reads) or triggers on the event's source is re-evaluated as known
// now and as the live run could have seen it, and affected if it reads the
// event now or read an event of its key then that it does not read now
// (e.g. the late event deletes it). late are events as stored (with
// StoredAt), e.g. from an ingest's late-event report or a correction run.
func Impact(ctx context.Context, cfg Config, late []eventcenter.Event, from, to time.Time) ([]Affected, error) {
	j := cfg.Job
	live, err := readLive(ctx, cfg.Store, j.Name(), from, to)
	if err != nil {
		return nil, err
	}
	c := &comparer{cfg: cfg, job: j, live: live}
	keys := &indexKeys{st: cfg.Store, cols: map[string][]eventcenter.Index{}}
	var out []Affected
	for id, lr := range live {
		var a *Affected
		var then, now map[uint64]eventcenter.Event // the run re-evaluated, if needed
		for k := range late {
			e := &late[k]
			if !e.StoredAt.After(lr.storedAt) || e.Time.After(lr.rec.Trigger.Time) {
				continue // known to the live run, or after its trigger
			}
			var reads bool
			if lr.lineage != nil {
				reads, err = lineageReads(ctx, cfg.Store, keys, lr.lineage, e)
			} else if slices.Contains(j.Reads(), e.Source) || j.Triggered(e.Source) {
				if now == nil {
					now, err = c.reads(ctx, lr, false)
				}
				_, reads = now[job.EventHash(e)]
				if !reads && err == nil {
					if then == nil {
						then, err = c.reads(ctx, lr, true)
					}
					reads = hides(then, now, e)
				}
			}
			if err != nil {
				return nil, err
			}
			if reads {
				if a == nil {
					a = &Affected{Trigger: lr.rec.Trigger, RecordID: id, LiveStoredAt: lr.storedAt}
				}
				a.By = append(a.By, e.ID())
			}
		}
		if a != nil {
			out = append(out, *a)
		}
	}
	slices.SortFunc(out, func(a, b Affected) int {
		x := eventcenter.Event{Source: a.Trigger.Source, Key: a.Trigger.Key, Time: a.Trigger.Time, Pos: a.Trigger.Pos}
		y := eventcenter.Event{Source: b.Trigger.Source, Key: b.Trigger.Key, Time: b.Trigger.Time, Pos: b.Trigger.Pos}
		return eventcenter.Compare(&x, &y)
	})
	return out, nil
}

// lineageReads reports whether a fetch of l that e may change (of e's
// source and key, or for a lookup of an index value of e's row before or
// after, asked at or after e's time), asked again now, answers otherwise:
// it returns e, or, the lineage holding what it returned to the live run,
// other events than those (e.g. fewer: e deletes a row the live run read).
func lineageReads(ctx context.Context, st eventcenter.Store, keys *indexKeys, l *job.FetchLineage, e *eventcenter.Event) (bool, error) {
	h := job.EventHash(e)
	for _, f := range l.Fetches {
		if f.Source != e.Source || f.At.Before(e.Time) {
			continue
		}
		var evs []eventcenter.Event
		var err error
		switch f.Kind {
		case job.FetchAsOf:
			if f.Key != e.Key {
				continue
			}
			var got eventcenter.Event
			if got, err = st.AsOf(ctx, eventcenter.AsOf{Source: f.Source, Key: f.Key, Time: f.At}); err == nil {
				evs = []eventcenter.Event{got}
			}
		case job.FetchHistory:
			if f.Key != e.Key {
				continue
			}
			// (The lineage keeps no window: a history that began after e
			// is taken to read it.)
			return true, nil
		case job.FetchLookup:
			index, value, _ := strings.Cut(f.Key, "=")
			in, kerr := keys.has(ctx, e, index, value)
			if kerr != nil || !in {
				return false, kerr
			}
			evs, err = st.Lookup(ctx, eventcenter.LookupQuery{Source: f.Source, Index: index, Value: value, Time: f.At})
		}
		if errors.Is(err, eventcenter.ErrNotFound) {
			evs, err = nil, nil
		}
		if err != nil {
			return false, fmt.Errorf("parity: fetch %s %s %s again: %w", f.Kind, f.Source, f.Key, err)
		}
		got := make([]uint64, len(evs))
		for i := range evs {
			got[i] = job.EventHash(&evs[i])
		}
		if slices.Contains(got, h) {
			return true, nil
		}
		if !l.Truncated && !sameSet(got, f.Events) {
			return true, nil
		}
	}
	return false, nil
}

// sameSet reports whether a and b hold the same hashes (a is sorted).
func sameSet(a, b []uint64) bool {
	slices.Sort(a)
	return slices.Equal(a, slices.Sorted(slices.Values(b)))
}

// reads re-evaluates lr's trigger as known now or, if then, as the live
// run could have seen it (as known when its record was stored, with its
// parameter version), and returns what it read (never nil).
func (c *comparer) reads(ctx context.Context, lr *liveRecord, then bool) (map[uint64]eventcenter.Event, error) {
	trigger, err := c.triggerEvent(ctx, lr.rec.Trigger)
	if err != nil {
		return nil, err
	}
	var knownAt func(*eventcenter.Event) time.Time // now
	ps := c.currentParams()
	if then {
		knownAt = job.KnownAtFixed(lr.storedAt)
		if ps, err = c.versionParams(ctx, lr.rec.ParamVersion); err != nil {
			return nil, err
		}
	}
	ev := c.evaluate(ctx, trigger, knownAt, ps)
	if err := retryable(ev.res); err != nil {
		return nil, err
	}
	return ev.read, nil
}

// hides reports whether e hides from now an event of its key that then
// read (e.g. e deletes it).
func hides(then, now map[uint64]eventcenter.Event, e *eventcenter.Event) bool {
	for h, r := range then {
		if _, ok := now[h]; !ok && r.Source == e.Source && r.Key == e.Key {
			return true
		}
	}
	return false
}

// triggerEvent reads the event id back from the store.
func (c *comparer) triggerEvent(ctx context.Context, id eventcenter.ID) (eventcenter.Event, error) {
	e, ok, err := stored(ctx, c.cfg.Store, id)
	if err == nil && !ok {
		err = fmt.Errorf("parity: trigger %s %s@%v %v is not in the event center", id.Source, id.Key, id.Time, id.Pos)
	}
	return e, err
}

// stored reads the event id back from st, and false if st does not hold
// it.
func stored(ctx context.Context, st eventcenter.Reader, id eventcenter.ID) (eventcenter.Event, bool, error) {
	evs, err := st.History(ctx, eventcenter.HistoryQuery{Source: id.Source, Key: id.Key, From: id.Time, To: id.Time.Add(time.Nanosecond)})
	if err != nil {
		return eventcenter.Event{}, false, fmt.Errorf("parity: read %s %s: %w", id.Source, id.Key, err)
	}
	for _, e := range evs {
		if e.Pos == id.Pos {
			return e, true, nil
		}
	}
	return eventcenter.Event{}, false, nil
}

// indexKeys tells whether an event's row, before or after, has a value in
// an index, reading each source's declarations once.
type indexKeys struct {
	st   eventcenter.Store
	cols map[string][]eventcenter.Index
}

func (k *indexKeys) has(ctx context.Context, e *eventcenter.Event, index, value string) (bool, error) {
	ixs, ok := k.cols[e.Source]
	if !ok {
		var err error
		if ixs, err = k.st.ListIndexes(ctx, e.Source); err != nil {
			return false, fmt.Errorf("parity: indexes of %s: %w", e.Source, err)
		}
		k.cols[e.Source] = ixs
	}
	for _, ix := range ixs {
		if ix.Name != index {
			continue
		}
		for _, row := range []eventcenter.Row{e.Before, e.After} {
			if v, ok := eventcenter.IndexValue(row[ix.Column]); ok && v == value {
				return true, nil
			}
		}
	}
	return false, nil
}

// Rerun re-evaluates exactly the affected triggers as known now, with the
// job's current parameters, and publishes each record as a new version of
// the live one (outputs.Replace) whose Supersedes names the live record
// ("<ID>@<its stored-at>"), in the feature store of cfg.Store, marked as
// written by name (job.ColBackfill). The job must opt in
// (job.RerunLateData). A trigger whose re-run is not OK is returned in
// failed and not published.
//
// Rerun is idempotent: a retry under the same name stores nothing again
// (outputs.Replace), and a trigger whose latest record (the live one, or
// another re-run's or backfill's) equals what it computes (same features,
// job and parameter versions) is counted unchanged, not published again.
// Re-runs of one trigger at once (the LateImpact runs of two late events)
// may take the same version, the store keeping one of them: Rerun reads
// its records back and re-runs the triggers whose latest record is not
// its own or equal to it, up to rerunAttempts times. The counts are the
// first attempt's.
func Rerun(ctx context.Context, cfg Config, affected []Affected, name string) (outputs.WriteCounts, []job.Result, error) {
	j := cfg.Job
	if !j.RerunsLateData() {
		return outputs.WriteCounts{}, nil, fmt.Errorf("parity: job %s does not re-run late data (job.RerunLateData)", j.Name())
	}
	c := &comparer{cfg: cfg, job: j}
	var counts outputs.WriteCounts
	var failed []job.Result
	for attempt := 1; len(affected) > 0; attempt++ {
		if attempt > rerunAttempts {
			return counts, failed, fmt.Errorf("parity: %d re-run records of %s lost to concurrent writers %d times", len(affected), j.Name(), rerunAttempts)
		}
		out := outputs.FeatureStore(cfg.Store, "").Backfill(cfg.Store, outputs.Replace, name)
		var recs []job.Record
		var sent []Affected
		unchanged := 0
		for _, a := range affected {
			trigger, err := c.triggerEvent(ctx, a.Trigger)
			if err != nil {
				return outputs.WriteCounts{}, nil, err
			}
			ev := c.evaluate(ctx, trigger, nil, c.currentParams())
			if err := retryable(ev.res); err != nil {
				return outputs.WriteCounts{}, nil, err
			}
			if ev.res.Record == nil {
				failed = append(failed, ev.res)
				continue
			}
			r := *ev.res.Record
			latest, by, err := latestRecord(ctx, cfg.Store, &r)
			if err != nil {
				return outputs.WriteCounts{}, nil, err
			}
			if latest != nil && by != name && sameRecord(latest, &r) {
				unchanged++
				continue
			}
			r.Lineage = nil
			r.Supersedes = a.RecordID + "@" + a.LiveStoredAt.UTC().Format(time.RFC3339Nano)
			recs, sent = append(recs, r), append(sent, a)
		}
		if err := out.Write(ctx, recs); err != nil {
			return outputs.WriteCounts{}, nil, fmt.Errorf("parity: publish re-run records: %w", err)
		}
		if attempt == 1 {
			counts = out.Counts()
			counts.Unchanged += unchanged
		}
		affected = nil
		for i := range recs {
			latest, _, err := latestRecord(ctx, cfg.Store, &recs[i])
			if err != nil {
				return outputs.WriteCounts{}, nil, err
			}
			if latest == nil || !sameRecord(latest, &recs[i]) {
				affected = append(affected, sent[i]) // another writer's record took its version
			}
		}
	}
	return counts, failed, nil
}

// rerunAttempts bounds how often Rerun publishes a trigger's record again
// after losing its version to a concurrent writer.
const rerunAttempts = 3

// sameRecord reports whether a and b have the same features, job version
// and parameter version.
func sameRecord(a, b *job.Record) bool {
	return a.JobVersion == b.JobVersion && a.ParamVersion == b.ParamVersion && sameFeatures(a.Features, b.Features)
}

// latestRecord returns the newest version of r's record in the feature
// store (nil if none) and its writer (job.ColBackfill; "" for a live run).
func latestRecord(ctx context.Context, st eventcenter.Reader, r *job.Record) (*job.Record, string, error) {
	src := job.FeatureSource(r.Job)
	evs, err := st.History(ctx, eventcenter.HistoryQuery{Source: src, Key: r.Entity, From: r.Trigger.Time, To: r.Trigger.Time.Add(time.Nanosecond)})
	if err != nil {
		return nil, "", fmt.Errorf("parity: read the records of %s %s: %w", src, r.Entity, err)
	}
	var latest *job.Record
	var by string
	top := uint32(0)
	for i := range evs {
		h := job.RecordFromEvent(r.Job, &evs[i])
		if h.ID != r.ID {
			continue
		}
		if _, v, _ := job.OriginalPos(evs[i].Pos); latest == nil || v > top {
			latest, top = &h, v
			by, _ = evs[i].After[job.ColBackfill].(string)
		}
	}
	return latest, by, nil
}

// LateEvents returns the events of sources with event time in [from, to)
// that were stored more than lateness after their time (corrections
// included: they are stored when the correction runs), in replay order:
// the candidates for Impact.
func LateEvents(ctx context.Context, st eventcenter.Store, sources []string, from, to time.Time, lateness time.Duration) ([]eventcenter.Event, error) {
	var late []eventcenter.Event
	for e, err := range st.Replay(ctx, eventcenter.ReplayQuery{Sources: sources, From: from, To: to}) {
		if err != nil {
			return nil, fmt.Errorf("parity: late events: %w", err)
		}
		if e.StoredAt.Sub(e.Time) > lateness {
			late = append(late, e)
		}
	}
	return late, nil
}

// ImpactOf is Impact for one late event, known by its identity (e.g. from
// ingest's OnLate): it reads the event back, for when it was stored, and
// looks at the live records of the triggers from its time to its storing
// (a live run stored before the event ran on a trigger no later than that,
// unless the trigger's source clock runs ahead of the event center's).
// horizon bounds that range: an event stored more than horizon after its
// time is ErrTooLate, left to a backfill or `tidemark parity impact`.
func ImpactOf(ctx context.Context, cfg Config, id eventcenter.ID, horizon time.Duration) (eventcenter.Event, []Affected, error) {
	c := &comparer{cfg: cfg, job: cfg.Job}
	e, err := c.triggerEvent(ctx, id)
	if err != nil {
		return eventcenter.Event{}, nil, err
	}
	to := e.StoredAt.Add(time.Nanosecond)
	if to.Sub(e.Time) > horizon {
		return e, nil, fmt.Errorf("%w: %s %s@%s stored %v after its time, beyond %v", ErrTooLate, e.Source, e.Key,
			e.Time.UTC().Format(time.RFC3339Nano), e.StoredAt.Sub(e.Time), horizon)
	}
	affected, err := Impact(ctx, cfg, []eventcenter.Event{e}, e.Time, to)
	return e, affected, err
}

// ErrTooLate: a late event's impact range is beyond the horizon asked.
var ErrTooLate = errors.New("parity: event too late for an automatic impact run")

// ImpactSources returns the sources whose late events may change cfg.Job's
// live records of [from, to): its trigger sources, those it declares
// (job.Reads) and, for a job with job.Lineage, those its live runs of the
// range fetched. A job with neither lineage nor declared reads gets its
// trigger sources only: what else it reads is unknown to parity.
func ImpactSources(ctx context.Context, cfg Config, from, to time.Time) ([]string, error) {
	j := cfg.Job
	srcs := append(slices.Clone(j.Sources()), j.Reads()...)
	if j.RecordsLineage() {
		live, err := readLive(ctx, cfg.Store, j.Name(), from, to)
		if err != nil {
			return nil, err
		}
		for _, lr := range live {
			if lr.lineage == nil {
				continue
			}
			for _, f := range lr.lineage.Fetches {
				srcs = append(srcs, f.Source)
			}
		}
	}
	slices.Sort(srcs)
	return slices.Compact(srcs), nil
}

// NotedLateEvents returns the events of sources with event time in [from,
// to) that ingest stored behind their source's watermark (its notes,
// ingest.LateSource), as stored (with StoredAt), in replay order: the
// candidates for Impact by the source's own allowed lateness, where
// LateEvents judges by one lateness for all. A note whose event is not
// stored (ingest stores the notes first; the store refused the event, or
// ingest is about to store it) is passed over.
func NotedLateEvents(ctx context.Context, st eventcenter.Store, sources []string, from, to time.Time) ([]eventcenter.Event, error) {
	noteSources := make([]string, len(sources))
	for i, s := range sources {
		noteSources[i] = ingest.LateSource(s)
	}
	var late []eventcenter.Event
	for n, err := range st.Replay(ctx, eventcenter.ReplayQuery{Sources: noteSources, From: from, To: to}) {
		if err != nil {
			return nil, fmt.Errorf("parity: late notes: %w", err)
		}
		e, ok, err := stored(ctx, st, eventcenter.ID{Source: strings.TrimPrefix(n.Source, ingest.LateSource("")), Key: n.Key, Time: n.Time, Pos: n.Pos})
		if err != nil {
			return nil, err
		}
		if ok {
			late = append(late, e)
		}
	}
	return late, nil
}
