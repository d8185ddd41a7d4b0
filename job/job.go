package job

import (
	"errors"
	"fmt"
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
// keep state between runs (runs of one job may be concurrent).
type Logic func(c *Context) (eventcenter.Row, error)

// Filter selects the trigger events a job runs on.
type Filter func(e *eventcenter.Event) bool

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

// Job is a defined job: a trigger, the main logic, outputs, parameters and
// a consistency level. A Job is immutable and safe for concurrent use.
type Job struct {
	name        string
	version     string
	source      string
	filters     []Filter
	logic       Logic
	outputs     []Output
	decls       []params.Decl
	level       Level
	waitTimeout time.Duration
	entity      func(e *eventcenter.Event) string
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
	if j.source == "" {
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

// Trigger makes events of source trigger the job, those for which every
// filter returns true. Required.
func Trigger(source string, filters ...Filter) Option {
	return func(j *Job) error {
		if err := eventcenter.ValidateSource(source); err != nil {
			return fmt.Errorf("trigger source: %v", err)
		}
		j.source, j.filters = source, append(j.filters, filters...)
		return nil
	}
}

// Ops is a Filter accepting events with one of the operations.
func Ops(ops ...eventcenter.Op) Filter {
	return func(e *eventcenter.Event) bool {
		for _, o := range ops {
			if e.Op == o {
				return true
			}
		}
		return false
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
// time, trigger position), so the function should map distinct triggers
// of one time and position to distinct entities.
func Entity(f func(trigger *eventcenter.Event) string) Option {
	return func(j *Job) error {
		j.entity = f
		return nil
	}
}

// Name returns the job's name.
func (j *Job) Name() string { return j.name }

// Version returns the job's version.
func (j *Job) Version() string { return j.version }

// Source returns the trigger source.
func (j *Job) Source() string { return j.source }

// Level returns the job's consistency level.
func (j *Job) Level() Level { return j.level }

// Params returns the parameter declarations (canonicalized).
func (j *Job) Params() []params.Decl { return append([]params.Decl(nil), j.decls...) }

// Outputs returns the job's outputs.
func (j *Job) Outputs() []Output { return append([]Output(nil), j.outputs...) }

// Accepts reports whether e triggers the job: it is of the trigger source
// and passes every filter.
func (j *Job) Accepts(e *eventcenter.Event) bool {
	if e.Source != j.source {
		return false
	}
	for _, f := range j.filters {
		if !f(e) {
			return false
		}
	}
	return true
}

func (j *Job) entityOf(e *eventcenter.Event) string {
	if j.entity != nil {
		return j.entity(e)
	}
	return e.Key
}
