package job

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/params"
)

// Logic is a job's main function. It reads the trigger and fetches through
// c, and returns the features to output, or nil to output nothing for this
// trigger (Outcome Skipped). Column names starting with '_' are reserved.
//
// Logic must be deterministic in what it fetches: the same trigger over the
// same stored events gives the same features, in every mode. It must not
// keep state between runs (runs of one job may be concurrent). It may be
// called more than once for one trigger, and only the last call's result
// counts: a retried chunk runs it again, and on a remote store (HBase) it
// runs once per as-of read it makes plus once, a read failing with a
// private error until it is read in a batch with the other runs' (see
// EvaluateAll). A logic that goes on after a failed fetch is fine; one that
// retries a failed fetch without bound never ends.
type Logic func(c *Context) (eventcenter.Row, error)

// Filter selects the trigger events a job runs on. Make one with Ops or
// Where; its description is published in the job's catalog entry.
type Filter struct {
	desc   string
	accept func(e *eventcenter.Event) bool
}

// Where is a Filter accepting the events for which accept returns true;
// desc says which, for people and tooling (e.g. "amount > 1000").
func Where(desc string, accept func(e *eventcenter.Event) bool) Filter {
	return Filter{desc: desc, accept: accept}
}

// String returns the filter's description.
func (f Filter) String() string { return f.desc }

// Accept reports whether the filter accepts e.
func (f Filter) Accept(e *eventcenter.Event) bool { return f.accept(e) }

// TriggerSpec is one trigger source of a job and its filters: an event of
// Source triggers the job when every filter accepts it.
type TriggerSpec struct {
	Source  string
	Filters []Filter
}

// Level is a consistency level: what a run waits for before it trusts the
// event center to hold what it fetches. See the package documentation.
type Level uint8

// Consistency levels. A run never reads after its trigger's time, so of
// two related events at times t1 < t2 only the run on the later one can
// see the other; what each level adds is when that run is sure to. Every
// guarantee here assumes the stored trigger (the live worker appends it
// before the run) and honest watermarks (eventcenter.Watermarks).
const (
	// Eventual (the default): read what is stored when the fetch runs. A
	// run sees every event stored before its fetch, at or before the fetch
	// time. So of two related events with one event time (one transaction)
	// processed concurrently, at least one run sees both. Of events with
	// different times, the run on the later one sees the earlier only if
	// the earlier was stored first: when the later one is processed first
	// (its stream or partition ahead), no run sees both. Use it where a
	// missing related event is acceptable.
	Eventual Level = iota
	// TriggerStrong: before the logic runs, wait until the trigger source's
	// watermark reaches the trigger time T. Every fetch of the trigger's own
	// source as of T then sees every event of that source at or before T,
	// whatever the processing order (e.g. every order of a user, triggered
	// by an order). Fetches of other sources are as under Eventual.
	TriggerStrong
	// FetchStrong: each fetch first waits until the fetched source's
	// watermark reaches the fetch time t, so it sees every event of that
	// source at or before t: complete, whatever the processing order or
	// skew between streams. Of two related events, the run on the later
	// one (by event time; both, at one time) always sees the other. A wait
	// that outlasts the job's wait timeout fails the fetch with ErrStale.
	FetchStrong
	// FetchStrongNoDelay: as FetchStrong (the same completeness), but when
	// an as-of fetch finds the fetched source's watermark behind, it reads
	// the row from the source itself (MySQL by primary key, see
	// Env.Fallback) instead of waiting, within the fallback's rate limit.
	// Fetches the fallback cannot serve (history, lookups, over the rate,
	// rows changed after the fetch time) wait as with FetchStrong.
	FetchStrongNoDelay
)

var levelNames = [...]string{"eventual", "trigger-strong", "fetch-strong", "fetch-strong-no-delay"}

func (l Level) valid() bool { return int(l) < len(levelNames) }

func (l Level) String() string {
	if l.valid() {
		return levelNames[l]
	}
	return fmt.Sprintf("level(%d)", uint8(l))
}

// ParseLevel returns the level named s (as printed by String).
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if n == s {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("job: unknown consistency level %q", s)
}

// Job is a defined job: its trigger sources, the main logic, outputs,
// parameters and a consistency level. A Job is immutable and safe for
// concurrent use.
type Job struct {
	name        string
	version     string
	owner       string
	triggers    []TriggerSpec
	reads       []string
	logic       Logic
	outputs     []Output
	decls       []params.Decl
	level       Level
	waitTimeout time.Duration
	entity      func(e *eventcenter.Event) string
	rebackfill  *RebackfillOptions
	lineage     int // event identities a run's lineage keeps; 0: no lineage
	rerun       bool
}

// Option configures a Job in New.
type Option func(*Job) error

