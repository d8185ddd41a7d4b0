package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// The model test's little world: few sources and keys, so that keys collide,
// keys of every length (replay orders equal positions by key bytes), and
// event times on a coarse grid, so that many are equal.
var (
	mSources = []string{"m.orders", "m.o", "m.users"}
	mKeys    = []string{"a", "aa", "ab", "b", "\x00", "k1", "k10", "k2", "\xff\x00"}
	mBase    = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	mSeconds = 100 // most event times are whole seconds in [mBase, mBase+mSeconds)
	mIndexes = []eventcenter.Index{
		{Name: "user", Column: "user"},
		{Name: "st", Column: "status"},
		{Name: "user", Column: "status"}, // conflicts with the first
		{Name: "ok", Column: "ok"},
	}
	mValues = []string{"1", "2", "3", "new", "paid", "x", "true", "false"}
)

func runModel(t *testing.T, newStore Factory, opts Options) {
	seeds := []uint64{1}
	for len(seeds) < opts.ModelSeeds {
		seeds = append(seeds, rand.Uint64()%1e12)
	}
	if s := os.Getenv("STORETEST_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("STORETEST_SEED=%q: %v", s, err)
		}
		seeds = []uint64{seed}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel() // each seed has its own store
			t.Logf("model run with seed %d, %d operations (STORETEST_SEED=%d replays it)", seed, opts.ModelOps, seed)
			clock := NewClock(ClockStart)
			r := &modelRun{
				t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x7d1de)),
				ctx: t.Context(), clock: clock, m: newModel(clock.Now),
			}
			r.s = newStore(t, clock.Now)
			t.Cleanup(func() {
				if err := r.s.Close(); err != nil && !errors.Is(err, eventcenter.ErrClosed) {
					t.Errorf("Close: %v", err)
				}
			})
			r.run(opts.ModelOps)
		})
	}
}

type modelRun struct {
	t      *testing.T
	seed   uint64
	rng    *rand.Rand
	ctx    context.Context
	s      eventcenter.Store
	clock  *Clock
	m      *model
	op     int
	recent []noted             // the last operations, for failure reports
	gen    []eventcenter.Event // every generated event, for duplicates and query times
	stamps []time.Time         // every StoredAt stamp used, for KnownAt
	counts map[string]int      // operations by kind
}

// fail reports a mismatch with what is needed to replay it.
func (r *modelRun) fail(format string, args ...any) {
	r.t.Helper()
	var recent []string
	for _, n := range r.recent {
		recent = append(recent, fmt.Sprintf("#%d ", n.op)+fmt.Sprintf(n.format, n.args...))
	}
	r.t.Fatalf("MODEL MISMATCH (seed %d, op %d): %s\nlast operations:\n  %s\nreplay: STORETEST_SEED=%d go test -run '%s' <package>",
		r.seed, r.op, fmt.Sprintf(format, args...), strings.Join(recent, "\n  "), r.seed, r.t.Name())
}

// note records an operation for the failure report; it is formatted only
// if the report is printed.
func (r *modelRun) note(format string, args ...any) {
	if len(r.recent) == 16 {
		r.recent = r.recent[1:]
	}
	r.recent = append(r.recent, noted{r.op, format, args})
}

type noted struct {
	op     int
	format string
	args   []any
}

func (r *modelRun) run(ops int) {
	r.counts = map[string]int{}
	for r.op = 1; r.op <= ops; r.op++ {
		switch n := r.rng.IntN(100); {
		case n < 45:
			r.counts["append"]++
			r.appendOp()
			r.readOp() // check right after the append
		case n < 52:
			r.counts["watermark"]++
			r.watermarkOp()
		case n < 53 && r.op > ops/10: // midway, over data that exists
			r.counts["declare"]++
			r.declareOp()
		default:
			r.readOp()
		}
		if r.op%2500 == 0 {
			r.fullCheck()
		}
	}
	r.fullCheck()
	r.t.Logf("%d operations, %d events stored; %v", ops, len(r.m.events), r.counts)
}

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

// Generators.

