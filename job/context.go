package job

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/params"
)

// Context is what the logic of one run sees: the trigger, the parameter
// values, and fetches of point-in-time state from the event center.
//
// Every fetch is bounded by the trigger's event time T: it reads the state
// as of T (or an earlier time asked with At), never later, in every mode.
// Events of the trigger's own key are also bounded by the trigger's
// position, so the trigger key's state is the trigger's, not a later change
// with the same time. A Context is not safe for concurrent use and is valid
// only during the run.
type Context struct {
	ctx     context.Context
	job     *Job
	env     *Env
	trigger eventcenter.Event
	knownAt time.Time
	version params.Version
	values  params.Values
	stats   Stats
	later   uint8         // laterAtTrigger: 0 unknown, 1 no, 2 yes
	lineage *FetchLineage // nil unless the job records lineage
}

// Stats counts what a run did.
type Stats struct {
	Fetches   int           // fetches asked by the logic
	Waits     int           // watermark waits that had to block
	Waited    time.Duration // time spent blocked in them
	Stale     int           // waits that timed out
	Fallbacks int           // reads served by the source fallback
	Misses    int           // fallback reads refused (rate, newer row), served by waiting
}

// Context returns the run's context.Context, for code the logic calls.
func (c *Context) Context() context.Context { return c.ctx }

// Trigger returns the trigger event.
func (c *Context) Trigger() eventcenter.Event { return c.trigger }

// Time returns the trigger's event time: the "now" of the run.
func (c *Context) Time() time.Time { return c.trigger.Time }

// Job returns the running job.
func (c *Context) Job() *Job { return c.job }

// ParamVersion returns the version of the parameter values of this run.
func (c *Context) ParamVersion() params.Version { return c.version }

// Param returns a parameter's value (its declared type's Go type). It
// panics if the parameter is not declared: a bug, reported as the run's
// failure.
func (c *Context) Param(name string) any {
	v, ok := c.values[name]
	if !ok {
		panic(fmt.Sprintf("job %q: parameter %q is not declared", c.job.name, name))
	}
	return v
}

// Int returns an Int parameter. It panics if name is not an Int parameter.
func (c *Context) Int(name string) int64 { return paramAs[int64](c, name, params.Int) }

// Float returns a Float parameter.
func (c *Context) Float(name string) float64 { return paramAs[float64](c, name, params.Float) }

// String returns a String parameter.
func (c *Context) String(name string) string { return paramAs[string](c, name, params.String) }

// Bool returns a Bool parameter.
func (c *Context) Bool(name string) bool { return paramAs[bool](c, name, params.Bool) }

// Duration returns a Duration parameter.
func (c *Context) Duration(name string) time.Duration {
	return paramAs[time.Duration](c, name, params.Duration)
}

func paramAs[T any](c *Context, name string, typ params.Type) T {
	v, ok := c.Param(name).(T)
	if !ok {
		panic(fmt.Sprintf("job %q: parameter %q is not declared as %v", c.job.name, name, typ))
	}
	return v
}

// FetchOption changes one fetch.
type FetchOption func(*fetch)

// fetch is a fetch's options: it reads as of at − ago at level.
type fetch struct {
	at    time.Time // At's time, or the trigger's
	ago   time.Duration
	level Level
	err   error // the first invalid option
}

// At fetches as of t instead of the trigger time (then Ago, if also
// given, goes back from t). A t after the trigger time fails the fetch
// with ErrFuture; a zero t with ErrInvalidFetch.
func At(t time.Time) FetchOption {
	return func(f *fetch) { f.at = t }
}

// Ago fetches as of d before the trigger time, or before the time given
// with At, in whichever order the options come. Several Agos add up. A
// negative d fails the fetch with ErrFuture; Agos adding up past the
// largest Duration with ErrInvalidFetch.
func Ago(d time.Duration) FetchOption {
	return func(f *fetch) {
		switch {
		case d < 0:
			f.fail(fmt.Errorf("%w: Ago(%v) is negative", ErrFuture, d))
		case f.ago > math.MaxInt64-d:
			f.fail(fmt.Errorf("%w: Agos add up past %v", ErrInvalidFetch, time.Duration(math.MaxInt64)))
		default:
			f.ago += d
		}
	}
}

