package embedded

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// Table prefixes within the one keyspace.
const (
	tabEvents = 'e'
	tabTime   = 't'
	tabIndex  = 'i'
	tabMarks  = 'w'
	tabMeta   = 'm'
)

// Config configures a Store. The zero value of every field but Dir is a
// sane default.
type Config struct {
	// Dir is the folder of the store's files. Required unless InMemory.
	Dir string
	// InMemory keeps everything in memory (for tests); Dir is ignored.
	InMemory bool
	// CacheBytes is the block cache size. Default 256 MiB.
	CacheBytes int64
	// NoSync skips the fsync of each append (faster, loses the last writes
	// on a machine crash, not on a process crash). Default false.
	NoSync bool
	// Now stamps StoredAt. Default time.Now.
	Now func() time.Time
	// Retention, if positive, makes the store answer like a hot tier that
	// keeps only that window (HBase's): every read that needs what was
	// stored more than Retention ago fails with eventcenter.ErrBeyondHorizon
	// (see eventcenter.Retention), so code tried on the embedded store meets
	// the production contract. The data itself is kept. Default 0: no
	// horizon.
	Retention time.Duration
	// MustExist: Open fails with ErrNoStore, creating nothing, when Dir
	// holds no store (for commands that consult a store others write).
	// Default false: Open creates the store.
	MustExist bool
}

// ErrNoStore is Open's error when Config.MustExist and Dir holds no store.
var ErrNoStore = errors.New("embedded: no store")

// holdsStore reports whether dir holds a store: Pebble's manifest marker,
// written when a store is first opened.
func holdsStore(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(entries, func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), "marker.manifest.") })
}