func (r *modelRun) eventTime() time.Time {
	switch n := r.rng.IntN(100); {
	case n < 4: // late: far in the past
		return mBase.Add(-time.Duration(1+r.rng.IntN(30*24)) * time.Hour)
	case n < 5: // far apart, within the allowed years
		return pick(r.rng, []time.Time{time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2200, 1, 1, 0, 0, 0, 7, time.UTC), time.Unix(0, 0)})
	case n < 15:
		return mBase.Add(time.Duration(r.rng.IntN(mSeconds))*time.Second + time.Duration(r.rng.IntN(3)))
	}
	return mBase.Add(time.Duration(r.rng.IntN(mSeconds)) * time.Second)
}

func (r *modelRun) position() eventcenter.Position {
	if r.rng.IntN(50) == 0 {
		return eventcenter.Position{Log: math.MaxUint64 - uint64(r.rng.IntN(2)), Offset: math.MaxUint64 - uint64(r.rng.IntN(2))}
	}
	return eventcenter.Position{Log: uint64(r.rng.IntN(2)), Offset: uint64(r.rng.IntN(4))}
}

func (r *modelRun) row() eventcenter.Row {
	row := eventcenter.Row{"n": int64(r.op)}
	if v := pick(r.rng, []any{int64(1), 2, "2", eventcenter.Decimal("3"), "1", nil, "(none)"}); v != "(none)" {
		row["user"] = v
	}
	if v := pick(r.rng, []string{"new", "paid", "gone", ""}); v != "" {
		row["status"] = v
	}
	if r.rng.IntN(5) == 0 {
		row["f"] = r.rng.NormFloat64()
		row["b"] = []byte{byte(r.op), 0, 0xff}
		row["t"] = mBase.Add(time.Duration(r.rng.Int64N(int64(200*365*24*time.Hour))) - 100*365*24*time.Hour).In(time.FixedZone("M", 5400))
		row["ok"] = r.rng.IntN(2) == 0
		row["d"] = eventcenter.Decimal(fmt.Sprintf("%d.%02d", r.rng.IntN(1000), r.rng.IntN(100)))
	}
	return row
}

// payload sets a random operation and rows on e.
func (r *modelRun) payload(e *eventcenter.Event) {
	e.Op = pick(r.rng, []eventcenter.Op{
		eventcenter.OpInsert, eventcenter.OpInsert, eventcenter.OpUpdate, eventcenter.OpUpdate, eventcenter.OpUpdate,
		eventcenter.OpDelete, eventcenter.OpDelete, eventcenter.OpSnapshot, eventcenter.OpCorrection, eventcenter.OpCorrection,
		eventcenter.OpMessage,
	})
	e.After, e.Before = r.row(), nil
	switch {
	case e.Op == eventcenter.OpDelete,
		e.Op == eventcenter.OpCorrection && r.rng.IntN(3) == 0,
		e.Op == eventcenter.OpUpdate && r.rng.IntN(30) == 0:
		e.After = nil
	}
	if r.rng.IntN(5) == 0 {
		e.Before = r.row()
	}
}

func (r *modelRun) newEvent() eventcenter.Event {
	if len(r.gen) > 0 && r.rng.IntN(100) < 15 { // a duplicate of an earlier event
		e := pick(r.rng, r.gen)
		if r.rng.IntN(2) == 0 {
			r.payload(&e) // same identity, another payload: must be ignored
		}
		if r.rng.IntN(4) == 0 {
			e.Time = e.Time.In(time.FixedZone("D", -3600)) // the same instant
		}
		e.StoredAt = time.Time{}
		return e
	}
	e := eventcenter.Event{Source: pick(r.rng, mSources), Key: pick(r.rng, mKeys), Time: r.eventTime(), Pos: r.position()}
	r.payload(&e)
	return e
}

var corruptions = []func(e *eventcenter.Event){
	func(e *eventcenter.Event) { e.Source = "" },
	func(e *eventcenter.Event) { e.Key = "" },
	func(e *eventcenter.Event) { e.Time = time.Time{} },
	func(e *eventcenter.Event) { e.Op = 9 },
	func(e *eventcenter.Event) { e.Op, e.After = eventcenter.OpDelete, eventcenter.Row{"x": int64(1)} },
	func(e *eventcenter.Event) { e.After = eventcenter.Row{"x": uint8(1)} },
	func(e *eventcenter.Event) { e.Before = eventcenter.Row{"x": math.NaN()} },
}

