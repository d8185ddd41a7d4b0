package job

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// Prefetch is a Store that answers the as-of reads of a batch of runs
// from answers read ahead, in one sorted pass (eventcenter.AsOfAll), and
// passes every other call to the store underneath. A backfill over a
// sample table fills one per batch of rows with the state of each row's
// key at the row's time: the rows' triggers, and the logic's fetches of
// the trigger key as of the trigger time, then cost no store read of
// their own. The logic still runs per row and never knows.
//
// A read is answered from the prefetch only when it asks exactly what was
// read ahead (source, key, time and KnownAt) and the answer cannot have
// changed since: its time is at or before the source's watermark when the
// batch was read, so every event that answer depends on was stored by
// then. Other reads, and every read of a source whose watermark was
// behind, go to the store, so a Prefetch never answers what the store
// would not. A History of the trigger key's own instant [T, T+1ns), which
// a fetch of the trigger key at the trigger time asks, is answered (empty)
// when the prefetched state at T is older than T.
//
// Each fetch owns the rows it is given, as from the store. The first
// fetch of an answer is given the answer's own rows, which the batch read
// decoded for it; a later fetch of the same answer (a run that asks it
// twice, two rows of one key and time) reads the store, whose answer is
// the same (see above) unless the store fails it: a store error, or the
// retention horizon moved past it since the Fill (ErrBeyondHorizon), as
// a read without a prefetch would fail. So the usual run, which fetches its trigger's key
// once, costs no copy of a row. On a Prefetch over rounds (see over),
// whose runs ask their fetches again in every round, every fetch is given
// a copy of the answer's rows instead.
//
// Fill before the runs, then share it read-only: concurrent reads are safe,
// a Fill concurrent with reads is not.
type Prefetch struct {
	eventcenter.Watermarks // the store's
	store                  Store
	*prefetchSet
	copies bool // every fetch is given a copy (see over)
}

// prefetchSet holds the answers of a Prefetch, shared with the Prefetches
// over it (see over).
type prefetchSet struct {
	// byKey holds, for each key read, the index in kept of the latest
	// answer of that key; kept[i].next the one before (-1 for none). A
	// read's key (a string, the map's fast path) finds its answers, which
	// are then matched by source, time and KnownAt.
	byKey map[string]int32
	kept  []prefetched         // the answers, reused from one Fill to the next
	marks map[string]time.Time // source -> watermark before the batch read
}