// WithLevel fetches with consistency level l instead of the job's.
// TriggerStrong on a fetch means Eventual (it acts before the logic). A
// level that is not one of the defined ones fails the fetch with
// ErrInvalidFetch.
func WithLevel(l Level) FetchOption {
	return func(f *fetch) {
		if !l.valid() {
			f.fail(fmt.Errorf("%w: unknown consistency level %d", ErrInvalidFetch, l))
			return
		}
		f.level = l
	}
}

func (f *fetch) fail(err error) {
	if f.err == nil {
		f.err = err
	}
}

// options applies opts to a fetch of source and checks the result: the
// source is known (Env.Sources), the time is not after the trigger's.
func (c *Context) options(source string, opts []FetchOption) fetch {
	t := c.trigger.Time
	f := fetch{at: t, level: c.job.level}
	if len(opts) > 0 {
		f = applied(f, opts) // f stays on the stack of a fetch without options
	}
	switch {
	case f.err != nil:
	case f.at.IsZero():
		f.err = fmt.Errorf("%w: At: zero time", ErrInvalidFetch)
	case f.at.After(t):
		f.err = fmt.Errorf("%w: asked %s, trigger at %s", ErrFuture, f.at.UTC().Format(time.RFC3339Nano), t.UTC().Format(time.RFC3339Nano))
	case c.env.Sources != nil && source != c.trigger.Source && !c.env.Sources(source):
		f.err = fmt.Errorf("%w: unknown source %q (not in Env.Sources)", ErrInvalidFetch, source)
	default:
		f.at = f.at.Add(-f.ago)
	}
	return f
}

// applied returns f with opts applied.
func applied(f fetch, opts []FetchOption) fetch {
	for _, o := range opts {
		o(&f)
	}
	return f
}

// atTrigger reports whether a fetch of source as of at reads at the
// trigger's own time, where changes of the trigger's key after the
// trigger's position must be left out.
func (c *Context) atTrigger(source string, at time.Time) bool {
	return source == c.trigger.Source && at.Equal(c.trigger.Time)
}

// Get returns the row of key in source as of the trigger time (the After
// row of its latest event), or ErrNotFound.
func (c *Context) Get(source, key string, opts ...FetchOption) (eventcenter.Row, error) {
	e, err := c.AsOf(source, key, opts...)
	return e.After, err
}

// AsOf returns the latest event of key in source at or before the trigger
// time whose After row is the key's state, or ErrNotFound.
func (c *Context) AsOf(source, key string, opts ...FetchOption) (eventcenter.Event, error) {
	c.stats.Fetches++
	f := c.options(source, opts)
	e, err := c.asOf(source, key, f)
	if c.lineage != nil {
		switch {
		case err == nil:
			c.lineage.add(FetchAsOf, source, key, f.at, e)
		case errors.Is(err, eventcenter.ErrNotFound):
			c.lineage.add(FetchAsOf, source, key, f.at)
		}
	}
	return e, err
}

func (c *Context) asOf(source, key string, f fetch) (eventcenter.Event, error) {
	if f.err != nil {
		return eventcenter.Event{}, f.err
	}
	q := eventcenter.AsOf{Source: source, Key: key, Time: f.at, KnownAt: c.knownAt}
	if err := q.Validate(); err != nil {
		return eventcenter.Event{}, classify(err)
	}
	if f.level == FetchStrongNoDelay {
		if e, ok, err := c.fallback(source, key, f.at); ok || err != nil {
			return e, err
		}
	}
	if err := c.ensure(source, f); err != nil {
		return eventcenter.Event{}, err
	}
	if key == c.trigger.Key && c.atTrigger(source, f.at) {
		// The trigger's own key: bounded by the trigger's position too.
		e, err := c.asOfTriggerKey(q)
		return e, classify(err)
	}
	e, err := c.env.Store.AsOf(c.ctx, q)
	return e, classify(err)
}