// Operations.

func (r *modelRun) appendOp() {
	if r.rng.IntN(10) < 6 { // StoredAt moves; sometimes not at all between appends
		r.clock.Advance(time.Duration(r.rng.IntN(3))*time.Millisecond + time.Duration(r.rng.IntN(2)))
	}
	batch := make([]eventcenter.Event, 1+r.rng.IntN(4))
	for i := range batch {
		batch[i] = r.newEvent()
	}
	bad := -1
	if r.rng.IntN(40) == 0 {
		bad = r.rng.IntN(len(batch))
		e := batch[bad]
		pick(r.rng, corruptions)(&e)
		batch[bad] = e
	}
	stamp, want := r.m.append(batch)
	r.note("append %d events at %s (bad #%d): %s", len(batch), timeText(stamp), bad, batchText(batch))
	got := r.s.Append(r.ctx, batch)
	if want != nil {
		var wi, gi *eventcenter.InvalidEventError
		errors.As(want, &wi)
		if !errors.As(got, &gi) || !errors.Is(got, eventcenter.ErrInvalidEvent) || gi.Index != wi.Index {
			r.fail("Append of a batch with bad event #%d: error %v, want an *InvalidEventError for #%d (%v)", bad, got, wi.Index, want)
		}
		return
	}
	if got != nil {
		r.fail("Append: %v", got)
	}
	if len(r.stamps) == 0 || !r.stamps[len(r.stamps)-1].Equal(stamp) {
		r.stamps = append(r.stamps, stamp)
	}
	r.gen = append(r.gen, batch...)
}

// timeText and lazy format when the failure report is printed.
type timeText time.Time

func (t timeText) String() string { return fmtTime(time.Time(t)) }

type lazy func() string

func (f lazy) String() string { return f() }

// batchText prints a batch, one event a line, when formatted.
type batchText []eventcenter.Event

func (b batchText) String() string {
	var s []string
	for _, e := range b {
		s = append(s, fmtEvent(e))
	}
	return "\n      " + strings.Join(s, "\n      ")
}

func (r *modelRun) watermarkOp() {
	src := pick(r.rng, append(mSources, "m.none"))
	part := int32(r.rng.IntN(3))
	var tm time.Time
	cur, ok := r.m.marks[src][part]
	switch n := r.rng.IntN(100); {
	case !ok:
		tm = mBase.Add(time.Duration(r.rng.IntN(mSeconds)) * time.Second)
	case n < 25: // backwards: both must refuse
		tm = cur.Add(-time.Duration(1 + r.rng.IntN(3)*int(time.Second)))
	case n < 40:
		tm = cur.In(time.FixedZone("E", 600))
	default:
		tm = cur.Add(time.Duration(r.rng.IntN(4))*time.Second + time.Duration(r.rng.IntN(2)))
	}
	r.note("advance watermark %s/%d to %s", src, part, timeText(tm))
	want := r.m.advance(src, part, tm)
	got := r.s.AdvanceWatermark(r.ctx, src, part, tm)
	if (want == nil) != (got == nil) || (want != nil && !errors.Is(got, eventcenter.ErrWatermarkRegression)) {
		r.fail("AdvanceWatermark(%s, %d, %s): error %v, want %v", src, part, fmtTime(tm), got, want)
	}
	r.checkMarks(src)
}

func (r *modelRun) checkMarks(src string) {
	wm, err := r.s.Watermark(r.ctx, src)
	if err != nil {
		r.fail("Watermark(%s): %v", src, err)
	}
	if want := r.m.watermark(src); !wm.Equal(want) || wm.IsZero() != want.IsZero() {
		r.fail("Watermark(%s) = %s, want %s", src, fmtTime(wm), fmtTime(want))
	}
	parts, err := r.s.PartitionWatermarks(r.ctx, src)
	if err != nil {
		r.fail("PartitionWatermarks(%s): %v", src, err)
	}
	want := r.m.marks[src]
	same := len(parts) == len(want)
	for p, t := range want {
		if g, ok := parts[p]; !ok || !g.Equal(t) {
			same = false
		}
	}
	if !same {
		r.fail("PartitionWatermarks(%s) = %v, want %v", src, parts, want)
	}
}