// prefetched is an answer read ahead, of the read (source, key at the
// time at, as known at knownAt); taken says a fetch was given its rows.
type prefetched struct {
	res         eventcenter.AsOfResult
	source      string
	at, knownAt int64 // UnixNano; knownAt 0 for none
	next        int32
	taken       atomic.Bool
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// find returns the answer kept of q, or nil.
func (s *prefetchSet) find(q *eventcenter.AsOf) *prefetched {
	i, ok := s.byKey[q.Key]
	if !ok {
		return nil
	}
	at, knownAt := q.Time.UnixNano(), nanos(q.KnownAt)
	for ; i >= 0; i = s.kept[i].next {
		if a := &s.kept[i]; a.at == at && a.knownAt == knownAt && a.source == q.Source {
			return a
		}
	}
	return nil
}

var _ Store = (*Prefetch)(nil)

// NewPrefetch returns an empty Prefetch over store.
func NewPrefetch(store Store) *Prefetch {
	return &Prefetch{Watermarks: store, store: store, prefetchSet: &prefetchSet{byKey: map[string]int32{}, marks: map[string]time.Time{}}}
}

// Fill reads the answers of qs ahead, in one sorted pass where the store
// can (eventcenter.BatchReader), into out (len(out) >= len(qs)) and keeps
// them for the runs. It reads each source's watermark first. The error is
// the store's; each read's own answer (ErrNotFound included) is in out.
// The rows in out are the answers' own, which the first fetch of each is
// given: copy what the caller keeps of them before the runs start. Of two
// reads alike, the later's answer is kept.
func (p *Prefetch) Fill(ctx context.Context, qs []eventcenter.AsOf, out []eventcenter.AsOfResult) error {
	if len(p.kept)+len(qs) > math.MaxInt32 {
		return fmt.Errorf("job: a prefetch of more than %d answers", math.MaxInt32)
	}
	for i := range qs {
		src := qs[i].Source
		if _, ok := p.marks[src]; ok {
			continue
		}
		wm, err := p.store.Watermark(ctx, src)
		if err != nil {
			return err
		}
		p.marks[src] = wm
	}
	if err := eventcenter.AsOfAll(ctx, p.store, qs, out); err != nil {
		return err
	}
	p.kept = slices.Grow(p.kept, len(qs))
	for i := range qs {
		q := &qs[i]
		if q.Time.After(p.marks[q.Source]) {
			continue
		}
		k := int32(len(p.kept))
		p.kept = p.kept[:k+1]
		a := &p.kept[k]
		a.res, a.source, a.at, a.knownAt = out[i], q.Source, q.Time.UnixNano(), nanos(q.KnownAt)
		a.taken.Store(false)
		a.next = -1
		if prev, ok := p.byKey[q.Key]; ok {
			a.next = prev
		}
		p.byKey[q.Key] = k
	}
	return nil
}

// Reset forgets the answers and watermarks, keeping the memory.
func (p *Prefetch) Reset() {
	clear(p.byKey)
	clear(p.marks)
	clear(p.kept) // the rows, for the collector
	p.kept = p.kept[:0]
}

// Len returns the number of answers kept since the last Reset: one per
// read filled at or before its source's watermark, reads alike included.
func (p *Prefetch) Len() int { return len(p.kept) }

// AsOf implements eventcenter.Reader.
func (p *Prefetch) AsOf(ctx context.Context, q eventcenter.AsOf) (eventcenter.Event, error) {
	a := p.find(&q)
	switch {
	case a == nil:
	case a.res.Err != nil:
		return eventcenter.Event{}, a.res.Err
	case p.copies:
		e := a.res.Event
		e.After, e.Before = e.After.Clone(), e.Before.Clone()
		return e, nil
	case !a.taken.Swap(true):
		return a.res.Event, nil // the first fetch owns the answer's rows
	}
	return p.store.AsOf(ctx, q)
}

// History implements eventcenter.Reader.
func (p *Prefetch) History(ctx context.Context, q eventcenter.HistoryQuery) ([]eventcenter.Event, error) {
	if q.To.Sub(q.From) == time.Nanosecond {
		a := p.find(&eventcenter.AsOf{Source: q.Source, Key: q.Key, Time: q.From, KnownAt: q.KnownAt})
		if a != nil && a.res.Err == nil && a.res.Event.Time.Before(q.From) {
			// The latest event at or before From is older than From:
			// nothing happened at From.
			return nil, nil
		}
	}
	return p.store.History(ctx, q)
}

// Lookup implements eventcenter.Reader.
func (p *Prefetch) Lookup(ctx context.Context, q eventcenter.LookupQuery) ([]eventcenter.Event, error) {
	return p.store.Lookup(ctx, q)
}

// ListIndexes implements eventcenter.Indexes for a store that lists its
// indexes (a lookup at the trigger's time needs them); see listIndexes.
func (p *Prefetch) ListIndexes(ctx context.Context, source string) ([]eventcenter.Index, error) {
	return listIndexes(ctx, p.store, source)
}

// over returns a Prefetch with p's answers that passes what it cannot
// answer to store, and gives every fetch a copy of the answer's rows:
// store evaluates runs in rounds (rounds.go), each asking its fetches
// again, which another read of store would cost a round trip each.
func (p *Prefetch) over(store Store) *Prefetch {
	return &Prefetch{Watermarks: store, store: store, prefetchSet: p.prefetchSet, copies: true}
}

// listIndexes lists the indexes of source from store, or fails as an
// undeclared index (ErrInvalidFetch to a fetch) if store cannot list them.
func listIndexes(ctx context.Context, store Store, source string) ([]eventcenter.Index, error) {
	ixs, ok := store.(eventcenter.Indexes)
	if !ok {
		return nil, fmt.Errorf("%w: the store (%T) does not list indexes", eventcenter.ErrUnknownIndex, store)
	}
	return ixs.ListIndexes(ctx, source)
}

// gathered is a Store over a store whose reads are remote
// (eventcenter.RemoteBatchReader): the as-of reads of concurrent runs are
// gathered into batches (AsOfBatch) instead of costing a round trip each.
// The runs of one evaluation read through their group (join); every other
// call passes through.
//
// A read waits for no timer, and for no run that is not coming: a batch
// starts as soon as every run of some group waits on a read (or is done)
// and a read of the group has not started, or when width reads wait; at
// most gatherInflight batches are in flight, and a batch that ends starts
// the next one due. So a lone run's read costs one round trip, and the
// reads of many concurrent runs go together, however slowly the runs
// reach them, while another group's runs (the next batch of a RunAll)
// compute or wait. A run waiting on another call to the store (History,
// Lookup, a watermark) counts as waiting too; a run blocked on anything
// else (a fallback read, a call of its own) holds its group's batch until
// it reads or ends.
type gathered struct {
	Store
	batch eventcenter.RemoteBatchReader
	ctx   context.Context // the batches'; a read's own context ends only its wait
	width int

	mu       sync.Mutex
	open     *gatherBatch   // the batch reads join; nil if none
	full     []*gatherBatch // batches of width reads waiting to start, oldest first
	groups   []*gatherGroup
	inflight int
}

// gatherInflight bounds the batches of one gathered store in flight.
const gatherInflight = 2

// gatherBatch is one batch of reads: once done is closed, the answer of
// qs[i] (a read of a run of groups[i]) is out[i], unless the whole batch
// failed with err.
type gatherBatch struct {
	qs     []eventcenter.AsOf
	groups []*gatherGroup
	out    []eventcenter.AsOfResult
	err    error
	done   chan struct{}
}

// gatherGroup is the Store through which the runs of one evaluation read
// from a gathered store. Its counts are under the gathered store's mu.
type gatherGroup struct {
	*gathered
	running int // runs neither waiting on a read nor done
	pending int // reads of its runs in batches not started
}

// join returns the group of runs runs about to read through g; each calls
// exit when done, and the group leaves once all have.
func (g *gathered) join(runs int) *gatherGroup {
	gr := &gatherGroup{gathered: g, running: runs}
	g.mu.Lock()
	g.groups = append(g.groups, gr)
	g.mu.Unlock()
	return gr
}

// exit says that a run of gr is done.
func (gr *gatherGroup) exit() {
	g := gr.gathered
	g.mu.Lock()
	gr.running--
	next := g.take()
	g.mu.Unlock()
	g.start(next)
}

// leave removes gr, whose runs are all done.
func (gr *gatherGroup) leave() {
	g := gr.gathered
	g.mu.Lock()
	g.groups = slices.DeleteFunc(g.groups, func(o *gatherGroup) bool { return o == gr })
	g.mu.Unlock()
}

// gather returns the Store that runs reading store should read through,
// gathering their reads as gathered does, and how many reads it gathers
// into one batch; (store, 0) when store's reads are not remote (nor, under
// a Prefetch, those of the store underneath). ctx bounds the batches: the
// runs' own contexts must end no later.
func gather(ctx context.Context, store Store) (Store, int) {
	switch s := store.(type) {
	case eventcenter.RemoteBatchReader:
		// A width of 0: the store's reads are not remote after all (a
		// tiered store over a local hot store).
		if w := s.GatherWidth(); w > 0 {
			return &gathered{Store: store, batch: s, ctx: ctx, width: w}, w
		}
	case *Prefetch:
		if under, w := gather(ctx, s.store); w > 0 {
			return s.over(under), w
		}
	}
	return store, 0
}

// gatherWidth returns how many reads gather would gather into one batch
// over store; 0 if it would not gather.
func gatherWidth(store Store) int {
	_, w := gather(context.Background(), store)
	return w
}

// AsOf implements eventcenter.Reader: the read joins the next batch.
func (gr *gatherGroup) AsOf(ctx context.Context, q eventcenter.AsOf) (eventcenter.Event, error) {
	g := gr.gathered
	g.mu.Lock()
	b := g.open
	if b == nil {
		b = &gatherBatch{done: make(chan struct{})}
		g.open = b
	}
	i := len(b.qs)
	b.qs, b.groups = append(b.qs, q), append(b.groups, gr)
	if len(b.qs) == g.width {
		g.full, g.open = append(g.full, b), nil
	}
	gr.pending++
	gr.running--
	next := g.take()
	g.mu.Unlock()
	g.start(next)
	var e eventcenter.Event
	var err error
	select {
	case <-b.done:
		if err = b.err; err == nil {
			e, err = b.out[i].Event, b.out[i].Err
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	g.mu.Lock()
	gr.running++
	g.mu.Unlock()
	return e, err
}

// idle runs call, a run's call to the store underneath, with the run
// counted as waiting: its group's reads need not wait for it to return.
func (gr *gatherGroup) idle(call func()) {
	g := gr.gathered
	g.mu.Lock()
	gr.running--
	next := g.take()
	g.mu.Unlock()
	g.start(next)
	call()
	g.mu.Lock()
	gr.running++
	g.mu.Unlock()
}

// History implements eventcenter.Reader (see idle).
func (gr *gatherGroup) History(ctx context.Context, q eventcenter.HistoryQuery) (evs []eventcenter.Event, err error) {
	gr.idle(func() { evs, err = gr.Store.History(ctx, q) })
	return evs, err
}

// Lookup implements eventcenter.Reader (see idle).
func (gr *gatherGroup) Lookup(ctx context.Context, q eventcenter.LookupQuery) (evs []eventcenter.Event, err error) {
	gr.idle(func() { evs, err = gr.Store.Lookup(ctx, q) })
	return evs, err
}

// Watermark implements eventcenter.Watermarks (see idle).
func (gr *gatherGroup) Watermark(ctx context.Context, source string) (wm time.Time, err error) {
	gr.idle(func() { wm, err = gr.Store.Watermark(ctx, source) })
	return wm, err
}

// WaitWatermark implements eventcenter.Watermarks (see idle).
func (gr *gatherGroup) WaitWatermark(ctx context.Context, source string, t time.Time) (err error) {
	gr.idle(func() { err = gr.Store.WaitWatermark(ctx, source, t) })
	return err
}

// take returns the next batch due, and counts it in flight, if the bound
// allows one; nil otherwise. g.mu is held.
func (g *gathered) take() *gatherBatch {
	if g.inflight >= gatherInflight {
		return nil
	}
	var b *gatherBatch
	switch {
	case len(g.full) > 0:
		b = g.full[0]
		g.full = g.full[1:]
	case g.open != nil && g.ready():
		b, g.open = g.open, nil
	default:
		return nil
	}
	for _, gr := range b.groups {
		gr.pending--
	}
	g.inflight++
	return b
}

// ready reports whether the runs of some group all wait on reads (or are
// done), and not all of those reads have started. g.mu is held.
func (g *gathered) ready() bool {
	for _, gr := range g.groups {
		if gr.running == 0 && gr.pending > 0 {
			return true
		}
	}
	return false
}

// start reads b, if not nil, on its own goroutine (a read's context may
// end first).
func (g *gathered) start(b *gatherBatch) {
	if b != nil {
		go g.read(b)
	}
}

// read reads batch b, answers its reads, and goes on with the next batches
// due.
func (g *gathered) read(b *gatherBatch) {
	for b != nil {
		b.out = make([]eventcenter.AsOfResult, len(b.qs))
		b.err = g.batch.AsOfBatch(g.ctx, b.qs, b.out)
		close(b.done)
		g.mu.Lock()
		g.inflight--
		b = g.take()
		g.mu.Unlock()
	}
}

// joinGather returns the Store through which runs runs read from store,
// and their group, if store gathers reads (see gather); (store, nil)
// otherwise.
func joinGather(store Store, runs int) (Store, *gatherGroup) {
	switch s := store.(type) {
	case *gathered:
		gr := s.join(runs)
		return gr, gr
	case *Prefetch:
		if under, gr := joinGather(s.store, runs); gr != nil {
			return s.over(under), gr
		}
	}
	return store, nil
}

// ListIndexes implements eventcenter.Indexes; see listIndexes.
func (g *gathered) ListIndexes(ctx context.Context, source string) ([]eventcenter.Index, error) {
	return listIndexes(ctx, g.Store, source)
}
