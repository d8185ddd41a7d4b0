package serving

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
)

// Lookup returns the record of entity in the feature store of the job
// named jobName (source job.FeatureSource), as the event center's AsOf
// answers it: as of at (zero: the latest) and, if knownAt is not zero, as
// known at knownAt. It returns eventcenter.ErrNotFound when the entity has
// no features then.
func Lookup(ctx context.Context, r eventcenter.Reader, jobName, entity string, at, knownAt time.Time) (job.Record, error) {
	if at.IsZero() {
		at = eventcenter.MaxTime
	}
	e, err := r.AsOf(ctx, eventcenter.AsOf{Source: job.FeatureSource(jobName), Key: entity, Time: at, KnownAt: knownAt})
	if err != nil {
		return job.Record{}, err
	}
	return job.RecordFromEvent(jobName, &e), nil
}

// LookupBatch is Lookup of several entities. A store that reads batches
// (eventcenter.BatchReader: the embedded store) answers them in one sorted
// pass; another gets at most parallel (at least 1) reads at once.
// Entities without features have a nil record; any other error fails the
// batch.
func LookupBatch(ctx context.Context, r eventcenter.Reader, jobName string, entities []string, at, knownAt time.Time, parallel int) ([]*job.Record, error) {
	if at.IsZero() {
		at = eventcenter.MaxTime
	}
	out := make([]*job.Record, len(entities))
	errs := make([]error, len(entities))
	answer := func(i int, e *eventcenter.Event, err error) {
		switch {
		case err == nil:
			rec := job.RecordFromEvent(jobName, e)
			out[i] = &rec
		case !errors.Is(err, eventcenter.ErrNotFound):
			errs[i] = fmt.Errorf("%s: %w", entities[i], err)
		}
	}
	src := job.FeatureSource(jobName)
	if b, ok := r.(eventcenter.BatchReader); ok {
		qs := make([]eventcenter.AsOf, len(entities))
		for i, ent := range entities {
			qs[i] = eventcenter.AsOf{Source: src, Key: ent, Time: at, KnownAt: knownAt}
		}
		res := make([]eventcenter.AsOfResult, len(qs))
		if err := b.AsOfBatch(ctx, qs, res); err != nil {
			return nil, err
		}
		for i := range res {
			answer(i, &res[i].Event, res[i].Err)
		}
		return out, errors.Join(errs...)
	}
	sem := make(chan struct{}, max(parallel, 1))
	var wg sync.WaitGroup
	for i, ent := range entities {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			e, err := r.AsOf(ctx, eventcenter.AsOf{Source: src, Key: ent, Time: at, KnownAt: knownAt})
			answer(i, &e, err)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// Store is what a Selector reads.
type Store interface {
	eventcenter.Replayer
}

// SelectorConfig configures a Selector. Store is required.
type SelectorConfig struct {
	Store Store
	// Refresh: how often a job's table is brought up to date, in the
	// background, while selections use it. A selection as of now sees
	// every feature event stored up to Refresh (plus the time a refresh
	// takes) before it. Default 1s.
	Refresh time.Duration
	// Lookback: a refresh replays the events with event times from
	// Lookback before the latest seen, so that records written a little
	// out of time order (live workers' batches, partitions apart) are not
	// missed. Default 1m.
	Lookback time.Duration
	// Rebuild: the table is rebuilt from a full replay this often (in the
	// background), which brings in records written with older event times
	// (backfills). Default 10m.
	Rebuild time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger logs failed background refreshes. Default slog.Default().
	Logger *slog.Logger
}

// Selector answers selections (see the package documentation): the latest
// from a table per job kept up to date in the background, those as of a
// time from a table built for the request. Safe for concurrent use.
type Selector struct {
	cfg    SelectorConfig
	mu     sync.Mutex
	tables map[string]*latest
}

type latest struct {
	refresh sync.Mutex // held by the one build or refresh in progress
	mu      sync.RWMutex
	t       *Table
	maxTime time.Time // the latest event time applied
	built   time.Time // when the table's full replay started
	fresh   time.Time // when the last refresh started
}

// NewSelector returns a Selector.
func NewSelector(cfg SelectorConfig) (*Selector, error) {
	if cfg.Store == nil {
		return nil, errors.New("serving: SelectorConfig.Store is required")
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Second
	}
	if cfg.Lookback <= 0 {
		cfg.Lookback = time.Minute
	}
	if cfg.Rebuild <= 0 {
		cfg.Rebuild = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Selector{cfg: cfg, tables: map[string]*latest{}}, nil
}

// Query is a selection.
type Query struct {
	// Where is the predicate (see Predicate for its text form).
	Where *Predicate
	// Features are returned with each entity. Default none.
	Features []string
	// Limit bounds the entities of the page. Required, positive.
	Limit int
	// After is the cursor: the previous page's Next, "" for the first page.
	After string
	// At, if not zero, selects over the features as of At (and, if KnownAt
	// is not zero, as known at KnownAt): a table built for the request by
	// a replay of the job's feature events up to At. Zero: the latest.
	At, KnownAt time.Time
}

// Select answers q over the features of the job named jobName. A predicate
// that does not fit the features is a *PredicateError (ErrPredicate).
func (s *Selector) Select(ctx context.Context, jobName string, q Query) (Selection, error) {
	if q.Limit <= 0 {
		return Selection{}, errors.New("serving: Query.Limit must be positive")
	}
	src := job.FeatureSource(jobName)
	if !q.At.IsZero() {
		t := NewTable()
		if err := s.replay(ctx, t, src, eventcenter.MinTime, q.At.Add(time.Nanosecond), q.KnownAt, nil); err != nil {
			return Selection{}, err
		}
		return t.Select(q.Where, q.Features, q.After, q.Limit)
	}
	l, err := s.fresh(ctx, jobName)
	if err != nil {
		return Selection{}, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.t.Select(q.Where, q.Features, q.After, q.Limit)
}

// Warm builds the job's latest table, or brings it up to date, and
// returns when it is: call it at start to take the first build off the
// first selection.
func (s *Selector) Warm(ctx context.Context, jobName string) error {
	l := s.table(jobName)
	l.refresh.Lock()
	defer l.refresh.Unlock()
	return s.update(ctx, jobName, l, true)
}

func (s *Selector) table(jobName string) *latest {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.tables[jobName]
	if l == nil {
		l = &latest{}
		s.tables[jobName] = l
	}
	return l
}

// fresh returns the job's latest table: built on the first call (which
// waits for it), then refreshed in the background when stale.
func (s *Selector) fresh(ctx context.Context, jobName string) (*latest, error) {
	l := s.table(jobName)
	l.mu.RLock()
	built, fresh := l.t != nil, l.fresh
	l.mu.RUnlock()
	if !built {
		l.refresh.Lock()
		defer l.refresh.Unlock()
		if err := s.update(ctx, jobName, l, false); err != nil {
			return nil, err
		}
		return l, nil
	}
	if s.cfg.Now().Sub(fresh) >= s.cfg.Refresh && l.refresh.TryLock() {
		go func() {
			defer l.refresh.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			if err := s.update(ctx, jobName, l, false); err != nil {
				s.cfg.Logger.Warn("serving: refreshing a selection table", "job", jobName, "err", err)
			}
		}()
	}
	return l, nil
}

// update builds l's table when it has none or is due for a rebuild, else
// refreshes it when it is stale (always, if force). The caller holds
// l.refresh.
func (s *Selector) update(ctx context.Context, jobName string, l *latest, force bool) error {
	now := s.cfg.Now()
	src := job.FeatureSource(jobName)
	l.mu.RLock()
	t, maxTime, built, fresh := l.t, l.maxTime, l.built, l.fresh
	l.mu.RUnlock()
	switch {
	case t == nil || now.Sub(built) >= s.cfg.Rebuild:
		t := NewTable()
		var maxTime time.Time
		if err := s.replay(ctx, t, src, eventcenter.MinTime, eventcenter.AllTime.To, time.Time{}, &maxTime); err != nil {
			return err
		}
		l.mu.Lock()
		l.t, l.maxTime, l.built, l.fresh = t, maxTime, now, now
		l.mu.Unlock()
	case force || now.Sub(fresh) >= s.cfg.Refresh:
		from := eventcenter.MinTime
		if !maxTime.IsZero() {
			from = maxTime.Add(-s.cfg.Lookback)
		}
		var evs []eventcenter.Event
		for e, err := range s.cfg.Store.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{src}, From: from, To: eventcenter.AllTime.To}) {
			if err != nil {
				return fmt.Errorf("serving: refreshing %s: %w", src, err)
			}
			evs = append(evs, e)
		}
		l.mu.Lock()
		for i := range evs {
			l.t.Apply(&evs[i])
			if evs[i].Time.After(l.maxTime) {
				l.maxTime = evs[i].Time
			}
		}
		l.fresh = now
		l.mu.Unlock()
	}
	return nil
}

func (s *Selector) replay(ctx context.Context, t *Table, src string, from, to, knownAt time.Time, maxTime *time.Time) error {
	for e, err := range s.cfg.Store.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{src}, From: from, To: to, KnownAt: knownAt}) {
		if err != nil {
			return fmt.Errorf("serving: reading %s: %w", src, err)
		}
		t.Apply(&e)
		if maxTime != nil && e.Time.After(*maxTime) {
			*maxTime = e.Time
		}
	}
	return nil
}