func (r *modelRun) declareOp() {
	ix := pick(r.rng, mIndexes)
	ix.Source = pick(r.rng, mSources)
	r.note("declare index %+v", ix)
	want := r.m.declare(ix)
	got := r.s.DeclareIndex(r.ctx, ix)
	if (want == nil) != (got == nil) {
		r.fail("DeclareIndex(%+v): error %v, want %v", ix, got, want)
	}
	r.checkIndexes(ix.Source)
}

func (r *modelRun) checkIndexes(src string) {
	got, err := r.s.ListIndexes(r.ctx, src)
	if err != nil {
		r.fail("ListIndexes(%s): %v", src, err)
	}
	if want := r.m.listIndexes(src); len(got) != len(want) || (len(want) > 0 && !slices.Equal(got, want)) {
		r.fail("ListIndexes(%s) = %+v, want %+v", src, got, want)
	}
}

// queryTime returns a time to read at: often exactly an event's time or one
// nanosecond off it, sometimes far outside every event.
func (r *modelRun) queryTime() time.Time {
	n := r.rng.IntN(100)
	if len(r.gen) > 0 && n < 55 {
		t := pick(r.rng, r.gen).Time
		if n < 15 {
			t = t.Add(time.Duration(r.rng.IntN(3) - 1))
		}
		return t
	}
	switch {
	case n < 58:
		return farFuture
	case n < 60:
		return farPast
	case n < 63:
		return mBase.Add(-40 * 24 * time.Hour)
	}
	return mBase.Add(time.Duration(r.rng.IntN(mSeconds+6)-3)*time.Second + time.Duration(r.rng.IntN(2)))
}

// nearTime is like queryTime without the extremes, for ranges that get cut
// into chunks.
func (r *modelRun) nearTime() time.Time {
	if len(r.gen) > 0 && r.rng.IntN(2) == 0 {
		if t := pick(r.rng, r.gen).Time; t.After(mBase.Add(-time.Hour)) {
			return t
		}
	}
	return mBase.Add(time.Duration(r.rng.IntN(mSeconds+6)-3)*time.Second + time.Duration(r.rng.IntN(2)))
}

// replayRange returns a replay's range: mostly a few seconds of the busy
// event times (a replay of everything each time would be slow), at times
// starting or ending exactly at an event.
func (r *modelRun) replayRange() (from, to time.Time) {
	if r.rng.IntN(4) == 0 {
		return sortedPair(r.nearTime(), r.nearTime())
	}
	from = r.nearTime()
	if r.rng.IntN(3) == 0 {
		return sortedPair(from, from.Add(time.Duration(r.rng.IntN(5)-2)*time.Second))
	}
	return from, from.Add(time.Duration(r.rng.IntN(3))*time.Second + time.Duration(r.rng.IntN(2)))
}

func (r *modelRun) knownAt() time.Time {
	n := r.rng.IntN(100)
	switch {
	case n < 50 || len(r.stamps) == 0:
		return time.Time{}
	case n < 80:
		return pick(r.rng, r.stamps)
	case n < 92:
		return pick(r.rng, r.stamps).Add(time.Duration(r.rng.IntN(3) - 1))
	case n < 96:
		return ClockStart.Add(-time.Nanosecond)
	}
	return r.clock.Now()
}

