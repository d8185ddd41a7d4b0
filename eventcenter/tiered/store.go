package tiered

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// Hot is the store a tiered Store keeps its recent window in: any event
// center backend that can also forget the events tiering has moved.
//
// Evict removes the events with the identities of events (their time and
// index rows too); identities not stored are ignored, so it is idempotent.
// After it returns no read sees them. Each event's After row is the stored
// one, as stored (codec.ReplayRaw yields it so): the hot store reads the
// values of its indexed columns there. Only tiering calls it, and only for
// events in a verified, committed segment.
type Hot interface {
	eventcenter.Store
	Evict(ctx context.Context, events []eventcenter.RawEvent) error
}

// Config configures a Store. Every field but Hot and Cold has a default.
type Config struct {
	// Hot is the recent window. It must keep everything it is given (no
	// retention horizon): tiering, not a TTL, decides what leaves it.
	// The Store owns it and closes it.
	Hot Hot
	// Cold holds segments and manifests.
	Cold Blob
	// HotWindow: Tier moves the events stored more than HotWindow ago.
	// Default 32 days.
	HotWindow time.Duration
	// Slice is the event-time slice of a segment. Default 24h.
	Slice time.Duration
	// SegmentRows bounds the events of one segment object; a larger slice
	// is split at event-time boundaries. It bounds a cold replay's memory.
	// Default 1,000,000.
	SegmentRows int
	// RowGroupRows is the target size of a row group (a key's events are
	// never split, so a group may be larger). A cold as-of decodes one
	// whole row group at first touch, so smaller groups answer sooner;
	// each costs a manifest entry (about 60 bytes). Default 1,024.
	RowGroupRows int
	// ManifestMaxAge is how long a reader trusts its cached manifest of a
	// source before it reads it again. Default 10s.
	ManifestMaxAge time.Duration
	// EvictGrace is how long tiering waits between committing a manifest
	// and evicting the moved events from hot, so that readers in other
	// processes hold the new manifest before the hot copies go. It must
	// exceed ManifestMaxAge plus the clock skew between processes.
	// Default 30s; 0 (EvictGraceNone) only where every reader shares this
	// Store's cache (one process).
	EvictGrace time.Duration
	// ColdRetention is how long the cold tier keeps a source's events, by
	// event time; tiering drops whole segments whose events are all older
	// (and late events that old leave hot uncopied). Reads that need what
	// is dropped fail with a *eventcenter.BeyondHorizonError naming the
	// source's cold horizon, as eventcenter.Retention describes. Default:
	// every source forever.
	ColdRetention map[string]time.Duration
	// CacheRows bounds the decoded row groups kept for warm reads, in
	// events. Default 1,000,000.
	CacheRows int
	// Now is the clock of HotWindow. Default time.Now.
	Now func() time.Time
	// Logger logs each step of tiering (segments written and verified,
	// manifests committed, events evicted) at Info. Default: discard.
	Logger *slog.Logger
}

// EvictGraceNone makes tiering evict from hot right after the commit: for
// a Store whose readers are all in its own process (tests, the dev stack).
const EvictGraceNone = -1