// New defines a job named name running logic. Trigger is required; the
// other options have defaults.
//
// The name is printable ASCII without spaces (it names the job's feature
// source and parameter set).
func New(name string, logic Logic, opts ...Option) (*Job, error) {
	j := &Job{name: name, logic: logic, version: "0", waitTimeout: 5 * time.Second}
	for _, o := range opts {
		if err := o(j); err != nil {
			return nil, fmt.Errorf("job %q: %w", name, err)
		}
	}
	if err := eventcenter.ValidateSource(name); err != nil {
		return nil, fmt.Errorf("job: name: %v", err)
	}
	if logic == nil {
		return nil, fmt.Errorf("job %q: no logic", name)
	}
	if len(j.triggers) == 0 {
		return nil, fmt.Errorf("job %q: no trigger (use job.Trigger)", name)
	}
	if err := params.ValidateDecls(j.decls); err != nil {
		return nil, fmt.Errorf("job %q: %w", name, err)
	}
	return j, nil
}

// MustNew is New that panics on error, for jobs defined in package variables.
func MustNew(name string, logic Logic, opts ...Option) *Job {
	j, err := New(name, logic, opts...)
	if err != nil {
		panic(err)
	}
	return j
}

// Trigger makes events of source trigger the job, those that every filter
// accepts. Required; give it once per trigger source: a job triggered by
// several sources runs on an event of any of them, each judged by its own
// source's filters (in every mode: live, backfill, call). A source given
// twice is an error.
func Trigger(source string, filters ...Filter) Option {
	return func(j *Job) error {
		if err := eventcenter.ValidateSource(source); err != nil {
			return fmt.Errorf("trigger source: %v", err)
		}
		for _, t := range j.triggers {
			if t.Source == source {
				return fmt.Errorf("trigger source %q given twice (give all its filters in one job.Trigger)", source)
			}
		}
		for _, f := range filters {
			if f.accept == nil {
				return fmt.Errorf("trigger source %q: empty filter (use job.Ops or job.Where)", source)
			}
		}
		j.triggers = append(j.triggers, TriggerSpec{Source: source, Filters: slices.Clone(filters)})
		return nil
	}
}

// Ops is a Filter accepting events with one of the operations.
func Ops(ops ...eventcenter.Op) Filter {
	names := make([]string, len(ops))
	for i, o := range ops {
		names[i] = o.String()
	}
	return Filter{desc: "op in (" + strings.Join(names, ", ") + ")", accept: func(e *eventcenter.Event) bool {
		return slices.Contains(ops, e.Op)
	}}
}

// Owner names who answers for the job (a team or a person), published in
// its catalog entry. Default "".
func Owner(owner string) Option {
	return func(j *Job) error {
		j.owner = owner
		return nil
	}
}

// Reads declares the sources the job's logic fetches from, published in its
// catalog entry so that tooling knows what the job depends on. It is a
// declaration, not a limit: fetches are not checked against it. Default
// none. May be given several times; repeats are dropped.
func Reads(sources ...string) Option {
	return func(j *Job) error {
		for _, s := range sources {
			if err := eventcenter.ValidateSource(s); err != nil {
				return fmt.Errorf("read source: %v", err)
			}
			if !slices.Contains(j.reads, s) {
				j.reads = append(j.reads, s)
			}
		}
		return nil
	}
}

// Version sets the job's version, stamped on every output. Default "0".
// Change it whenever the logic changes.
func Version(v string) Option {
	return func(j *Job) error {
		if v == "" {
			return errors.New("empty version")
		}
		j.version = v
		return nil
	}
}

// Outputs adds outputs; the job writes each run's features to all of them.
// Default none (a job without outputs only returns results, e.g. in tests
// or when the mode supplies outputs through Env.Outputs).
func Outputs(outs ...Output) Option {
	return func(j *Job) error {
		for _, o := range outs {
			if o == nil {
				return errors.New("nil output")
			}
		}
		j.outputs = append(j.outputs, outs...)
		return nil
	}
}

// Param declares a parameter (see params.Decl); the logic reads its value
// with Context.Int, Float, String, Bool or Duration. Default: none.
func Param(d params.Decl) Option {
	return func(j *Job) error {
		j.decls = append(j.decls, d)
		return nil
	}
}

// Consistency sets the job's consistency level. Default Eventual. A fetch
// can ask for another level with WithLevel.
func Consistency(l Level) Option {
	return func(j *Job) error {
		if !l.valid() {
			return fmt.Errorf("unknown consistency level %d", l)
		}
		j.level = l
		return nil
	}
}

// WaitTimeout bounds each watermark wait of the strong levels. Default 5s.
func WaitTimeout(d time.Duration) Option {
	return func(j *Job) error {
		if d <= 0 {
			return fmt.Errorf("wait timeout %v is not positive", d)
		}
		j.waitTimeout = d
		return nil
	}
}

// Entity sets the key under which a run's features are output, from the
// trigger event (e.g. the user of a loan application). Default: the
// trigger's key. The feature store keeps one event per (entity, trigger
// time, trigger position, trigger source: see FeaturePos), so the function
// should map distinct triggers of one source, time and position to
// distinct entities. Triggers of different trigger sources whose positions
// coincide (offsets of two Kafka topics) are told apart by their source.
func Entity(f func(trigger *eventcenter.Event) string) Option {
	return func(j *Job) error {
		j.entity = f
		return nil
	}
}

