// Package parity compares a job's live outputs with what the job gives on
// the same triggers when re-evaluated, and explains each difference by its
// cause.
//
// For every trigger of a range, Compare evaluates the job twice through the
// mode-agnostic core (job.Evaluate), the path live runs, backfills and
// calls share:
//
//   - then: as the live run could have seen it, bounded to what the event
//     center held when the live record was stored (its StoredAt) and with the
//     parameter version the live record carries;
//   - now: as the truth is known now (no bound), with the job's current
//     parameter version;
//
// and compares both with the live record in the feature store, record by
// record (same Record ID). A live record equal to now is in parity. Other
// triggers get one Cause, tried in this order: the live record's job
// version is not the job's (JobVersion); then differs from the live record
// and from the evaluation bounded to what was stored when the trigger was:
// LiveStale if the live run's lineage shows a read the event center does
// not hold (served by the source fallback of FetchStrongNoDelay), else
// Unexplained (the same inputs gave another answer, a determinism bug in
// the job or in tidemark; if only the latter equals it, events stored
// while the live run ran explain it); only the parameter version explains it
// (Params); an event read now was a correction (Correction, naming the
// run from the drift ledger) or was stored after the live run (LateData,
// naming it); none of these (Unexplained).
//
// A trigger without a live record that the live worker gave up on (its
// dead letter, Config.DeadLetters) is LiveStale if that run ended stale (a
// watermark wait timed out), LiveFailed otherwise (failed, or its record
// refused by an output); one without a dead letter is LiveFailed or
// LiveStale when then fails or is stale, LiveMissing when then gives a
// record (the live run never produced: not consumed, or its output lost).
//
// The events each evaluation read are captured by wrapping the store, so
// parity needs no lineage from the job; a job with job.Lineage adds the
// live run's own lineage (job.ColLineage) to each difference.
package parity

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/tidemark-dev/tidemark/correction"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/params"
)

// Cause is why a live output differs from the re-evaluation.
type Cause string

// Causes.
const (
	LateData    Cause = "late-data"
	Correction  Cause = "correction"
	Params      Cause = "params"
	JobVersion  Cause = "job-version"
	LiveMissing Cause = "live-missing"
	LiveFailed  Cause = "live-failed"
	LiveStale   Cause = "live-stale"
	Unexplained Cause = "unexplained"
)

// Causes lists every cause, in the order of the report.
var Causes = []Cause{LateData, Correction, Params, JobVersion, LiveMissing, LiveFailed, LiveStale, Unexplained}

// Registry is what Compare needs of the parameter registry: the current
// version (now), a version's values (then) and the version current at a
// time (then, for a trigger without a live record).
// params.EventCenter and params.Memory satisfy it.
type Registry interface {
	params.Registry
	params.Versions
	params.PointInTime
}

// Config is what Compare reads.
type Config struct {
	Job   *job.Job
	Store eventcenter.Store
	// Params is the job's parameter registry. Nil: every run at the
	// declared defaults, version 0.
	Params Registry
	// DeadLetters are the triggers the job's live worker gave up on. Nil:
	// a missing live record is judged by re-evaluation alone, which cannot
	// see a stale live run (what timed out then is there now): it shows as
	// LiveMissing.
	DeadLetters DeadLetters
	// Examples bounds the differences the report lists per cause (the
	// counts are whole). Default 100.
	Examples int
}

// Late names an event read now that was stored after the live run.
type Late struct {
	Event    eventcenter.ID `json:"event"`
	StoredAt time.Time      `json:"stored_at"`
	// Lateness is how long after its event time the event was stored.
	Lateness time.Duration `json:"lateness"`
	// AfterLive is how long after the live run (its record's StoredAt).
	AfterLive time.Duration `json:"after_live"`
	// Watermark is the source's watermark the event was behind when ingest
	// stored it (its note, ingest.LateOf), and BehindWatermark how far
	// behind: the lateness the source's allowed lateness is judged by.
	// Both zero when ingest noted none: the event was not behind the
	// watermark on arrival (the live run, at an eventual level, ran ahead
	// of the watermark) or was not stored by ingest.
	Watermark       time.Time     `json:"watermark,omitzero"`
	BehindWatermark time.Duration `json:"behind_watermark"`
}