func (c *Config) setDefaults() {
	if c.CacheBytes == 0 {
		c.CacheBytes = 256 << 20
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports a Config that cannot open a store.
func (c *Config) Validate() error {
	if c.Dir == "" && !c.InMemory {
		return errors.New("embedded: Config.Dir is required (or set InMemory)")
	}
	if c.CacheBytes < 0 {
		return fmt.Errorf("embedded: Config.CacheBytes %d is negative", c.CacheBytes)
	}
	if c.Retention < 0 {
		return fmt.Errorf("embedded: Config.Retention %v is negative", c.Retention)
	}
	return nil
}

// Store is the embedded event center backend.
type Store struct {
	db        *pebble.DB
	opts      *pebble.Options
	dir       string // the store's folder in opts.FS ("" in memory)
	stamps    *eventcenter.Stamps
	wo        *pebble.WriteOptions
	retention time.Duration

	// Close sets closed and closes life, then takes inUse exclusively, so it
	// waits for every call that entered (holding it shared), then closes the
	// cursors of the replays still being iterated.
	closed  atomic.Bool
	life    chan struct{}
	inUse   sync.RWMutex
	curMu   sync.Mutex
	cursors map[*cursor]struct{}

	iters readIters // of single reads (AsOf), reused until a write

	// ixMu orders DeclareIndex against Append: appends hold it shared while
	// they pick the indexes to write and commit, a declaration exclusively
	// while it indexes what is already stored.
	ixMu    sync.RWMutex
	indexes map[string][]eventcenter.Index // by source, sorted by name

	markMu  sync.Mutex
	marks   map[string]map[int32]time.Time
	waiters map[string]chan struct{} // closed when the source's marks move
}

var _ eventcenter.Store = (*Store)(nil)

// formatMajorVersion is the Pebble format of the store's files: columnar
// tables (TableFormatPebblev6), whose blocks' keys are searched as
// columns instead of decoded entry by entry from a restart point.
// Measured beside the row format (Pebble's default), alternating:
// BenchmarkSampleChunk 3,744-3,952 beside 3,833-4,202 cpu-ns a row.
// Opening a store of an older format ratchets it up (any command that
// opens it, read-only ones too): its tables read as before and stay in
// the row format until a compaction takes them in (one alone in the
// bottom level stays until newer data over its keys reaches it). A
// ratcheted store opens only with a Pebble that knows this format
// (v2.1 and later; every tidemark release has used v2.1.7).
var formatMajorVersion = pebble.FormatTableFormatV6

// pebbleOptions returns the store's Pebble options over cache.
func pebbleOptions(cache *pebble.Cache) *pebble.Options {
	opts := &pebble.Options{
		Cache:              cache,
		Merger:             firstWins,
		FormatMajorVersion: formatMajorVersion,
		MemTableSize:       64 << 20,
		Logger:             quietLogger{},
	}
	for i := range opts.Levels {
		l := &opts.Levels[i]
		l.FilterPolicy = bloom.FilterPolicy(10)
		// Blocks of 32 KiB and index blocks of 256 KiB (CockroachDB's
		// sizes; Pebble's defaults are 4 KiB for both): a read seeks
		// through a one-level index to a block of ~8x the rows, so a
		// batch's sorted reads share blocks and a point read loads fewer
		// of them. Measured beside the defaults, alternating: AsOfBatch
		// 1.74-1.83 beside 2.06-2.17 µs a read (batches of 8,192),
		// AsOf 232-269k beside 199-215k reads/s (BenchmarkAsOfBatch,
		// BenchmarkAsOf). Tables written before keep their blocks until
		// compacted.
		l.BlockSize, l.IndexBlockSize = 32<<10, 256<<10
	}
	return opts
}

// Open opens (creating if needed) the store in cfg.Dir.
func Open(cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cache := pebble.NewCache(cfg.CacheBytes)
	defer cache.Unref()
	opts := pebbleOptions(cache)
	dir := cfg.Dir
	if cfg.InMemory {
		opts.FS, dir = vfs.NewMem(), ""
	}
	opts.EnsureDefaults() // Evict writes tables with them
	if cfg.MustExist && !cfg.InMemory {
		// Pebble's own check (ErrorIfNotExists) leaves its LOCK file
		// behind; a store has a manifest marker from its first open.
		if !holdsStore(dir) {
			return nil, fmt.Errorf("%w in %s", ErrNoStore, cfg.Dir)
		}
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", cfg.Dir, err)
	}
	s := &Store{
		db: db, opts: opts, dir: dir, stamps: eventcenter.NewStamps(cfg.Now), wo: pebble.Sync, retention: cfg.Retention,
		life: make(chan struct{}), cursors: map[*cursor]struct{}{},
		indexes: map[string][]eventcenter.Index{},
		marks:   map[string]map[int32]time.Time{},
		waiters: map[string]chan struct{}{},
	}
	if cfg.NoSync {
		s.wo = pebble.NoSync
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	removeEvictTables(opts.FS, dir) // left by an Evict that died
	return s, nil
}

// load reads index declarations and watermarks into memory.
func (s *Store) load() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tabMeta}, UpperBound: []byte{tabMeta + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		var ix eventcenter.Index
		if err := decodeIndexDecl(it.Key()[1:], it.Value(), &ix); err != nil {
			it.Close()
			return err
		}
		s.indexes[ix.Source] = append(s.indexes[ix.Source], ix)
	}
	if err := it.Close(); err != nil {
		return err
	}
	it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tabMarks}, UpperBound: []byte{tabMarks + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		source, part, t, err := decodeMark(it.Key()[1:], it.Value())
		if err != nil {
			return err
		}
		if s.marks[source] == nil {
			s.marks[source] = map[int32]time.Time{}
		}
		s.marks[source][part] = t
	}
	return it.Error()
}

// Close closes the store. It waits for the calls in flight (an index
// being built stops), closes the cursors of replays still being iterated
// (their next step yields ErrClosed), wakes WaitWatermark with ErrClosed,
// and then closes the database.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return eventcenter.ErrClosed
	}
	close(s.life)
	s.inUse.Lock()
	defer s.inUse.Unlock()
	var errs []error
	s.curMu.Lock()
	for c := range s.cursors {
		errs = append(errs, c.close())
	}
	clear(s.cursors)
	s.curMu.Unlock()
	errs = append(errs, s.iters.close())
	return errors.Join(append(errs, s.db.Close())...)
}

// Horizon implements eventcenter.Retention: now minus Config.Retention, or
// zero without one.
func (s *Store) Horizon(now time.Time) time.Time {
	if s.retention <= 0 {
		return time.Time{}
	}
	return now.Add(-s.retention)
}

func (s *Store) horizon() time.Time { return s.Horizon(s.stamps.Now()) }

// check admits a call that uses no database resource.
func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return eventcenter.ErrClosed
	}
	return ctx.Err()
}

// enter admits a call that uses the database; the call must leave when it
// is done with it. Close waits for the calls that entered.
func (s *Store) enter(ctx context.Context) error {
	s.inUse.RLock()
	if err := s.check(ctx); err != nil {
		s.inUse.RUnlock()
		return err
	}
	return nil
}

