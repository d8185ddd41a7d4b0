// Package catalog is tidemark's metadata center for jobs: what jobs exist
// and what each one is — its name, version, owner, trigger sources and
// filters, the sources its fetches read, its parameters, outputs and
// consistency level. Together with the source registry it is the one place
// that says what exists.
//
// Processes that run jobs (the Temporal worker, the live worker, the dev
// stack) [Publish] their jobs' definitions at start; tooling ([List],
// [Get]: `tidemark jobs`, `GET /v1/jobs`) reads them, and a backfill
// refuses a job the catalog does not know.
//
// # Storage contract
//
// The catalog is events of [Source] in the event center: key the job name,
// event time when the definition was published, After row {"definition":
// the Definition as JSON}. A job's history is the history of its
// definitions; the latest event is the current one.
//
//   - Publish appends an event only when a job's definition differs from
//     its latest stored one, so publishing an unchanged job (every restart
//     of every worker) stores nothing.
//   - Revisions count changes: the first definition of a job is revision 1
//     and each different definition after it the next. Two processes
//     publishing one new definition at once may both store it; readers
//     fold consecutive equal definitions into one revision, so the catalog
//     reads the same either way.
//   - Two processes running different definitions of one job (a rolling
//     deploy) alternate the latest; the catalog says what was published
//     last, and each revision when.
//
// Reads see every published event (no watermark to wait for).
package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/params"
)

// Source holds the catalog's events.
const Source = "tidemark.catalog"

// ErrNotFound: the catalog does not know the job.
var ErrNotFound = errors.New("catalog: job not found")

// Definition is what the catalog says about a job.
type Definition struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Owner   string `json:"owner,omitempty"`
	// Triggers are the trigger sources with their filters' descriptions.
	Triggers []Trigger `json:"triggers"`
	// Reads are the sources the job declares it fetches (job.Reads).
	Reads []string `json:"reads,omitempty"`
	// Params are the parameter declarations; Duration values are written
	// as text ("72h0m0s").
	Params []params.Decl `json:"params,omitempty"`
	// Outputs are the job's own outputs (a mode may add or replace them:
	// a backfill's sink).
	Outputs []Output `json:"outputs,omitempty"`
	// Consistency is the job's level (job.Level's String).
	Consistency string `json:"consistency"`
	// Rebackfill is the job's opt-in to re-backfills after a correction
	// (job.Rebackfill); nil if it did not opt in.
	Rebackfill *Rebackfill `json:"rebackfill,omitempty"`
}

// Rebackfill is a job's re-backfill opt-in (job.RebackfillOptions, defaults
// filled in).
type Rebackfill struct {
	Sink  string `json:"sink"`
	Write string `json:"write"`
	// MaxRange as text ("168h0m0s").
	MaxRange string `json:"maxRange"`
}