func (c *Config) setDefaults() {
	if c.HotWindow == 0 {
		c.HotWindow = 32 * 24 * time.Hour
	}
	if c.Slice == 0 {
		c.Slice = 24 * time.Hour
	}
	if c.SegmentRows == 0 {
		c.SegmentRows = 1_000_000
	}
	if c.RowGroupRows == 0 {
		c.RowGroupRows = 1024
	}
	if c.ManifestMaxAge == 0 {
		c.ManifestMaxAge = 10 * time.Second
	}
	switch c.EvictGrace {
	case 0:
		c.EvictGrace = 30 * time.Second
	case EvictGraceNone:
		c.EvictGrace = 0
	}
	if c.CacheRows == 0 {
		c.CacheRows = 1_000_000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a Config that cannot open a Store.
func (c *Config) Validate() error {
	switch {
	case c.Hot == nil:
		return errors.New("tiered: Config.Hot is required")
	case c.Cold == nil:
		return errors.New("tiered: Config.Cold is required")
	case c.HotWindow < 0 || c.Slice <= 0 || c.SegmentRows <= 0 || c.RowGroupRows <= 0 || c.ManifestMaxAge < 0 || c.EvictGrace < 0 || c.CacheRows <= 0:
		return fmt.Errorf("tiered: a Config field is out of range: %+v", *c)
	}
	if r, ok := c.Hot.(eventcenter.Retention); ok && !r.Horizon(c.Now()).IsZero() {
		return errors.New("tiered: Config.Hot has a retention horizon; tiering decides what leaves the hot store, so open it without one")
	}
	return nil
}

// Store is one event center over a hot store and a cold tier of segments;
// see the package doc.
type Store struct {
	// Watermarks are the hot store's.
	eventcenter.Watermarks

	cfg  Config
	hot  Hot
	cold Blob

	closed atomic.Bool
	inUse  sync.RWMutex // cold reads hold it shared; Close exclusively

	mu        sync.Mutex
	manifests map[string]*cachedManifest
	known     map[string]bool // sources whose marker is written
	files     map[string]*segFile
	indexes   map[string]*segIndex // index objects, by segment name
	groups    *groupCache

	tierMu sync.Mutex // one tiering at a time in this process
}

type cachedManifest struct {
	m      *Manifest
	loaded time.Time
}

var _ eventcenter.Store = (*Store)(nil)

// New returns a Store over cfg.Hot and cfg.Cold.
func New(cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Store{
		Watermarks: cfg.Hot,
		cfg:        cfg, hot: cfg.Hot, cold: cfg.Cold,
		manifests: map[string]*cachedManifest{}, known: map[string]bool{},
		files: map[string]*segFile{}, indexes: map[string]*segIndex{}, groups: newGroupCache(cfg.CacheRows),
	}, nil
}

// Close closes the hot store. Cold reads in flight complete first; a
// replay being iterated ends with ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return eventcenter.ErrClosed
	}
	err := s.hot.Close()
	s.inUse.Lock()
	s.inUse.Unlock() //nolint:staticcheck // waits for the cold reads in flight
	return err
}

// enter admits a cold read; leave ends it.
func (s *Store) enter(ctx context.Context) error {
	s.inUse.RLock()
	if s.closed.Load() {
		s.inUse.RUnlock()
		return eventcenter.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		s.inUse.RUnlock()
		return err
	}
	return nil
}

func (s *Store) leave() { s.inUse.RUnlock() }

// manifest returns the source's manifest, read again if the cached one is
// older than ManifestMaxAge (or fresh is set).
func (s *Store) manifest(ctx context.Context, source string, fresh bool) (*Manifest, error) {
	now := time.Now()
	s.mu.Lock()
	c := s.manifests[source]
	s.mu.Unlock()
	if c != nil && !fresh && now.Sub(c.loaded) < s.cfg.ManifestMaxAge {
		return c.m, nil
	}
	m, err := readManifest(ctx, s.cold, source)
	if err != nil {
		return nil, err
	}
	s.setManifest(m, now)
	return m, nil
}

func (s *Store) setManifest(m *Manifest, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.manifests[m.Source]; c != nil && c.m.Version > m.Version {
		return
	}
	s.manifests[m.Source] = &cachedManifest{m: m, loaded: at}
}

// Append stores events in the hot store (see eventcenter.Appender). An
// event whose identity is in a segment already is stored in hot again,
// but reads and tiering keep only the first copy (the earliest StoredAt),
// so Append stays idempotent as the contract says.
func (s *Store) Append(ctx context.Context, events []eventcenter.Event) error {
	if s.closed.Load() {
		return eventcenter.ErrClosed
	}
	if err := eventcenter.ValidateBatch(events); err != nil {
		return err
	}
	if err := s.markSources(ctx, events); err != nil {
		return err
	}
	return s.hot.Append(ctx, events)
}