// asOfTriggerKey answers q, a read of the trigger's key as of the
// trigger's time, with the key's state as of the trigger's position. The
// store's as-of answer is the key's latest change at or before that time
// (by time, then position): unless that change comes after the trigger, it
// is the answer, and nothing changed the key after the trigger at its time.
// So one read settles it, as it is gathered with the other runs' on a
// remote store; only a change after the trigger, or a removal (which may
// be one), costs the History of the trigger's instant (laterAtTrigger).
func (c *Context) asOfTriggerKey(q eventcenter.AsOf) (eventcenter.Event, error) {
	if c.later != 2 {
		e, err := c.env.Store.AsOf(c.ctx, q)
		switch {
		case err == nil && !c.afterTrigger(&e):
			c.later = 1
			return e, nil
		case err == nil:
			c.later = 2
		case c.later == 1 || !errors.Is(err, eventcenter.ErrNotFound):
			return e, err
		}
	}
	later, err := c.laterAtTrigger()
	switch {
	case err != nil:
		return eventcenter.Event{}, err
	case !later:
		return eventcenter.Event{}, eventcenter.ErrNotFound // the store's answer stands
	}
	return c.asOfBeforeTrigger(q.Source, q.Key)
}

// classify sorts an error of the event center met by a fetch. Not-found
// and errors already sorted pass unchanged; a malformed query, an
// undeclared index or a read behind the store's retention horizon cannot
// be answered however often it is retried (ErrInvalidFetch, not retried);
// anything else is an outage of the store (ErrFetch, worth retrying).
func classify(err error) error {
	switch {
	case err == nil, err == errRound, errors.Is(err, eventcenter.ErrNotFound), errors.Is(err, ErrStale), errors.Is(err, ErrFetch), errors.Is(err, ErrInvalidFetch):
		return err
	case errors.Is(err, eventcenter.ErrInvalidQuery), errors.Is(err, eventcenter.ErrUnknownIndex), errors.Is(err, eventcenter.ErrBeyondHorizon):
		return fmt.Errorf("%w: %w", ErrInvalidFetch, err)
	}
	return fmt.Errorf("%w: %w", ErrFetch, err)
}

// History returns the events of key in source with event time in
// [T-window, T], T the trigger time (or the time asked with At), oldest first.
func (c *Context) History(source, key string, window time.Duration, opts ...FetchOption) ([]eventcenter.Event, error) {
	c.stats.Fetches++
	f := c.options(source, opts)
	evs, err := c.history(source, key, window, f)
	if c.lineage != nil && err == nil {
		c.lineage.add(FetchHistory, source, key, f.at, evs...)
	}
	return evs, err
}

func (c *Context) history(source, key string, window time.Duration, f fetch) ([]eventcenter.Event, error) {
	if f.err != nil {
		return nil, f.err
	}
	if window < 0 {
		return nil, fmt.Errorf("%w: history window %v is negative", ErrInvalidFetch, window)
	}
	q := eventcenter.HistoryQuery{Source: source, Key: key, From: f.at.Add(-window), To: f.at.Add(time.Nanosecond), KnownAt: c.knownAt}
	if err := q.Validate(); err != nil {
		return nil, classify(err)
	}
	if err := c.ensure(source, f); err != nil {
		return nil, err
	}
	evs, err := c.env.Store.History(c.ctx, q)
	if err != nil {
		return nil, classify(err)
	}
	if key == c.trigger.Key && c.atTrigger(source, f.at) {
		n := len(evs)
		for n > 0 && c.afterTrigger(&evs[n-1]) {
			n--
		}
		evs = evs[:n]
	}
	return evs, nil
}