// Sources returns the sources the job triggers on and reads, triggers
// first, each once.
func (d *Definition) Sources() []string {
	var out []string
	for _, t := range d.Triggers {
		out = append(out, t.Source)
	}
	for _, r := range d.Reads {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// Trigger is one trigger source of a job.
type Trigger struct {
	Source  string   `json:"source"`
	Filters []string `json:"filters,omitempty"`
}

// Output is one output of a job: its name (job.Output's Name, e.g.
// "kafka:scores") and kind (the name up to its first ':', e.g. "kafka").
type Output struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// Entry is a job's current definition in the catalog.
type Entry struct {
	Definition
	// Revision is 1 for the job's first definition, one more for each
	// change after it.
	Revision int `json:"revision"`
	// Published is when this revision was first published.
	Published time.Time `json:"published"`
}

// Describe returns the definition of j.
func Describe(j *job.Job) Definition {
	d := Definition{Name: j.Name(), Version: j.Version(), Owner: j.Owner(), Reads: j.Reads(), Consistency: j.Level().String()}
	if o, ok := j.Rebackfill(); ok {
		d.Rebackfill = &Rebackfill{Sink: o.Sink, Write: o.Write, MaxRange: o.MaxRange.String()}
	}
	for _, t := range j.Triggers() {
		tr := Trigger{Source: t.Source}
		for _, f := range t.Filters {
			tr.Filters = append(tr.Filters, f.String())
		}
		d.Triggers = append(d.Triggers, tr)
	}
	for _, p := range j.Params() {
		for _, v := range []*any{&p.Default, &p.Min, &p.Max} {
			if dur, ok := (*v).(time.Duration); ok {
				*v = dur.String()
			}
		}
		d.Params = append(d.Params, p)
	}
	for _, o := range j.Outputs() {
		name := o.Name()
		kind, _, _ := strings.Cut(name, ":")
		d.Outputs = append(d.Outputs, Output{Name: name, Kind: kind})
	}
	return d
}

// Store is what the catalog needs of the event center.
type Store interface {
	eventcenter.Appender
	eventcenter.Reader
	eventcenter.Replayer
}

// publishMu serializes this process's Publish calls, so that they store
// each change once; across processes readers fold repeats.
var publishMu sync.Mutex

// Publish stores the definitions of jobs that differ from the catalog's,
// and returns the names of those it stored (none when nothing changed).
// It is idempotent.
func Publish(ctx context.Context, store Store, jobs ...*job.Job) ([]string, error) {
	publishMu.Lock()
	defer publishMu.Unlock()
	var changed []string
	for _, j := range jobs {
		def := Describe(j)
		enc, err := json.Marshal(def)
		if err != nil {
			return changed, fmt.Errorf("catalog: job %s: %w", def.Name, err)
		}
		now := time.Now().UTC()
		op := eventcenter.OpInsert
		cur, err := store.AsOf(ctx, eventcenter.AsOf{Source: Source, Key: def.Name, Time: eventcenter.MaxTime})
		switch {
		case err == nil:
			if s, _ := cur.After["definition"].(string); s == string(enc) {
				continue
			}
			op = eventcenter.OpUpdate
			if !now.After(cur.Time) { // a clock behind the last publisher's
				now = cur.Time.Add(time.Nanosecond)
			}
		case !errors.Is(err, eventcenter.ErrNotFound):
			return changed, fmt.Errorf("catalog: reading job %s: %w", def.Name, err)
		}
		ev := eventcenter.Event{Source: Source, Key: def.Name, Time: now, Op: op, After: eventcenter.Row{"definition": string(enc)}}
		if err := store.Append(ctx, []eventcenter.Event{ev}); err != nil {
			return changed, fmt.Errorf("catalog: publishing job %s: %w", def.Name, err)
		}
		changed = append(changed, def.Name)
	}
	return changed, nil
}

// Get returns the current entry of the job named name, or ErrNotFound.
func Get(ctx context.Context, store Store, name string) (Entry, error) {
	if name == "" {
		return Entry{}, fmt.Errorf("%w: empty name", ErrNotFound)
	}
	evs, err := store.History(ctx, eventcenter.HistoryQuery{Source: Source, Key: name, From: eventcenter.AllTime.From, To: eventcenter.AllTime.To})
	if err != nil {
		return Entry{}, fmt.Errorf("catalog: reading job %s: %w", name, err)
	}
	var f folder
	for i := range evs {
		if err := f.add(&evs[i]); err != nil {
			return Entry{}, err
		}
	}
	e, ok := f.entries[name]
	if !ok {
		return Entry{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return *e, nil
}

// List returns the current entry of every job in the catalog, by name.
func List(ctx context.Context, store Store) ([]Entry, error) {
	var f folder
	for ev, err := range store.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{Source}, From: eventcenter.AllTime.From, To: eventcenter.AllTime.To}) {
		if err != nil {
			return nil, fmt.Errorf("catalog: reading: %w", err)
		}
		if err := f.add(&ev); err != nil {
			return nil, err
		}
	}
	out := make([]Entry, 0, len(f.entries))
	for _, e := range f.entries {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Names returns the names of the jobs in the catalog, sorted.
func Names(ctx context.Context, store Store) ([]string, error) {
	es, err := List(ctx, store)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.Name
	}
	return names, nil
}

// folder folds a time-ordered stream of catalog events into the current
// entry per job.
type folder struct {
	entries map[string]*Entry
	raw     map[string]string // the current definition's JSON per job
}

func (f *folder) add(ev *eventcenter.Event) error {
	if f.entries == nil {
		f.entries, f.raw = map[string]*Entry{}, map[string]string{}
	}
	s, _ := ev.After["definition"].(string)
	if prev, ok := f.raw[ev.Key]; ok && prev == s {
		return nil // a repeat of the current definition
	}
	var def Definition
	if err := json.Unmarshal([]byte(s), &def); err != nil {
		return fmt.Errorf("catalog: job %s at %v: stored definition: %w", ev.Key, ev.Time, err)
	}
	rev := 1
	if e, ok := f.entries[ev.Key]; ok {
		rev = e.Revision + 1
	}
	f.entries[ev.Key] = &Entry{Definition: def, Revision: rev, Published: ev.Time.UTC()}
	f.raw[ev.Key] = s
	return nil
}