// markSources records, once per process and source, that the source has
// events, so that tiering finds it.
func (s *Store) markSources(ctx context.Context, events []eventcenter.Event) error {
	for i := range events {
		src := events[i].Source
		s.mu.Lock()
		done := s.known[src]
		s.mu.Unlock()
		if done {
			continue
		}
		if err := s.cold.Put(ctx, sourceMarker(src), nil); err != nil {
			return err
		}
		s.mu.Lock()
		s.known[src] = true
		s.mu.Unlock()
	}
	return nil
}

// sameID reports whether a and b are one event (one identity).
func sameID(a, b *eventcenter.Event) bool {
	return a.Key == b.Key && a.Source == b.Source && a.Time.Equal(b.Time) && a.Pos == b.Pos
}

// later reports whether a is after b in a key's order (time, position).
func later(a, b *eventcenter.Event) bool {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c > 0
	}
	return a.Pos.Compare(b.Pos) > 0
}

// AsOf reads the latest event of the key at q.Time from hot and cold and
// answers with the later one (the first stored of one identity).
func (s *Store) AsOf(ctx context.Context, q eventcenter.AsOf) (eventcenter.Event, error) {
	e, found, err := s.latest(ctx, q)
	if err != nil {
		return eventcenter.Event{}, err
	}
	if !found || e.After == nil {
		return eventcenter.Event{}, eventcenter.ErrNotFound
	}
	return e, nil
}

// AsOfBatch implements eventcenter.BatchReader: the hot store answers the
// batch's hot side as one batch of its own (eventcenter.AsOfAll: few scans
// on HBase), then each read is merged with its cold side as AsOf merges
// it. Every read answers as AsOf answers it alone.
func (s *Store) AsOfBatch(ctx context.Context, qs []eventcenter.AsOf, out []eventcenter.AsOfResult) error {
	if s.closed.Load() {
		return eventcenter.ErrClosed
	}
	hot := make([]eventcenter.AsOfResult, len(qs))
	if err := eventcenter.AsOfAll(ctx, s.hot, qs, hot); err != nil {
		return err
	}
	for i := range qs {
		out[i] = eventcenter.AsOfResult{}
		if err := qs[i].Validate(); err != nil {
			out[i].Err = err
			continue
		}
		e, found, err := s.withCold(ctx, qs[i], hot[i].Event, hot[i].Err)
		switch {
		case err != nil && !eventcenter.IsReadError(err):
			return err
		case err != nil:
			out[i].Err = err
		case !found || e.After == nil:
			out[i].Err = eventcenter.ErrNotFound
		default:
			out[i].Event = e
		}
	}
	return nil
}

// GatherWidth is the hot store's (eventcenter.RemoteBatchReader), so that
// a job's runs gather their reads into batches on a tiered HBase as on
// HBase; 0 over a hot store whose reads are local (job.RunAll then does
// not gather).
func (s *Store) GatherWidth() int {
	if r, ok := s.hot.(eventcenter.RemoteBatchReader); ok {
		return r.GatherWidth()
	}
	return 0
}

// latest returns the key's latest event at q.Time (a delete included).
func (s *Store) latest(ctx context.Context, q eventcenter.AsOf) (eventcenter.Event, bool, error) {
	if s.closed.Load() {
		return eventcenter.Event{}, false, eventcenter.ErrClosed
	}
	if err := q.Validate(); err != nil {
		return eventcenter.Event{}, false, err
	}
	// Hot before cold: an event tiering moves meanwhile is evicted from hot
	// only after its segment is committed (and EvictGrace has passed), so a
	// read that misses it in hot finds it in the manifest it reads next.
	hot, err := s.hot.AsOf(ctx, q)
	return s.withCold(ctx, q, hot, err)
}