// RebackfillOptions say how a job is re-backfilled after a correction
// changed keys of a source it reads (see Rebackfill).
type RebackfillOptions struct {
	// Sink is the backfill's sink (see activities.Options.Sink). Default
	// "featurestore": the feature store, source "feature.<job>".
	Sink string `json:"sink"`
	// Write is how records reach the feature store: "replace" (the
	// default: a new version of every record, as-known-at reads before it
	// still return the old one) or "fill".
	Write string `json:"write"`
	// MaxRange bounds the range re-backfilled: a correction older than
	// MaxRange re-backfills only the last MaxRange. Default 7 days.
	MaxRange time.Duration `json:"maxRange"`
}

// DefaultRebackfillMaxRange is RebackfillOptions.MaxRange's default.
const DefaultRebackfillMaxRange = 7 * 24 * time.Hour

// Rebackfill opts the job into re-backfills: when a correction run changes
// keys of a source the job triggers on or reads (Trigger, Reads), the run
// backfills the job over the time its outputs may have changed, from the
// earliest correction to the run's time (bounded by MaxRange), as a child
// workflow. Published in the catalog entry; zero fields take their
// defaults. Default: not opted in (a correction starts nothing).
func Rebackfill(o RebackfillOptions) Option {
	return func(j *Job) error {
		if o.Sink == "" {
			o.Sink = "featurestore"
		}
		switch o.Write {
		case "":
			o.Write = "replace"
		case "replace", "fill":
		default:
			return fmt.Errorf("rebackfill: write %q is neither \"replace\" nor \"fill\"", o.Write)
		}
		switch {
		case o.MaxRange == 0:
			o.MaxRange = DefaultRebackfillMaxRange
		case o.MaxRange < 0:
			return fmt.Errorf("rebackfill: max range %v is negative", o.MaxRange)
		}
		j.rebackfill = &o
		return nil
	}
}

// Rebackfill returns the job's re-backfill options, defaults filled in,
// and whether it opted in (job.Rebackfill).
func (j *Job) Rebackfill() (RebackfillOptions, bool) {
	if j.rebackfill == nil {
		return RebackfillOptions{}, false
	}
	return *j.rebackfill, true
}

// Name returns the job's name.
func (j *Job) Name() string { return j.name }

// Version returns the job's version.
func (j *Job) Version() string { return j.version }

// Source returns the first trigger source (the only one of a job with one
// Trigger). See Triggers and Sources for all of them.
func (j *Job) Source() string { return j.triggers[0].Source }

// Sources returns the trigger sources, in the order given.
func (j *Job) Sources() []string {
	s := make([]string, len(j.triggers))
	for i, t := range j.triggers {
		s[i] = t.Source
	}
	return s
}

// triggerIndex returns the index of source among the trigger sources (0
// if it is none of them: a call of the job on another source's event).
func (j *Job) triggerIndex(source string) int {
	for i, t := range j.triggers {
		if t.Source == source {
			return i
		}
	}
	return 0
}

// Triggers returns the trigger sources with their filters, in the order
// given.
func (j *Job) Triggers() []TriggerSpec {
	ts := make([]TriggerSpec, len(j.triggers))
	for i, t := range j.triggers {
		ts[i] = TriggerSpec{Source: t.Source, Filters: slices.Clone(t.Filters)}
	}
	return ts
}

// Owner returns the job's owner.
func (j *Job) Owner() string { return j.owner }

// Reads returns the sources the job declares it fetches from (job.Reads).
func (j *Job) Reads() []string { return slices.Clone(j.reads) }

// WaitTimeout returns the bound of each watermark wait.
func (j *Job) WaitTimeout() time.Duration { return j.waitTimeout }

// Level returns the job's consistency level.
func (j *Job) Level() Level { return j.level }

// Params returns the parameter declarations (canonicalized).
func (j *Job) Params() []params.Decl { return append([]params.Decl(nil), j.decls...) }

// Outputs returns the job's outputs.
func (j *Job) Outputs() []Output { return append([]Output(nil), j.outputs...) }

// Accepts reports whether e triggers the job: it is of a trigger source and
// every filter of that source accepts it.
func (j *Job) Accepts(e *eventcenter.Event) bool {
	for _, t := range j.triggers {
		if t.Source == e.Source {
			for _, f := range t.Filters {
				if !f.accept(e) {
					return false
				}
			}
			return true
		}
	}
	return false
}

// Triggered reports whether source is one of the job's trigger sources.
func (j *Job) Triggered(source string) bool {
	for _, t := range j.triggers {
		if t.Source == source {
			return true
		}
	}
	return false
}

func (j *Job) entityOf(e *eventcenter.Event) string {
	if j.entity != nil {
		return j.entity(e)
	}
	return e.Key
}
