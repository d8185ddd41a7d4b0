package job

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/params"
)

// Mode names the way a run was started. It is informative (results carry
// it); outputs are the same in every mode.
type Mode string

// Modes.
const (
	Live     Mode = "live"
	Backfill Mode = "backfill"
	Call     Mode = "call"
)

// Store is what runs need of the event center: point-in-time reads and
// watermarks. eventcenter.Store satisfies it. A Lookup of the trigger's own
// source at the trigger's time also needs the store's index declarations
// (eventcenter.Indexes) when the trigger's key changed again at that time;
// without them such a lookup fails with ErrInvalidFetch.
type Store interface {
	eventcenter.Reader
	eventcenter.Watermarks
}

// Env is what a mode supplies to the mode-agnostic core (Evaluate, Run,
// Batch): where fetches read, which parameter values apply, how the
// consistency levels behave, and (optionally) where outputs go.
type Env struct {
	// Mode is stamped on results. Default Live.
	Mode Mode
	// Store answers fetches and watermark waits. Required.
	Store Store
	// Params gives each run its parameter values. Default: every parameter
	// at its declared default, version 0.
	Params ParamSource
	// KnownAt, if set, bounds every fetch of a run bitemporally: events
	// stored after KnownAt(trigger) are ignored ("what did we know then").
	// A backfill that must reproduce live runs uses KnownAtTrigger. Default
	// nil: no bound, the corrected truth.
	KnownAt func(trigger *eventcenter.Event) time.Time
	// Sources, if set, reports whether a source exists. A fetch of a source
	// it does not know (other than the trigger's) fails at once with
	// ErrInvalidFetch naming the source, instead of reading as not-found
	// or, under the fetch-strong levels, waiting its whole timeout. Default
	// nil: every source is taken to exist.
	Sources func(source string) bool
	// Fallback serves FetchStrongNoDelay reads from the source itself.
	// Default nil: such fetches wait as with FetchStrong.
	Fallback Fallback
	// Outputs, if not nil, replaces the job's outputs (a backfill writing
	// files instead of the live outputs).
	Outputs []Output
	// Ledger, if set, records which records each output that is not
	// Idempotent has delivered, so a retried trigger is not delivered twice.
	// Default nil: non-idempotent outputs are at-least-once.
	Ledger Ledger
	// NoRecordIDs leaves the records' ID empty, for a caller that names
	// them itself before they reach an output (a training set's records
	// are its sample rows'). Default false: Record.ID's hash.
	NoRecordIDs bool
}

// KnownAtTrigger bounds a run's fetches to what was stored when its trigger
// was stored: a replayed trigger then sees what its live run could see
// (less what arrived during the live run's own processing).
func KnownAtTrigger(trigger *eventcenter.Event) time.Time { return trigger.StoredAt }

// KnownAtFixed bounds every run's fetches to what was stored at t.
func KnownAtFixed(t time.Time) func(*eventcenter.Event) time.Time {
	return func(*eventcenter.Event) time.Time { return t }
}

// Fallback reads rows from their source (MySQL by primary key) for
// FetchStrongNoDelay. Implementations must be safe for concurrent use and
// rate-limit themselves: each read loads the source.
type Fallback interface {
	// Covers reports whether the fallback can read source.
	Covers(source string) bool
	// Read returns key's row as the source holds it now, as an event whose
	// Time is the row's last change (at or before at). An error matching
	// ErrFallback means it cannot serve this read (rate limit, row absent,
	// row changed after at): the fetch then waits for the watermark.
	Read(ctx context.Context, source, key string, at time.Time) (eventcenter.Event, error)
}

// ParamSource gives a run its parameter values, resolved against the job's
// declarations (see params.Resolve). Implementations are safe for
// concurrent use.
type ParamSource interface {
	Params(ctx context.Context, j *Job, trigger *eventcenter.Event) (params.Version, params.Values, error)
}

// CurrentParams reads the registry's current version at every run, so a
// changed value applies to the next run without a restart (live, call). A
// job that declares no parameters reads nothing: version 0.
func CurrentParams(r params.Registry) ParamSource {
	return &registrySource{registry: true, read: func(ctx context.Context, job string, _ *eventcenter.Event) (params.Version, params.Values, error) {
		return r.Current(ctx, job)
	}}
}

// ParamsAsOfTrigger uses the version that was current at each trigger's
// event time (a backfill reproducing live runs). A job that declares no
// parameters reads nothing: version 0.
func ParamsAsOfTrigger(r params.PointInTime) ParamSource {
	return &registrySource{registry: true, read: func(ctx context.Context, job string, e *eventcenter.Event) (params.Version, params.Values, error) {
		return r.AsOf(ctx, job, e.Time)
	}}
}

// FixedParams uses one version for every run (a backfill trying values; a
// test). Values are overrides, resolved against the job's declarations.
func FixedParams(v params.Version, values params.Values) ParamSource {
	return &registrySource{read: func(context.Context, string, *eventcenter.Event) (params.Version, params.Values, error) {
		return v, values, nil
	}}
}

// registrySource resolves versions once per (job, version): a version's
// values never change.
type registrySource struct {
	registry bool // read reads a registry (skipped for jobs without parameters)
	read     func(ctx context.Context, job string, e *eventcenter.Event) (params.Version, params.Values, error)
	cache    sync.Map // resolvedKey -> params.Values
}

type resolvedKey struct {
	job     *Job
	version params.Version
}

func (s *registrySource) Params(ctx context.Context, j *Job, e *eventcenter.Event) (params.Version, params.Values, error) {
	if s.registry && len(j.decls) == 0 {
		// A job without parameters has no values to read: version 0, as
		// without a registry, and no registry read per run.
		return 0, nil, nil
	}
	v, overrides, err := s.read(ctx, j.name, e)
	if err != nil {
		return 0, nil, err
	}
	if vals, ok := s.cache.Load(resolvedKey{j, v}); ok {
		return v, vals.(params.Values), nil
	}
	vals, err := params.Resolve(j.decls, overrides)
	if err != nil {
		return 0, nil, fmt.Errorf("version %d: %w", v, err)
	}
	s.cache.Store(resolvedKey{j, v}, vals)
	return v, vals, nil
}

var defaultParams = FixedParams(0, nil)

// KnownSources returns an Env.Sources that knows what registered knows (a
// source registry's lookup) and every job's feature source, which jobs
// create by writing and no registry lists.
func KnownSources(registered func(source string) bool) func(source string) bool {
	return func(name string) bool {
		return registered(name) || strings.HasPrefix(name, FeatureSource(""))
	}
}
