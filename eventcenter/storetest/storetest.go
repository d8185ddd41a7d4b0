package storetest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// Factory opens a fresh, empty store whose StoredAt stamps come from now.
// The suite closes the store when the test ends; a factory that must also
// drop what it created (an HBase namespace) registers a t.Cleanup.
type Factory func(t testing.TB, now func() time.Time) eventcenter.Store

// RetentionFactory opens a fresh, empty store like a Factory, keeping only
// the given retention: its Horizon(now) (eventcenter.Retention) is now minus
// retention, on the clock now.
type RetentionFactory func(t testing.TB, now func() time.Time, retention time.Duration) eventcenter.Store

// Options tunes the suite for slower backends. The zero value is the default.
type Options struct {
	// Retention opens a store with a retention, for the horizon cases
	// (eventcenter.ErrBeyondHorizon). Without it they are skipped.
	Retention RetentionFactory
	// ModelOps is the number of random operations of each model run.
	// Default 10,000 (2,000 with -short); STORETEST_OPS overrides it.
	ModelOps int
	// ModelSeeds is the number of model runs: the fixed seed 1, then random
	// seeds (logged). Default 2; STORETEST_SEEDS overrides it, and
	// STORETEST_SEED runs that one seed only.
	ModelSeeds int
}

func (o *Options) setDefaults() {
	if o.ModelOps <= 0 {
		o.ModelOps = 10_000
		if testing.Short() {
			o.ModelOps = 2_000
		}
	}
	if o.ModelSeeds <= 0 {
		o.ModelSeeds = 2
	}
	if n, err := strconv.Atoi(os.Getenv("STORETEST_OPS")); err == nil && n > 0 {
		o.ModelOps = n
	}
	if n, err := strconv.Atoi(os.Getenv("STORETEST_SEEDS")); err == nil && n > 0 {
		o.ModelSeeds = n
	}
}

// Run runs the whole suite with default options.
func Run(t *testing.T, newStore Factory) { RunWith(t, newStore, Options{}) }

// RunWith runs the whole suite. Each subtest opens its own store.
func RunWith(t *testing.T, newStore Factory, opts Options) {
	opts.setDefaults()
	for _, c := range []struct {
		name string
		run  func(*testing.T, *harness)
	}{
		{"AsOf", testAsOf},
		{"SameTimeByPosition", testSameTimeByPosition},
		{"DeleteRevives", testDeleteRevives},
		{"SnapshotCorrection", testSnapshotCorrection},
		{"Idempotent", testIdempotent},
		{"KnownAt", testKnownAt},
		{"History", testHistory},
		{"RowTypes", testRowTypes},
		{"KeysAndTimes", testKeysAndTimes},
		{"LargestRows", testLargestRows},
		{"LargestIndexedValue", testLargestIndexedValue},
		{"Index", testIndex},
		{"IndexDeclaration", testIndexDeclaration},
		{"Replay", testReplay},
		{"ReplayChunks", testReplayChunks},
		{"ReplayStops", testReplayStops},
		{"ReplayRaw", testReplayRaw},
		{"ScanStates", testScanStates},
		{"Watermarks", testWatermarks},
		{"WaitWatermark", testWaitWatermark},
		{"RegisterPartitions", testRegisterPartitions},
		{"InvalidEvents", testInvalidEvents},
		{"InvalidQueries", testInvalidQueries},
		{"Concurrent", testConcurrent},
		{"Closed", testClosed},
		{"CloseInFlight", testCloseInFlight},
		{"KnownAtRepeatable", testKnownAtRepeatable},
		{"TimeBounds", testTimeBounds},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newHarness(t, newStore)) })
	}
	t.Run("Horizon", func(t *testing.T) {
		if opts.Retention == nil {
			t.Skip("no RetentionFactory in Options")
		}
		testHorizon(t, newHarness(t, func(t testing.TB, now func() time.Time) eventcenter.Store {
			return opts.Retention(t, now, horizonRetention)
		}))
	})
	RunBatch(t, newStore, opts)
	t.Run("Model", func(t *testing.T) { runModel(t, newStore, opts) })
}