func (s *Store) leave() { s.inUse.RUnlock() }

// opCtx returns a context that also ends when the store closes.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.life:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// cursor is a database iterator that outlives the call that opened it (a
// replay being iterated by its caller), so that Close can close it under
// the reader's feet: each step holds its lock, and finds it closed after
// Close.
type cursor struct {
	mu     sync.Mutex
	it     *pebble.Iterator
	closed bool
}

func (c *cursor) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.it.Close()
}

// openCursor opens a registered iterator; the caller has entered.
func (s *Store) openCursor(opts *pebble.IterOptions) (*cursor, error) {
	it, err := s.db.NewIter(opts)
	if err != nil {
		return nil, err
	}
	c := &cursor{it: it}
	s.curMu.Lock()
	s.cursors[c] = struct{}{}
	s.curMu.Unlock()
	return c, nil
}

// closeCursor closes c if Close has not, and forgets it.
func (s *Store) closeCursor(c *cursor) error {
	s.curMu.Lock()
	delete(s.cursors, c)
	s.curMu.Unlock()
	return c.close()
}

// Append implements eventcenter.Appender.
func (s *Store) Append(ctx context.Context, events []eventcenter.Event) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	if err := eventcenter.ValidateBatch(events); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	s.ixMu.RLock()
	defer s.ixMu.RUnlock()
	b := s.db.NewBatch()
	defer b.Close()
	// Commit returns once the batch is visible: then known-at reads at the
	// stamp or later stop waiting for it.
	stored, publish := s.stamps.Stamp()
	defer publish()
	var key, val []byte
	for i := range events {
		e := &events[i]
		key = append(key[:0], tabEvents)
		key = codec.EventKey(key, e.Source, e.Key, e.Time, e.Pos)
		stamped := eventcenter.Event{Op: e.Op, After: e.After, Before: e.Before, StoredAt: stored}
		val = codec.EncodeBody(val[:0], &stamped)
		if err := b.Merge(key, val, nil); err != nil {
			return err
		}
		key = append(key[:0], tabTime)
		key = codec.TimeKey(key, 1, e.Source, e.Key, e.Time, e.Pos)
		if err := b.Merge(key, val, nil); err != nil { // a covering copy: replays read no events row
			return err
		}
		for _, ix := range s.indexes[e.Source] {
			if v, ok := eventcenter.IndexValue(e.After[ix.Column]); ok {
				key = append(key[:0], tabIndex)
				key = codec.IndexKey(key, e.Source, ix.Name, v, e.Key, e.Time, e.Pos)
				if err := b.Set(key, nil, nil); err != nil {
					return err
				}
			}
		}
	}
	err := b.Commit(s.wo)
	s.iters.wrote() // committed or not: a failed commit may have applied
	return err
}

// AsOf implements eventcenter.Reader.
func (s *Store) AsOf(ctx context.Context, q eventcenter.AsOf) (eventcenter.Event, error) {
	if err := s.enter(ctx); err != nil {
		return eventcenter.Event{}, err
	}
	defer s.leave()
	if err := q.Validate(); err != nil {
		return eventcenter.Event{}, err
	}
	h := s.horizon()
	if err := q.CheckHorizon(h); err != nil {
		return eventcenter.Event{}, err
	}
	var err error
	if q.KnownAt, err = s.stamps.Settle(ctx, q.KnownAt); err != nil {
		return eventcenter.Event{}, err
	}
	e, found, err := s.latest(q)
	switch {
	case err != nil:
		return eventcenter.Event{}, err
	case !found:
		e.Time = time.Time{}
	}
	if err := q.CheckFound(h, e.Time); err != nil {
		return eventcenter.Event{}, err
	}
	if !found || e.After == nil {
		return eventcenter.Event{}, eventcenter.ErrNotFound
	}
	return e, nil
}

// latest returns the key's latest event at q.Time (a delete too) among
// those stored by q.KnownAt, and false if there is none.
func (s *Store) latest(q eventcenter.AsOf) (eventcenter.Event, bool, error) {
	seek := codec.AsOfSeek([]byte{tabEvents}, q.Source, q.Key, q.Time)
	prefixLen := len(seek) - 8
	ri, err := s.iters.get(s.db)
	if err != nil {
		return eventcenter.Event{}, false, err
	}
	it := ri.it
	defer s.iters.put(ri)
	it.SetBounds(seek, codec.PrefixEnd(seek[:prefixLen]))
	for it.First(); it.Valid(); it.Next() {
		var e eventcenter.Event
		ok, err := decodeEvent(it.Key(), it.Value(), q.KnownAt, &e)
		if err != nil {
			return eventcenter.Event{}, false, err
		}
		if ok {
			return e, true, nil
		}
		// stored after KnownAt: look further back
	}
	return eventcenter.Event{}, false, it.Error()
}