// Lookup returns the state as of the trigger time of every key of source
// whose row has value in the declared index (e.g. all orders of a user),
// ordered by key. value is indexed as eventcenter.IndexValue does.
func (c *Context) Lookup(source, index string, value any, opts ...FetchOption) ([]eventcenter.Event, error) {
	c.stats.Fetches++
	f := c.options(source, opts)
	evs, err := c.lookup(source, index, value, f)
	if c.lineage != nil && err == nil {
		v, _ := eventcenter.IndexValue(value)
		c.lineage.add(FetchLookup, source, index+"="+v, f.at, evs...)
	}
	return evs, err
}

func (c *Context) lookup(source, index string, value any, f fetch) ([]eventcenter.Event, error) {
	if f.err != nil {
		return nil, f.err
	}
	v, ok := eventcenter.IndexValue(value)
	q := eventcenter.LookupQuery{Source: source, Index: index, Value: v, Time: f.at, KnownAt: c.knownAt}
	if err := q.Validate(); err != nil {
		return nil, classify(err)
	}
	if !ok {
		return nil, nil // nil is never indexed
	}
	if err := c.ensure(source, f); err != nil {
		return nil, err
	}
	evs, err := c.env.Store.Lookup(c.ctx, q)
	if err != nil {
		return nil, classify(err)
	}
	if !c.atTrigger(source, f.at) {
		// At an earlier time the store's answer is whole: nothing at the
		// trigger's time, so nothing after the trigger, is in it.
		return evs, nil
	}
	later, err := c.laterAtTrigger()
	if err != nil || !later {
		return evs, classify(err)
	}
	// The trigger key changed again at the trigger time, after the trigger:
	// its entry must be its state as of the trigger, in or out of the index.
	i, found := slices.BinarySearchFunc(evs, c.trigger.Key, func(e eventcenter.Event, k string) int { return strings.Compare(e.Key, k) })
	e, err := c.asOfBeforeTrigger(source, c.trigger.Key)
	if err != nil && !errors.Is(err, eventcenter.ErrNotFound) {
		return nil, classify(err)
	}
	in := false
	if err == nil {
		col, err := indexColumn(c, source, index)
		if err != nil {
			return nil, err
		}
		got, ok := eventcenter.IndexValue(e.After[col])
		in = ok && got == v
	}
	switch {
	case in && found:
		evs[i] = e
	case in:
		evs = slices.Insert(evs, i, e)
	case found:
		evs = slices.Delete(evs, i, i+1)
	}
	return evs, nil
}

// laterAtTrigger reports whether the trigger's key has a change with the
// trigger's time and a later position (read once per run).
func (c *Context) laterAtTrigger() (bool, error) {
	if c.later == 0 {
		t := c.trigger.Time
		evs, err := c.env.Store.History(c.ctx, eventcenter.HistoryQuery{Source: c.trigger.Source, Key: c.trigger.Key, From: t, To: t.Add(time.Nanosecond), KnownAt: c.knownAt})
		if err != nil {
			return false, err
		}
		c.later = 1
		if n := len(evs); n > 0 && c.afterTrigger(&evs[n-1]) {
			c.later = 2
		}
	}
	return c.later == 2, nil
}

// indexColumn returns the column of a declared index. The store must list
// its indexes (eventcenter.Indexes): a guess would misjudge the trigger
// key's state.
func indexColumn(c *Context, source, index string) (string, error) {
	ixs, ok := c.env.Store.(eventcenter.Indexes)
	if !ok {
		return "", fmt.Errorf("%w: a lookup at the trigger's time needs the index's column, and the store (%T) does not list indexes", ErrInvalidFetch, c.env.Store)
	}
	list, err := ixs.ListIndexes(c.ctx, source)
	if err != nil {
		return "", classify(err)
	}
	for _, ix := range list {
		if ix.Name == index {
			return ix.Column, nil
		}
	}
	return "", fmt.Errorf("%w: %q of source %q", ErrInvalidFetch, index, source) // dropped since the read
}