func (r *modelRun) sources() []string {
	var out []string
	for _, s := range mSources {
		if r.rng.IntN(2) == 0 {
			out = append(out, s)
		}
	}
	if len(out) == 0 || r.rng.IntN(10) == 0 {
		out = append(out, pick(r.rng, append(mSources, "m.none")))
	}
	r.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func sortedPair(a, b time.Time) (time.Time, time.Time) {
	if b.Before(a) {
		return b, a
	}
	return a, b
}

func (r *modelRun) readOp() {
	switch r.rng.IntN(10) {
	case 9:
		r.counts["asof batch"]++
		qs := make([]eventcenter.AsOf, 1+r.rng.IntN(40))
		for i := range qs {
			qs[i] = eventcenter.AsOf{Source: pick(r.rng, mSources), Key: pick(r.rng, mKeys), Time: r.queryTime(), KnownAt: r.knownAt()}
		}
		r.checkAsOfBatch(qs)
	case 0, 1, 2:
		r.counts["asof"]++
		q := eventcenter.AsOf{Source: pick(r.rng, mSources), Key: pick(r.rng, mKeys), Time: r.queryTime(), KnownAt: r.knownAt()}
		r.checkAsOf(q)
	case 3, 4:
		r.counts["history"]++
		from, to := sortedPair(r.queryTime(), r.queryTime())
		if r.rng.IntN(10) == 0 {
			to = from
		}
		q := eventcenter.HistoryQuery{Source: pick(r.rng, mSources), Key: pick(r.rng, mKeys), From: from, To: to, KnownAt: r.knownAt()}
		r.note("history %s/%q [%s, %s) known at %s", q.Source, q.Key, timeText(q.From), timeText(q.To), timeText(q.KnownAt))
		got, err := r.s.History(r.ctx, q)
		if err != nil {
			r.fail("History: %v", err)
		}
		if d := diffEvents(got, r.m.history(q)); d != "" {
			r.fail("History(%s/%q [%s, %s) known at %s):\n%s", q.Source, q.Key, fmtTime(q.From), fmtTime(q.To), fmtTime(q.KnownAt), d)
		}
	case 5, 6:
		r.counts["lookup"]++
		q := eventcenter.LookupQuery{
			Source: pick(r.rng, mSources), Index: pick(r.rng, []string{"user", "st", "ok", "nope"}),
			Value: pick(r.rng, mValues), Time: r.queryTime(), KnownAt: r.knownAt(),
		}
		r.checkLookup(q)
	case 7:
		r.counts["replay"]++
		q := eventcenter.ReplayQuery{Sources: r.sources(), KnownAt: r.knownAt()}
		q.From, q.To = r.replayRange()
		if r.rng.IntN(10) == 0 {
			q.From, q.To = sortedPair(r.queryTime(), r.queryTime())
		}
		r.checkReplay(q)
	case 8:
		r.counts["chunked replay"]++
		from, to := r.replayRange()
		q := eventcenter.ReplayQuery{Sources: r.sources(), From: from, To: to, KnownAt: r.knownAt()}
		size := to.Sub(from)/time.Duration(1+r.rng.IntN(6)) + time.Duration(r.rng.IntN(2))
		if r.rng.IntN(3) == 0 && to.Sub(from) < 10*time.Second {
			size = time.Second // chunk bounds on the events' time grid
		}
		if size <= 0 {
			size = time.Nanosecond
		}
		r.note("chunked replay %s in chunks of %v", lazy(func() string { return fmtReplay(q) }), size)
		chunks, err := eventcenter.SplitRange(from, to, size)
		if err != nil {
			r.fail("SplitRange: %v", err)
		}
		var got []eventcenter.Event
		for _, c := range chunks {
			cq := q
			cq.From, cq.To = c.From, c.To
			evs, err := collect(r.s.Replay(r.ctx, cq))
			if err != nil {
				r.fail("Replay(%s): %v", fmtReplay(cq), err)
			}
			r.m.settle(cq.KnownAt)
			got = append(got, evs...)
		}
		r.counts["replayed events"] += len(got)
		if d := diffEvents(got, r.m.replay(q)); d != "" {
			r.fail("%d chunks of %v of Replay(%s), concatenated:\n%s", len(chunks), size, fmtReplay(q), d)
		}
	}
}

func (r *modelRun) checkAsOf(q eventcenter.AsOf) {
	r.t.Helper()
	r.note("asof %s", lazy(func() string { return fmtAsOf(q) }))
	got, err := r.s.AsOf(r.ctx, q)
	want, werr := r.m.asOf(q)
	switch {
	case werr != nil && !errors.Is(err, eventcenter.ErrNotFound):
		r.fail("AsOf(%s) = %s, %v; want ErrNotFound", fmtAsOf(q), fmtEvent(got), err)
	case werr == nil && err != nil:
		r.fail("AsOf(%s): error %v, want %s", fmtAsOf(q), err, fmtEvent(want))
	case werr == nil:
		if d := diffEvent(got, want); d != "" {
			r.fail("AsOf(%s): %s", fmtAsOf(q), d)
		}
	}
}

// checkAsOfBatch checks a batch of as-of reads (eventcenter.BatchReader)
// against the model, read by read; a store without batches reads them one
// by one.
func (r *modelRun) checkAsOfBatch(qs []eventcenter.AsOf) {
	r.t.Helper()
	b, ok := r.s.(eventcenter.BatchReader)
	if !ok {
		for _, q := range qs {
			r.checkAsOf(q)
		}
		return
	}
	r.note("asof batch of %d, the first %s", len(qs), lazy(func() string { return fmtAsOf(qs[0]) }))
	out := make([]eventcenter.AsOfResult, len(qs))
	if err := b.AsOfBatch(r.ctx, qs, out); err != nil {
		r.fail("AsOfBatch: %v", err)
	}
	for i, q := range qs {
		got, err := out[i].Event, out[i].Err
		want, werr := r.m.asOf(q)
		switch {
		case werr != nil && !errors.Is(err, eventcenter.ErrNotFound):
			r.fail("AsOfBatch read %d, %s = %s, %v; want ErrNotFound", i, fmtAsOf(q), fmtEvent(got), err)
		case werr == nil && err != nil:
			r.fail("AsOfBatch read %d, %s: error %v, want %s", i, fmtAsOf(q), err, fmtEvent(want))
		case werr == nil:
			if d := diffEvent(got, want); d != "" {
				r.fail("AsOfBatch read %d, %s: %s", i, fmtAsOf(q), d)
			}
		}
	}
}

func (r *modelRun) checkLookup(q eventcenter.LookupQuery) {
	r.t.Helper()
	r.note("lookup %s.%s = %q at %s known at %s", q.Source, q.Index, q.Value, timeText(q.Time), timeText(q.KnownAt))
	got, err := r.s.Lookup(r.ctx, q)
	want, werr := r.m.lookup(q)
	switch {
	case werr != nil:
		if !errors.Is(err, eventcenter.ErrUnknownIndex) {
			r.fail("Lookup(%s.%s): error %v, want ErrUnknownIndex", q.Source, q.Index, err)
		}
	case err != nil:
		r.fail("Lookup(%s.%s = %q): %v", q.Source, q.Index, q.Value, err)
	default:
		if d := diffEvents(got, want); d != "" {
			r.fail("Lookup(%s.%s = %q at %s known at %s):\n%s", q.Source, q.Index, q.Value, fmtTime(q.Time), fmtTime(q.KnownAt), d)
		}
	}
}

func (r *modelRun) checkReplay(q eventcenter.ReplayQuery) {
	r.t.Helper()
	r.note("replay %s", lazy(func() string { return fmtReplay(q) }))
	got, err := collect(r.s.Replay(r.ctx, q))
	if err != nil {
		r.fail("Replay(%s): %v", fmtReplay(q), err)
	}
	r.m.settle(q.KnownAt)
	r.counts["replayed events"] += len(got)
	if d := diffEvents(got, r.m.replay(q)); d != "" {
		r.fail("Replay(%s):\n%s", fmtReplay(q), d)
	}
}

// fullCheck compares everything: a replay of every source over all time,
// the latest state of every key as of now and as first known, every
// declared index's every value, every watermark.
func (r *modelRun) fullCheck() {
	r.t.Helper()
	r.note("full check")
	everything := eventcenter.ReplayQuery{Sources: append(slices.Clone(mSources), "m.none"),
		From: farPast, To: farFuture}
	r.checkReplay(everything)
	if len(r.stamps) > 0 {
		everything.KnownAt = r.stamps[len(r.stamps)/2]
		r.checkReplay(everything)
	}
	end := time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, k := range r.m.keys() {
		r.checkAsOf(eventcenter.AsOf{Source: k[0], Key: k[1], Time: end})
		r.checkAsOf(eventcenter.AsOf{Source: k[0], Key: k[1], Time: end, KnownAt: r.knownAt()})
	}
	for _, src := range append(slices.Clone(mSources), "m.none") {
		r.checkIndexes(src)
		r.checkMarks(src)
		for _, ix := range r.m.indexes[src] {
			for _, v := range mValues {
				r.checkLookup(eventcenter.LookupQuery{Source: src, Index: ix.Name, Value: v, Time: end})
			}
		}
	}
}