// decodeEvent decodes an events-table row into e, reporting false (and
// decoding only the stored-at time) when it was stored after knownAt.
func decodeEvent(key, body []byte, knownAt time.Time, e *eventcenter.Event) (bool, error) {
	ok, err := codec.DecodeBodyStoredBy(body, knownAt, e)
	if err != nil || !ok {
		return false, err
	}
	e.Source, e.Key, e.Time, e.Pos, err = codec.ParseEventKey(key[1:])
	return err == nil, err
}

// storedBy reports whether a body was stored by knownAt (zero: no bound),
// reading only its stored-at time.
func storedBy(body []byte, knownAt time.Time) (bool, error) {
	if knownAt.IsZero() {
		return true, nil
	}
	stored, err := codec.BodyStoredAt(body)
	return err == nil && !stored.After(knownAt), err
}

// History implements eventcenter.Reader.
func (s *Store) History(ctx context.Context, q eventcenter.HistoryQuery) ([]eventcenter.Event, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	if err := q.Validate(); err != nil {
		return nil, err
	}
	if err := q.CheckHorizon(s.horizon()); err != nil {
		return nil, err
	}
	var err error
	if q.KnownAt, err = s.stamps.Settle(ctx, q.KnownAt); err != nil {
		return nil, err
	}
	start, end := codec.HistoryBounds(q.Source, q.Key, q.From, q.To)
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: append([]byte{tabEvents}, start...),
		UpperBound: append([]byte{tabEvents}, end...),
	})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []eventcenter.Event
	for it.Last(); it.Valid(); it.Prev() { // oldest first
		var e eventcenter.Event
		ok, err := decodeEvent(it.Key(), it.Value(), q.KnownAt, &e)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, e)
		}
	}
	return out, it.Error()
}

// Lookup implements eventcenter.Reader.
func (s *Store) Lookup(ctx context.Context, q eventcenter.LookupQuery) ([]eventcenter.Event, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	if err := q.Validate(); err != nil {
		return nil, err
	}
	ix, ok := s.index(q.Source, q.Index)
	if !ok {
		return nil, fmt.Errorf("%w: %q of source %q", eventcenter.ErrUnknownIndex, q.Index, q.Source)
	}
	if err := q.CheckHorizon(s.horizon()); err != nil {
		return nil, err
	}
	var err error
	if q.KnownAt, err = s.stamps.Settle(ctx, q.KnownAt); err != nil {
		return nil, err
	}
	prefix := codec.IndexPrefix([]byte{tabIndex}, q.Source, q.Index, q.Value)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: codec.PrefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	var candidates []string
	for it.First(); it.Valid(); it.Next() {
		key, t, err := codec.ParseIndexSuffix(it.Key()[len(prefix):])
		if err != nil {
			it.Close()
			return nil, err
		}
		if t.After(q.Time) || (len(candidates) > 0 && candidates[len(candidates)-1] == key) {
			continue
		}
		candidates = append(candidates, key)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, err
	}
	var out []eventcenter.Event
	for _, key := range candidates {
		e, found, err := s.latest(eventcenter.AsOf{Source: q.Source, Key: key, Time: q.Time, KnownAt: q.KnownAt})
		if err != nil {
			return nil, err
		}
		if !found || e.After == nil {
			continue
		}
		if v, ok := eventcenter.IndexValue(e.After[ix.Column]); ok && v == q.Value {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b eventcenter.Event) int { return cmp.Compare(a.Key, b.Key) })
	return out, nil
}