// RunBatch runs the cases of eventcenter.BatchReader (AsOfBatch, and
// AsOfBatchHorizon with opts.Retention), which RunWith runs too: each
// compares every read of a batch with AsOf. They skip a store that does
// not implement BatchReader.
func RunBatch(t *testing.T, newStore Factory, opts Options) {
	t.Run("AsOfBatch", func(t *testing.T) { testAsOfBatch(t, newHarness(t, newStore), false) })
	t.Run("AsOfBatchHorizon", func(t *testing.T) {
		if opts.Retention == nil {
			t.Skip("no RetentionFactory in Options")
		}
		testAsOfBatch(t, newHarness(t, func(t testing.TB, now func() time.Time) eventcenter.Store {
			return opts.Retention(t, now, horizonRetention)
		}), true)
	})
}

// ClockStart is where the suite's clock starts: StoredAt of the first append.
var ClockStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Clock is the suite's clock for StoredAt. It moves only when told, so
// every StoredAt, and so every as-known-at read, is deterministic. It is
// safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	t      time.Time
	tapped chan struct{} // closed at the first Now after Tap
}

// NewClock returns a clock standing at start.
func NewClock(start time.Time) *Clock { return &Clock{t: start} }

// Now returns the clock's time; hand it to the store as its StoredAt source.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tapped != nil {
		close(c.tapped)
		c.tapped = nil
	}
	return c.t
}

// Tap returns a channel closed when Now is next called: the moment a store
// stamps the append it is about to run, when nothing else reads the clock.
func (c *Clock) Tap() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tapped = make(chan struct{})
	return c.tapped
}

// Advance moves the clock forward by d and returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// harness is one subtest's store, clock and context, with helpers that fail
// the test on unexpected errors.
type harness struct {
	t     *testing.T
	ctx   context.Context
	clock *Clock
	s     eventcenter.Store
}