// withCold is latest given the hot store's answer to q (hot, or hotErr).
func (s *Store) withCold(ctx context.Context, q eventcenter.AsOf, hot eventcenter.Event, hotErr error) (eventcenter.Event, bool, error) {
	found := hotErr == nil
	if hotErr != nil && !errors.Is(hotErr, eventcenter.ErrNotFound) {
		return eventcenter.Event{}, false, hotErr
	}
	cold, cfound, err := s.coldLatest(ctx, q)
	if err != nil {
		return eventcenter.Event{}, false, err
	}
	if !found {
		// The hot store's latest event may be a delete, which AsOf does not
		// return: its history since the cold one tells.
		from := eventcenter.MinTime
		if cfound {
			from = cold.Time
		}
		if hot, found, err = s.hotLast(ctx, q, from); err != nil {
			return eventcenter.Event{}, false, err
		}
	}
	switch {
	case !cfound:
	case !found, later(&cold, &hot):
		hot, found = cold, true
	case sameID(&cold, &hot) && cold.StoredAt.Before(hot.StoredAt):
		hot = cold
	}
	h, err := s.horizon(ctx, q.Source)
	if err != nil {
		return eventcenter.Event{}, false, err
	}
	var latest time.Time
	if found {
		latest = hot.Time
	}
	if err := q.CheckFound(h, latest); err != nil {
		return eventcenter.Event{}, false, err
	}
	return hot, found, nil
}

// horizon is the source's cold horizon (Manifest.DroppedBefore): zero
// unless the cold retention dropped something.
func (s *Store) horizon(ctx context.Context, source string) (time.Time, error) {
	if len(s.cfg.ColdRetention) == 0 {
		return time.Time{}, nil
	}
	m, err := s.manifest(ctx, source, false)
	if err != nil {
		return time.Time{}, err
	}
	return m.DroppedBefore, nil
}

// hotLast is the hot store's last event of the key in [from, q.Time].
func (s *Store) hotLast(ctx context.Context, q eventcenter.AsOf, from time.Time) (eventcenter.Event, bool, error) {
	if q.Time.Before(eventcenter.MinTime) || q.Time.Before(from) {
		return eventcenter.Event{}, false, nil
	}
	h, err := s.hot.History(ctx, eventcenter.HistoryQuery{Source: q.Source, Key: q.Key, From: from, To: q.Time.Add(time.Nanosecond), KnownAt: q.KnownAt})
	if err != nil || len(h) == 0 {
		return eventcenter.Event{}, false, err
	}
	return h[len(h)-1], true, nil
}

// keyQuery is a read of one source's key or index value.
type keyQuery interface {
	Validate() error
	CheckHorizon(horizon time.Time) error
}

// admitKeyRead refuses a read of source on a closed store, an invalid
// query, and a query behind the source's horizon.
func (s *Store) admitKeyRead(ctx context.Context, source string, q keyQuery) error {
	if s.closed.Load() {
		return eventcenter.ErrClosed
	}
	if err := q.Validate(); err != nil {
		return err
	}
	h, err := s.horizon(ctx, source)
	if err != nil {
		return err
	}
	return q.CheckHorizon(h)
}

// History merges the key's hot and cold events, one per identity.
func (s *Store) History(ctx context.Context, q eventcenter.HistoryQuery) ([]eventcenter.Event, error) {
	if err := s.admitKeyRead(ctx, q.Source, q); err != nil {
		return nil, err
	}
	hot, err := s.hot.History(ctx, q)
	if err != nil {
		return nil, err
	}
	cold, err := s.coldHistory(ctx, q)
	if err != nil {
		return nil, err
	}
	return mergeFirst(hot, cold), nil
}