// Replay implements eventcenter.Replayer. A replay being iterated when the
// store closes yields ErrClosed at its next step.
func (s *Store) Replay(ctx context.Context, q eventcenter.ReplayQuery) iter.Seq2[eventcenter.Event, error] {
	if err := s.admitReplay(ctx, &q); err != nil {
		return failed[eventcenter.Event](err)
	}
	sources := slices.Compact(slices.Sorted(slices.Values(q.Sources)))
	return func(yield func(eventcenter.Event, error) bool) {
		knownAt, err := s.stamps.Settle(ctx, q.KnownAt)
		if err != nil {
			yield(eventcenter.Event{}, err)
			return
		}
		streams := make([]iter.Seq2[eventcenter.Event, error], len(sources))
		for i, src := range sources {
			streams[i] = s.replaySource(ctx, src, q.From, q.To, knownAt)
		}
		for e, err := range eventcenter.MergeReplay(streams...) {
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// admitReplay checks a replay before it starts: the store open, the query
// valid and within the horizon.
func (s *Store) admitReplay(ctx context.Context, q *eventcenter.ReplayQuery) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := q.Validate(); err != nil {
		return err
	}
	return q.CheckHorizon(s.horizon())
}

// failed is a replay that yields err alone.
func failed[T any](err error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		yield(zero, err)
	}
}

// replaySource streams one source's time table, whose rows carry the
// bodies, through a cursor that Close can close.
func (s *Store) replaySource(ctx context.Context, source string, from, to, knownAt time.Time) iter.Seq2[eventcenter.Event, error] {
	return replayTimes(ctx, s, source, from, to, timeRow(knownAt))
}

// timeRow returns the decoder (see scanTimes) of the time rows stored by
// knownAt (zero: all) into events.
func timeRow(knownAt time.Time) func(key, body []byte, e *eventcenter.Event) (bool, error) {
	return func(key, body []byte, e *eventcenter.Event) (bool, error) {
		ok, err := codec.DecodeBodyStoredBy(body, knownAt, e)
		if err == nil && ok {
			e.Source, e.Key, e.Time, e.Pos, err = codec.ParseTimeKey(key[1:])
		}
		return ok, err
	}
}

// ReplayRaw implements eventcenter.RawReplayer: the replay of one source
// without decoding its rows.
func (s *Store) ReplayRaw(ctx context.Context, source string, from, to, knownAt time.Time) iter.Seq2[eventcenter.RawEvent, error] {
	if err := s.admitReplay(ctx, &eventcenter.ReplayQuery{Sources: []string{source}, From: from, To: to, KnownAt: knownAt}); err != nil {
		return failed[eventcenter.RawEvent](err)
	}
	return func(yield func(eventcenter.RawEvent, error) bool) {
		knownAt, err := s.stamps.Settle(ctx, knownAt)
		if err != nil {
			yield(eventcenter.RawEvent{}, err)
			return
		}
		// The rows are copied under the cursor's lock (Close may release the
		// iterator's blocks once the step returns), into one buffer the
		// next step reuses.
		var buf []byte
		decode := func(key, body []byte, e *eventcenter.RawEvent) (bool, error) {
			// As Replay: a row stored later is skipped unread.
			if ok, err := storedBy(body, knownAt); !ok || err != nil {
				return false, err
			}
			var err error
			buf = append(buf[:0], body...)
			if e.Op, e.StoredAt, e.After, e.Before, err = codec.SplitBody(buf); err != nil {
				return false, err
			}
			_, e.Key, e.Time, e.Pos, err = codec.ParseTimeKey(key[1:])
			e.Source = source
			return true, err
		}
		for e, err := range replayTimes(ctx, s, source, from, to, decode) {
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// replayTimes streams one source's time rows with from <= time < to
// through a cursor that Close can close, each decoded by scanTimes.
func replayTimes[T any](ctx context.Context, s *Store, source string, from, to time.Time, decode func(key, body []byte, e *T) (bool, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		if err := s.enter(ctx); err != nil {
			yield(zero, err)
			return
		}
		c, err := s.openCursor(timeIterOptions(source, from, to))
		s.leave()
		if err != nil {
			yield(zero, err)
			return
		}
		defer s.closeCursor(c)
		for e, err := range scanTimes(ctx, c, decode) {
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

func timeIterOptions(source string, from, to time.Time) *pebble.IterOptions {
	start, end := codec.TimeBounds(0, source, from, to)
	return &pebble.IterOptions{
		LowerBound: append([]byte{tabTime}, start...),
		UpperBound: append([]byte{tabTime}, end...),
	}
}

// scanTimes yields the rows of a time-table cursor that decode (given the
// row's key and value, both valid until the next step) keeps, each step
// under the cursor's lock: after Close closed it, the next step yields
// ErrClosed.
func scanTimes[T any](ctx context.Context, c *cursor, decode func(key, body []byte, e *T) (bool, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		step := func(first bool) (e T, ok, more bool, err error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			switch {
			case c.closed:
				return e, false, false, eventcenter.ErrClosed
			case first:
				more = c.it.First()
			default:
				more = c.it.Next()
			}
			if !more {
				return e, false, false, c.it.Error()
			}
			ok, err = decode(c.it.Key(), c.it.Value(), &e)
			return e, ok, true, err
		}
		for n := 0; ; n++ {
			if n%1024 == 1023 && ctx.Err() != nil {
				yield(zero, ctx.Err())
				return
			}
			e, ok, more, err := step(n == 0)
			switch {
			case err != nil:
				yield(zero, err)
				return
			case !more:
				return
			case ok && !yield(e, nil):
				return
			}
		}
	}
}

func (s *Store) index(source, name string) (eventcenter.Index, bool) {
	s.ixMu.RLock()
	defer s.ixMu.RUnlock()
	for _, ix := range s.indexes[source] {
		if ix.Name == name {
			return ix, true
		}
	}
	return eventcenter.Index{}, false
}

// ListIndexes implements eventcenter.Indexes.
func (s *Store) ListIndexes(ctx context.Context, source string) ([]eventcenter.Index, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	s.ixMu.RLock()
	defer s.ixMu.RUnlock()
	return slices.Clone(s.indexes[source]), nil
}

// DeclareIndex implements eventcenter.Indexes. It indexes the source's
// stored events in batches before it returns; appends wait meanwhile.
func (s *Store) DeclareIndex(ctx context.Context, ix eventcenter.Index) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	if err := ix.Validate(); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx) // Close stops a long build
	defer cancel()
	s.ixMu.Lock()
	defer s.ixMu.Unlock()
	for _, have := range s.indexes[ix.Source] {
		if have.Name == ix.Name {
			if have.Column != ix.Column {
				return fmt.Errorf("%w: index %q of source %q is declared on column %q, not %q",
					eventcenter.ErrInvalidQuery, ix.Name, ix.Source, have.Column, ix.Column)
			}
			return nil
		}
	}
	if err := s.buildIndex(ctx, ix); err != nil {
		if s.closed.Load() {
			return eventcenter.ErrClosed
		}
		return fmt.Errorf("embedded: indexing %s.%s: %w", ix.Source, ix.Name, err)
	}
	if err := s.db.Set(encodeIndexDecl(ix), []byte(ix.Column), pebble.Sync); err != nil {
		return err
	}
	s.indexes[ix.Source] = append(s.indexes[ix.Source], ix)
	slices.SortFunc(s.indexes[ix.Source], func(a, b eventcenter.Index) int { return cmp.Compare(a.Name, b.Name) })
	return nil
}

// buildIndex writes index rows for every stored event of ix.Source; the
// caller has entered.
func (s *Store) buildIndex(ctx context.Context, ix eventcenter.Index) (err error) {
	c, err := s.openCursor(timeIterOptions(ix.Source, eventcenter.AllTime.From, eventcenter.AllTime.To))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.closeCursor(c)) }()
	b := s.db.NewBatch()
	defer func() { b.Close() }()
	for e, err := range scanTimes(ctx, c, timeRow(time.Time{})) {
		if err != nil {
			if s.closed.Load() {
				return eventcenter.ErrClosed
			}
			return err
		}
		if v, ok := eventcenter.IndexValue(e.After[ix.Column]); ok {
			key := codec.IndexKey([]byte{tabIndex}, e.Source, ix.Name, v, e.Key, e.Time, e.Pos)
			if err := b.Set(key, nil, nil); err != nil {
				return err
			}
		}
		if b.Len() > 4<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b.Close()
			b = s.db.NewBatch()
		}
	}
	return b.Commit(pebble.Sync)
}

func encodeIndexDecl(ix eventcenter.Index) []byte {
	k := []byte{tabMeta, 'i'}
	k = codec.MarkPrefix(k, ix.Source)
	return append(k, ix.Name...)
}

func decodeIndexDecl(key, val []byte, ix *eventcenter.Index) error {
	if len(key) < 1 || key[0] != 'i' {
		return fmt.Errorf("embedded: unknown meta row %q", key)
	}
	// the source is length-prefixed exactly like a mark prefix
	src, rest, err := codec.SplitSource(key[1:])
	if err != nil {
		return err
	}
	*ix = eventcenter.Index{Source: src, Name: string(rest), Column: string(val)}
	return nil
}