// Diff is one trigger whose live output differs from the re-evaluation.
type Diff struct {
	Trigger  eventcenter.ID `json:"trigger"`
	RecordID string         `json:"record_id"`
	Cause    Cause          `json:"cause"`
	Detail   string         `json:"detail"`
	// Live is the live record (nil if none) and LiveStoredAt when it was
	// stored: the live run's time.
	Live         *job.Record `json:"live,omitempty"`
	LiveStoredAt time.Time   `json:"live_stored_at,omitzero"`
	// Then and Now are the re-evaluations' records (nil if none).
	Then *job.Record `json:"then,omitempty"`
	Now  *job.Record `json:"now,omitempty"`
	// Late: the late events (LateData); Run and Corrected: the correction
	// run and the corrected events (Correction).
	Late      []Late           `json:"late,omitempty"`
	Run       string           `json:"run,omitempty"`
	Corrected []eventcenter.ID `json:"corrected,omitempty"`
	// LiveLineage is the live run's fetch lineage (jobs with job.Lineage);
	// ThenRead and NowRead the events the re-evaluations read (Unexplained
	// only).
	LiveLineage *job.FetchLineage `json:"live_lineage,omitempty"`
	ThenRead    []eventcenter.ID  `json:"then_read,omitempty"`
	NowRead     []eventcenter.ID  `json:"now_read,omitempty"`
	Err         string            `json:"err,omitempty"`
}