// mergeFirst merges two lists in key order (time, position) into one,
// keeping of each identity the copy stored first.
func mergeFirst(a, b []eventcenter.Event) []eventcenter.Event {
	if len(b) == 0 {
		return a
	}
	out := slices.Concat(a, b)
	slices.SortStableFunc(out, func(x, y eventcenter.Event) int { return keyOrder(&x, &y) })
	return slices.CompactFunc(out, func(x, y eventcenter.Event) bool { return sameID(&x, &y) })
}

// Lookup takes as candidates the keys the hot store finds and the keys
// whose cold events had the value at or before q.Time, and answers with
// those whose merged state at q.Time has it.
func (s *Store) Lookup(ctx context.Context, q eventcenter.LookupQuery) ([]eventcenter.Event, error) {
	if err := s.admitKeyRead(ctx, q.Source, q); err != nil {
		return nil, err
	}
	hot, err := s.hot.Lookup(ctx, q) // ErrUnknownIndex for an undeclared index
	if err != nil {
		return nil, err
	}
	ixs, err := s.hot.ListIndexes(ctx, q.Source)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(ixs, func(ix eventcenter.Index) bool { return ix.Name == q.Index })
	if i < 0 {
		return nil, fmt.Errorf("%w: %s.%s", eventcenter.ErrUnknownIndex, q.Source, q.Index)
	}
	column := ixs[i].Column
	keys, err := s.coldCandidates(ctx, q, column)
	if err != nil {
		return nil, err
	}
	for i := range hot {
		keys = append(keys, hot[i].Key)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var out []eventcenter.Event
	for _, k := range keys {
		e, err := s.AsOf(ctx, eventcenter.AsOf{Source: q.Source, Key: k, Time: q.Time, KnownAt: q.KnownAt})
		if errors.Is(err, eventcenter.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if v, ok := eventcenter.IndexValue(e.After[column]); ok && v == q.Value {
			out = append(out, e)
		}
	}
	return out, nil
}

// Replay merges the hot replay with the cold segments of every source, one
// event per identity (the copy stored first).
func (s *Store) Replay(ctx context.Context, q eventcenter.ReplayQuery) iter.Seq2[eventcenter.Event, error] {
	return func(yield func(eventcenter.Event, error) bool) {
		if s.closed.Load() {
			yield(eventcenter.Event{}, eventcenter.ErrClosed)
			return
		}
		if err := q.Validate(); err != nil {
			yield(eventcenter.Event{}, err)
			return
		}
		for _, src := range q.Sources {
			h, err := s.horizon(ctx, src)
			if err == nil {
				err = q.CheckHorizon(h)
			}
			if err != nil {
				yield(eventcenter.Event{}, err)
				return
			}
		}
		streams := []iter.Seq2[eventcenter.Event, error]{s.hot.Replay(ctx, q)}
		for _, src := range slices.Compact(slices.Sorted(slices.Values(q.Sources))) {
			streams = append(streams, s.coldReplay(ctx, src, q.From, q.To, q.KnownAt))
		}
		var pending eventcenter.Event
		have := false
		for e, err := range eventcenter.MergeReplay(streams...) {
			if err != nil {
				yield(eventcenter.Event{}, err)
				return
			}
			if have && sameID(&pending, &e) {
				if e.StoredAt.Before(pending.StoredAt) {
					pending = e
				}
				continue
			}
			if have && !yield(pending, nil) {
				return
			}
			pending, have = e, true
		}
		if have {
			yield(pending, nil)
		}
	}
}

// DeclareIndex declares the index in the hot store. Cold lookups read the
// column from the segments' rows, so an index covers cold events as soon as
// it is declared.
func (s *Store) DeclareIndex(ctx context.Context, ix eventcenter.Index) error {
	return s.hot.DeclareIndex(ctx, ix)
}

// ListIndexes lists the hot store's declarations.
func (s *Store) ListIndexes(ctx context.Context, source string) ([]eventcenter.Index, error) {
	return s.hot.ListIndexes(ctx, source)
}