// afterTrigger reports whether e is a change of the trigger's own key that
// comes after the trigger in the source's order (same time, later position).
func (c *Context) afterTrigger(e *eventcenter.Event) bool {
	t := &c.trigger
	return e.Source == t.Source && e.Key == t.Key && e.Time.Equal(t.Time) && e.Pos.Compare(t.Pos) > 0
}

// asOfBeforeTrigger returns the trigger key's state as of the trigger's
// time and position.
func (c *Context) asOfBeforeTrigger(source, key string) (eventcenter.Event, error) {
	t := c.trigger.Time
	evs, err := c.env.Store.History(c.ctx, eventcenter.HistoryQuery{Source: source, Key: key, From: t, To: t.Add(time.Nanosecond), KnownAt: c.knownAt})
	if err != nil {
		return eventcenter.Event{}, err
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if c.afterTrigger(&evs[i]) {
			continue
		}
		if evs[i].After == nil {
			return eventcenter.Event{}, eventcenter.ErrNotFound
		}
		return evs[i], nil
	}
	return c.env.Store.AsOf(c.ctx, eventcenter.AsOf{Source: source, Key: key, Time: t.Add(-time.Nanosecond), KnownAt: c.knownAt})
}

// ensure waits, for the fetch-strong levels, until source's watermark
// reaches the fetch time.
func (c *Context) ensure(source string, f fetch) error {
	if f.level != FetchStrong && f.level != FetchStrongNoDelay {
		return nil
	}
	return c.wait(source, f.at)
}

// wait blocks until source's watermark reaches t, at most the job's wait
// timeout, and returns a *StaleError if it does not.
func (c *Context) wait(source string, t time.Time) error {
	if wm, err := c.env.Store.Watermark(c.ctx, source); err == nil && !wm.IsZero() && !wm.Before(t) {
		return nil
	}
	c.stats.Waits++
	start := time.Now()
	ctx, cancel := context.WithTimeout(c.ctx, c.job.waitTimeout)
	err := c.env.Store.WaitWatermark(ctx, source, t)
	cancel()
	waited := time.Since(start)
	c.stats.Waited += waited
	if err == nil {
		return nil
	}
	if c.ctx.Err() != nil {
		return c.ctx.Err()
	}
	if !errors.Is(err, eventcenter.ErrWatermarkTimeout) {
		return classify(err)
	}
	c.stats.Stale++
	return &StaleError{Source: source, Want: t, Waited: waited, Err: err}
}

// fallback serves an as-of read of FetchStrongNoDelay from the source
// itself when the event center's watermark is behind. ok reports that it
// answered (with the event or ErrNotFound); false means fetch as FetchStrong.
func (c *Context) fallback(source, key string, at time.Time) (eventcenter.Event, bool, error) {
	fb := c.env.Fallback
	if fb == nil || !c.knownAt.IsZero() || !fb.Covers(source) {
		// (A run bounded by KnownAt replays the past: the source's current
		// row is not what was known then.)
		return eventcenter.Event{}, false, nil
	}
	if wm, err := c.env.Store.Watermark(c.ctx, source); err == nil && !wm.IsZero() && !wm.Before(at) {
		return eventcenter.Event{}, false, nil
	}
	e, err := fb.Read(c.ctx, source, key, at)
	if err != nil && !errors.Is(err, ErrFallback) {
		err = fmt.Errorf("%w: fallback: %w", ErrFetch, err)
	}
	switch {
	case err == nil && e.Time.After(at):
		// A fallback must not answer with a row changed after the fetch
		// time; never pass one to the logic.
		c.stats.Misses++
		return eventcenter.Event{}, false, nil
	case err == nil:
		c.stats.Fallbacks++
		return e, true, nil
	case errors.Is(err, ErrFallback):
		c.stats.Misses++
		return eventcenter.Event{}, false, nil
	}
	return eventcenter.Event{}, false, err
}