// Report is the result of Compare.
type Report struct {
	Job        string    `json:"job"`
	JobVersion string    `json:"job_version"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	// Triggers evaluated; Agree of them in parity (or skipped by both).
	Triggers int `json:"triggers"`
	Agree    int `json:"agree"`
	// Events replayed (triggers of every source, accepted or not).
	Events int           `json:"events"`
	Counts map[Cause]int `json:"counts"`
	Diffs  []Diff        `json:"diffs"`
	Took   time.Duration `json:"took"`
}

// Differences returns the number of triggers that differ.
func (r *Report) Differences() int {
	n := 0
	for _, c := range r.Counts {
		n += c
	}
	return n
}

// Compare re-evaluates cfg.Job on every trigger with event time in [from,
// to) and returns the report.
func Compare(ctx context.Context, cfg Config, from, to time.Time) (*Report, error) {
	start := time.Now()
	j := cfg.Job
	if cfg.Examples <= 0 {
		cfg.Examples = 100
	}
	recs, err := readLive(ctx, cfg.Store, j.Name(), from, to)
	if err != nil {
		return nil, err
	}
	c := &comparer{cfg: cfg, job: j, live: recs}
	if cfg.DeadLetters != nil {
		dls, err := cfg.DeadLetters.GaveUp(ctx, j.Name(), from, to)
		if err != nil {
			return nil, fmt.Errorf("parity: %w", err)
		}
		c.dead = gaveUp(dls)
	}
	rep := &Report{Job: j.Name(), JobVersion: j.Version(), From: from, To: to, Counts: map[Cause]int{}}
	for e, err := range cfg.Store.Replay(ctx, eventcenter.ReplayQuery{Sources: j.Sources(), From: from, To: to}) {
		if err != nil {
			return nil, fmt.Errorf("parity: replay: %w", err)
		}
		rep.Events++
		if !j.Accepts(&e) {
			continue
		}
		rep.Triggers++
		d, err := c.trigger(ctx, e)
		if err != nil {
			return nil, err
		}
		if d == nil {
			rep.Agree++
			continue
		}
		rep.Counts[d.Cause]++
		if rep.Counts[d.Cause] <= cfg.Examples {
			rep.Diffs = append(rep.Diffs, *d)
		}
	}
	rep.Took = time.Since(start)
	return rep, nil
}

// liveRecord is a live record with when it was stored and its lineage.
type liveRecord struct {
	rec      job.Record
	storedAt time.Time
	lineage  *job.FetchLineage
}

// readLive reads the live records of [from, to): the original versions of
// the job's feature events not written by a backfill, with their lineages.
func readLive(ctx context.Context, st eventcenter.Store, name string, from, to time.Time) (map[string]*liveRecord, error) {
	live := map[string]*liveRecord{}
	for e, err := range st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{job.FeatureSource(name)}, From: from, To: to}) {
		if err != nil {
			return nil, fmt.Errorf("parity: read live outputs: %w", err)
		}
		if _, v, _ := job.OriginalPos(e.Pos); v != 0 {
			continue // a replacement, not what the live run stored
		}
		if _, ok := e.After[job.ColBackfill]; ok {
			continue // filled by a backfill, not by a live run
		}
		l, err := job.LineageOf(&e)
		if err != nil {
			return nil, err
		}
		r := job.RecordFromEvent(name, &e)
		live[r.ID] = &liveRecord{rec: r, storedAt: e.StoredAt, lineage: l}
	}
	return live, nil
}

type comparer struct {
	cfg  Config
	job  *job.Job
	live map[string]*liveRecord
	dead map[deadLetterKey]live.DeadLetter // by trigger
	runs map[string][]correction.Entry     // drift ledger entries by source, read once
}

// evaluation is a re-evaluation and the events it read, by identity.
type evaluation struct {
	res  job.Result
	read map[uint64]eventcenter.Event
}

func (c *comparer) evaluate(ctx context.Context, trigger eventcenter.Event, knownAt func(*eventcenter.Event) time.Time, ps job.ParamSource) evaluation {
	rec := &recorder{Store: c.cfg.Store, read: map[uint64]eventcenter.Event{}}
	env := &job.Env{Mode: job.Backfill, Store: rec, KnownAt: knownAt, Params: ps, Outputs: []job.Output{}}
	res, _ := job.Evaluate(ctx, c.job, trigger, env)
	return evaluation{res: res, read: rec.read}
}

func (c *comparer) currentParams() job.ParamSource {
	if c.cfg.Params == nil {
		return nil
	}
	return job.CurrentParams(c.cfg.Params)
}

// versionParams returns the values of the job's version v.
func (c *comparer) versionParams(ctx context.Context, v params.Version) (job.ParamSource, error) {
	if c.cfg.Params == nil || len(c.job.Params()) == 0 {
		return job.FixedParams(v, nil), nil
	}
	vals, err := c.cfg.Params.Version(ctx, c.job.Name(), v)
	if err != nil {
		return nil, fmt.Errorf("parity: parameters of %s version %d: %w", c.job.Name(), v, err)
	}
	return job.FixedParams(v, vals), nil
}

// trigger compares one trigger; nil means in parity.
func (c *comparer) trigger(ctx context.Context, e eventcenter.Event) (*Diff, error) {
	id := job.RecordID(c.job.Name(), e.ID())
	now := c.evaluate(ctx, e, nil, c.currentParams())
	if err := retryable(now.res); err != nil {
		return nil, err
	}
	d := &Diff{Trigger: e.ID(), RecordID: id, Now: now.res.Record}
	lr, ok := c.live[id]
	if dl, gaveUp := c.dead[idKey(e.ID())]; !ok && gaveUp {
		d.Cause, d.Err = LiveFailed, dl.Error
		if dl.Outcome == job.Stale.String() {
			d.Cause = LiveStale
		}
		d.Detail = fmt.Sprintf("the live worker (version %s, parameters %d) gave up: %s, dead-lettered at %s",
			dl.JobVersion, dl.ParamVersion, dl.Outcome, dl.At.UTC().Format(time.RFC3339))
		return d, nil
	}
	if !ok {
		var ps job.ParamSource
		if c.cfg.Params != nil {
			ps = job.ParamsAsOfTrigger(c.cfg.Params)
		}
		then := c.evaluate(ctx, e, job.KnownAtTrigger, ps)
		if err := retryable(then.res); err != nil {
			return nil, err
		}
		d.Then = then.res.Record
		switch then.res.Outcome {
		case job.Failed:
			d.Cause, d.Err, d.Detail = LiveFailed, then.res.Err.Error(), "the run fails on what the live run could see"
		case job.Stale:
			d.Cause, d.Err, d.Detail = LiveStale, then.res.Err.Error(), "the run is stale on what the live run could see"
		case job.OK:
			d.Cause, d.Detail = LiveMissing, "no live record, though the live run could have produced one"
		case job.Skipped:
			if now.res.Outcome == job.Skipped {
				return nil, nil // nothing then, nothing now
			}
			// Nothing then; something now: what changed since?
			return c.explainData(ctx, d, e.StoredAt, then, now)
		}
		return d, nil
	}
	d.Live, d.LiveStoredAt, d.LiveLineage = &lr.rec, lr.storedAt, lr.lineage
	if now.res.Record != nil && sameFeatures(lr.rec.Features, now.res.Record.Features) {
		return nil, nil
	}
	if lr.rec.JobVersion != c.job.Version() {
		d.Cause, d.Detail = JobVersion, fmt.Sprintf("live ran version %s, the job is %s", lr.rec.JobVersion, c.job.Version())
		return d, nil
	}
	ps, err := c.versionParams(ctx, lr.rec.ParamVersion)
	if err != nil {
		return nil, err
	}
	then := c.evaluate(ctx, e, job.KnownAtFixed(lr.storedAt), ps)
	if err := retryable(then.res); err != nil {
		return nil, err
	}
	d.Then = then.res.Record
	if then.res.Record == nil || !sameFeatures(lr.rec.Features, then.res.Record.Features) {
		// Events stored while the live run ran (after its trigger, before
		// its record) may or may not have been read by it: if what was
		// stored when the trigger was gives the live answer, they are the
		// difference.
		before := c.evaluate(ctx, e, job.KnownAtTrigger, ps)
		if err := retryable(before.res); err != nil {
			return nil, err
		}
		if before.res.Record == nil || !sameFeatures(lr.rec.Features, before.res.Record.Features) {
			f, err := c.fallbackRead(ctx, lr)
			if err != nil {
				return nil, err
			}
			if f != nil {
				d.Cause = LiveStale
				d.Detail = fmt.Sprintf("the live run read %s %s as of %s from the source fallback (FetchStrongNoDelay, watermark behind), which the event center does not hold",
					f.Source, f.Key, f.At.UTC().Format(time.RFC3339Nano))
				return d, nil
			}
			return unexplained(d, "the same inputs and parameters give another answer than the live run's", then, now), nil
		}
		return c.explainData(ctx, d, e.StoredAt, before, now)
	}
	if now.res.Record != nil && now.res.ParamVersion != lr.rec.ParamVersion {
		// Parameters changed: is that all? Evaluate the truth known now
		// with the live run's parameters.
		mixed := c.evaluate(ctx, e, nil, ps)
		if err := retryable(mixed.res); err != nil {
			return nil, err
		}
		if mixed.res.Record != nil && sameFeatures(lr.rec.Features, mixed.res.Record.Features) {
			d.Cause, d.Detail = Params, fmt.Sprintf("live used parameter version %d, now %d", lr.rec.ParamVersion, now.res.ParamVersion)
			return d, nil
		}
		now = mixed // the data differ too: explain those
	}
	return c.explainData(ctx, d, lr.storedAt, then, now)
}

// explainData attributes a difference between then and now, evaluated on
// the same parameters, to what the event center learnt after liveAt: a
// correction among the events now read (or among the changes of a key
// then read and now not), else events stored after liveAt.
func (c *comparer) explainData(ctx context.Context, d *Diff, liveAt time.Time, then, now evaluation) (*Diff, error) {
	var changed []eventcenter.Event
	for h, e := range now.read {
		if _, ok := then.read[h]; !ok {
			changed = append(changed, e)
		}
	}
	for h, e := range then.read {
		if _, ok := now.read[h]; ok {
			continue
		}
		// Read then, not now: a later change of its key, up to the
		// trigger's time, hides it (e.g. a delete, or a correction leaving
		// the key absent).
		later, err := c.cfg.Store.History(ctx, eventcenter.HistoryQuery{Source: e.Source, Key: e.Key, From: e.Time, To: d.Trigger.Time.Add(time.Nanosecond)})
		if err != nil {
			return nil, fmt.Errorf("parity: history of %s %s: %w", e.Source, e.Key, err)
		}
		for _, l := range later {
			if l.StoredAt.After(liveAt) {
				changed = append(changed, l)
			}
		}
	}
	slices.SortFunc(changed, func(a, b eventcenter.Event) int { return eventcenter.Compare(&a, &b) })
	changed = slices.CompactFunc(changed, func(a, b eventcenter.Event) bool { return a.ID() == b.ID() })
	for _, e := range changed {
		if e.Op == eventcenter.OpCorrection && e.StoredAt.After(liveAt) {
			d.Corrected = append(d.Corrected, e.ID())
			if d.Run == "" {
				run, err := c.correctionRun(ctx, &e)
				if err != nil {
					return nil, err
				}
				d.Run = run
			}
		}
	}
	if len(d.Corrected) > 0 {
		d.Cause = Correction
		d.Detail = fmt.Sprintf("%d fetched event(s) corrected after the live run, by run %q", len(d.Corrected), d.Run)
		return d, nil
	}
	for _, e := range changed {
		if !e.StoredAt.After(liveAt) {
			continue
		}
		l := Late{Event: e.ID(), StoredAt: e.StoredAt, Lateness: e.StoredAt.Sub(e.Time), AfterLive: e.StoredAt.Sub(liveAt)}
		note, ok, err := ingest.LateOf(ctx, c.cfg.Store, e.ID())
		if err != nil {
			return nil, fmt.Errorf("parity: %w", err)
		}
		if ok {
			l.Watermark, l.BehindWatermark = note.Watermark, note.Behind()
		}
		d.Late = append(d.Late, l)
	}
	if len(d.Late) > 0 {
		first := d.Late[0]
		d.Cause = LateData
		d.Detail = fmt.Sprintf("%d fetched event(s) stored after the live run; first %s %s@%s stored %v after its time, %v after the live run",
			len(d.Late), first.Event.Source, first.Event.Key, first.Event.Time.UTC().Format(time.RFC3339Nano), first.Lateness, first.AfterLive)
		if !first.Watermark.IsZero() {
			d.Detail += fmt.Sprintf(", %v behind its source's watermark when stored", first.BehindWatermark)
		}
		return d, nil
	}
	return unexplained(d, "the answer changed, but nothing the job read changed after the live run", then, now), nil
}

// fallbackRead returns the first as-of fetch of the live run (from its
// lineage) that returned an event the event center does not hold: a read
// the source fallback served (job.Fallback, at FetchStrongNoDelay), whose
// row the event center never got as such. Nil without lineage (a job
// without job.Lineage: such a record shows as unexplained) or if every
// read is the event center's.
func (c *comparer) fallbackRead(ctx context.Context, lr *liveRecord) (*job.Fetch, error) {
	if lr.lineage == nil {
		return nil, nil
	}
	for i := range lr.lineage.Fetches {
		f := &lr.lineage.Fetches[i]
		if f.Kind != job.FetchAsOf || len(f.Events) != 1 {
			continue
		}
		evs, err := c.cfg.Store.History(ctx, eventcenter.HistoryQuery{Source: f.Source, Key: f.Key, From: time.Unix(0, 0), To: f.At.Add(time.Nanosecond)})
		if err != nil {
			return nil, fmt.Errorf("parity: history of %s %s: %w", f.Source, f.Key, err)
		}
		if !slices.ContainsFunc(evs, func(e eventcenter.Event) bool { return job.EventHash(&e) == f.Events[0] }) {
			return f, nil
		}
	}
	return nil, nil
}

// correctionRun names the correction run that stored e: the latest run of
// e's source in the drift ledger started at or before e was stored.
func (c *comparer) correctionRun(ctx context.Context, e *eventcenter.Event) (string, error) {
	if c.runs == nil {
		c.runs = map[string][]correction.Entry{}
	}
	entries, ok := c.runs[e.Source]
	if !ok {
		var err error
		entries, err = correction.ReadLedger(ctx, c.cfg.Store, correction.LedgerQuery{Source: e.Source})
		if err != nil {
			return "", fmt.Errorf("parity: drift ledger of %s: %w", e.Source, err)
		}
		sort.Slice(entries, func(a, b int) bool { return entries[a].Started.Before(entries[b].Started) })
		c.runs[e.Source] = entries
	}
	run := ""
	for _, en := range entries {
		if en.Skipped == "" && !en.Started.After(e.StoredAt) {
			run = en.Run
		}
	}
	if run == "" {
		run = "(not in the drift ledger)"
	}
	return run, nil
}

func unexplained(d *Diff, why string, then, now evaluation) *Diff {
	d.Cause, d.Detail = Unexplained, why
	d.ThenRead, d.NowRead = ids(then.read), ids(now.read)
	if then.res.Err != nil {
		d.Err = then.res.Err.Error()
	}
	return d
}

func ids(read map[uint64]eventcenter.Event) []eventcenter.ID {
	evs := make([]eventcenter.Event, 0, len(read))
	for _, e := range read {
		evs = append(evs, e)
	}
	slices.SortFunc(evs, func(a, b eventcenter.Event) int { return eventcenter.Compare(&a, &b) })
	out := make([]eventcenter.ID, len(evs))
	for i := range evs {
		out[i] = evs[i].ID()
	}
	return out
}

// retryable returns the run's error if it failed on the event center or
// its context: parity must not blame the live run for its own outage.
func retryable(r job.Result) error {
	if r.Retryable() {
		return fmt.Errorf("parity: %s on %s %s@%v: %w", r.Job, r.Trigger.Source, r.Trigger.Key, r.Trigger.Time, r.Err)
	}
	return nil
}

// sameFeatures compares two feature rows by their stored encoding, so a
// record read back from the store equals the one computed.
func sameFeatures(a, b eventcenter.Row) bool {
	if err := codec.CheckRow(a); err != nil {
		return false
	}
	if err := codec.CheckRow(b); err != nil {
		return false
	}
	return bytes.Equal(codec.AppendRow(nil, a), codec.AppendRow(nil, b))
}

// recorder is a job.Store that remembers every event its reads return.
type recorder struct {
	eventcenter.Store
	read map[uint64]eventcenter.Event
}

func (r *recorder) keep(evs ...eventcenter.Event) {
	for i := range evs {
		r.read[job.EventHash(&evs[i])] = evs[i]
	}
}

func (r *recorder) AsOf(ctx context.Context, q eventcenter.AsOf) (eventcenter.Event, error) {
	e, err := r.Store.AsOf(ctx, q)
	if err == nil {
		r.keep(e)
	}
	return e, err
}

func (r *recorder) History(ctx context.Context, q eventcenter.HistoryQuery) ([]eventcenter.Event, error) {
	evs, err := r.Store.History(ctx, q)
	if err == nil {
		r.keep(evs...)
	}
	return evs, err
}

func (r *recorder) Lookup(ctx context.Context, q eventcenter.LookupQuery) ([]eventcenter.Event, error) {
	evs, err := r.Store.Lookup(ctx, q)
	if err == nil {
		r.keep(evs...)
	}
	return evs, err
}