func newHarness(t *testing.T, newStore Factory) *harness {
	clock := NewClock(ClockStart)
	s := newStore(t, clock.Now)
	t.Cleanup(func() {
		// Close must succeed once every read has ended: a backend that
		// leaks an iterator (an early-broken replay) fails here.
		if err := s.Close(); err != nil && !errors.Is(err, eventcenter.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return &harness{t: t, ctx: t.Context(), clock: clock, s: s}
}

// append appends events as one batch after advancing the clock by a
// millisecond, and returns them as the store must keep them (stamped,
// normalized). Duplicates are not removed from the returned slice.
func (h *harness) append(events ...eventcenter.Event) []eventcenter.Event {
	h.t.Helper()
	stamp := h.clock.Advance(time.Millisecond)
	if err := h.s.Append(h.ctx, events); err != nil {
		h.t.Fatalf("Append: %v", err)
	}
	out := make([]eventcenter.Event, len(events))
	for i, e := range events {
		e.StoredAt = stamp
		out[i] = normEvent(e)
	}
	return out
}

// wantAsOf checks that q finds want (nil: ErrNotFound).
func (h *harness) wantAsOf(q eventcenter.AsOf, want *eventcenter.Event) {
	h.t.Helper()
	got, err := h.s.AsOf(h.ctx, q)
	switch {
	case want == nil && errors.Is(err, eventcenter.ErrNotFound):
	case want == nil && err == nil:
		h.t.Errorf("AsOf(%s): got %s, want ErrNotFound", fmtAsOf(q), fmtEvent(got))
	case want == nil:
		h.t.Errorf("AsOf(%s): error %v, want ErrNotFound", fmtAsOf(q), err)
	case err != nil:
		h.t.Errorf("AsOf(%s): error %v, want %s", fmtAsOf(q), err, fmtEvent(*want))
	default:
		if d := diffEvent(got, *want); d != "" {
			h.t.Errorf("AsOf(%s): %s", fmtAsOf(q), d)
		}
	}
}

func (h *harness) history(q eventcenter.HistoryQuery) []eventcenter.Event {
	h.t.Helper()
	got, err := h.s.History(h.ctx, q)
	if err != nil {
		h.t.Fatalf("History(%+v): %v", q, err)
	}
	return got
}

func (h *harness) wantHistory(q eventcenter.HistoryQuery, want ...eventcenter.Event) {
	h.t.Helper()
	if d := diffEvents(h.history(q), want); d != "" {
		h.t.Errorf("History(%s/%q [%s, %s) known at %s):\n%s", q.Source, q.Key, fmtTime(q.From), fmtTime(q.To), fmtTime(q.KnownAt), d)
	}
}

// replay collects a replay, failing the test on an error.
func (h *harness) replay(q eventcenter.ReplayQuery) []eventcenter.Event {
	h.t.Helper()
	got, err := collect(h.s.Replay(h.ctx, q))
	if err != nil {
		h.t.Fatalf("Replay(%s): %v", fmtReplay(q), err)
	}
	return got
}

func (h *harness) wantReplay(q eventcenter.ReplayQuery, want ...eventcenter.Event) {
	h.t.Helper()
	if d := diffEvents(h.replay(q), want); d != "" {
		h.t.Errorf("Replay(%s):\n%s", fmtReplay(q), d)
	}
}

func (h *harness) lookup(q eventcenter.LookupQuery) []eventcenter.Event {
	h.t.Helper()
	got, err := h.s.Lookup(h.ctx, q)
	if err != nil {
		h.t.Fatalf("Lookup(%+v): %v", q, err)
	}
	return got
}

func (h *harness) wantLookup(q eventcenter.LookupQuery, want ...eventcenter.Event) {
	h.t.Helper()
	if d := diffEvents(h.lookup(q), want); d != "" {
		h.t.Errorf("Lookup(%s.%s = %q at %s known at %s):\n%s", q.Source, q.Index, q.Value, fmtTime(q.Time), fmtTime(q.KnownAt), d)
	}
}

func (h *harness) declare(ix eventcenter.Index) {
	h.t.Helper()
	if err := h.s.DeclareIndex(h.ctx, ix); err != nil {
		h.t.Fatalf("DeclareIndex(%+v): %v", ix, err)
	}
}

// cancelAfterFirst iterates what scan yields for a context that it
// cancels at the first item, and returns how many items came and the
// error that ended the iteration.
func cancelAfterFirst[T any](parent context.Context, scan func(context.Context) iter.Seq2[T, error]) (int, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	count := 0
	for _, err := range scan(ctx) {
		if err != nil {
			return count, err
		}
		count++
		cancel()
	}
	return count, nil
}

// collect drains a replay; it stops at the first error, checking that the
// error comes with a zero Event.
func collect(seq iter.Seq2[eventcenter.Event, error]) ([]eventcenter.Event, error) {
	var out []eventcenter.Event
	var err error
	for e, e2 := range seq {
		if e2 != nil {
			if !isZeroEvent(e) {
				return out, fmt.Errorf("replay yielded error %w with a non-zero event %s", e2, fmtEvent(e))
			}
			err = e2
			break
		}
		out = append(out, e)
	}
	return out, err
}

// Test data helpers.

// t0 is the base event time of the hand-written cases.
var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

// at returns t0 plus s seconds.
func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func pos(log, off uint64) eventcenter.Position { return eventcenter.Position{Log: log, Offset: off} }

// ev builds an event; after nil means no After row.
func ev(source, key string, t time.Time, p eventcenter.Position, op eventcenter.Op, after eventcenter.Row) eventcenter.Event {
	return eventcenter.Event{Source: source, Key: key, Time: t, Pos: p, Op: op, After: after}
}

func row(kv ...any) eventcenter.Row {
	r := eventcenter.Row{}
	for i := 0; i+1 < len(kv); i += 2 {
		r[kv[i].(string)] = kv[i+1]
	}
	return r
}

func ptr(e eventcenter.Event) *eventcenter.Event { return &e }

// Query bounds far outside the years events can have (1678-2262): reads
// must answer them as they read, not wrap around.
var (
	farPast   = time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)
	farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
)
