package job

import (
	"context"
	"maps"
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
// Fill before the runs, then share it read-only: concurrent reads are safe,
// a Fill concurrent with reads is not.
type Prefetch struct {
	store   Store
	answers map[prefetchKey]eventcenter.AsOfResult
	marks   map[string]time.Time // source -> watermark before the batch read
}

type prefetchKey struct {
	source, key string
	at, knownAt int64 // UnixNano; knownAt 0 for none
}

func keyOf(q *eventcenter.AsOf) prefetchKey {
	k := prefetchKey{source: q.Source, key: q.Key, at: q.Time.UnixNano()}
	if !q.KnownAt.IsZero() {
		k.knownAt = q.KnownAt.UnixNano()
	}
	return k
}

var _ Store = (*Prefetch)(nil)

// NewPrefetch returns an empty Prefetch over store.
func NewPrefetch(store Store) *Prefetch {
	return &Prefetch{store: store, answers: map[prefetchKey]eventcenter.AsOfResult{}, marks: map[string]time.Time{}}
}

// Fill reads the answers of qs ahead, in one sorted pass where the store
// can (eventcenter.BatchReader), into out (len(out) >= len(qs)) and keeps
// them for the runs. It reads each source's watermark first. The error is
// the store's; each read's own answer (ErrNotFound included) is in out.
func (p *Prefetch) Fill(ctx context.Context, qs []eventcenter.AsOf, out []eventcenter.AsOfResult) error {
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
	for i := range qs {
		if !qs[i].Time.After(p.marks[qs[i].Source]) {
			p.answers[keyOf(&qs[i])] = out[i]
		}
	}
	return nil
}

// Reset forgets the answers and watermarks, keeping the memory.
func (p *Prefetch) Reset() {
	clear(p.answers)
	clear(p.marks)
}

// Len returns the number of answers kept.
func (p *Prefetch) Len() int { return len(p.answers) }

// AsOf implements eventcenter.Reader.
func (p *Prefetch) AsOf(ctx context.Context, q eventcenter.AsOf) (eventcenter.Event, error) {
	if a, ok := p.answers[keyOf(&q)]; ok {
		if a.Err != nil {
			return eventcenter.Event{}, a.Err
		}
		e := a.Event
		e.After, e.Before = maps.Clone(e.After), maps.Clone(e.Before) // each fetch owns its rows
		return e, nil
	}
	return p.store.AsOf(ctx, q)
}

// History implements eventcenter.Reader.
func (p *Prefetch) History(ctx context.Context, q eventcenter.HistoryQuery) ([]eventcenter.Event, error) {
	if q.To.Sub(q.From) == time.Nanosecond {
		a, ok := p.answers[keyOf(&eventcenter.AsOf{Source: q.Source, Key: q.Key, Time: q.From, KnownAt: q.KnownAt})]
		if ok && a.Err == nil && a.Event.Time.Before(q.From) {
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

// RegisterPartitions implements eventcenter.Watermarks.
func (p *Prefetch) RegisterPartitions(ctx context.Context, source string, partitions []int32) error {
	return p.store.RegisterPartitions(ctx, source, partitions)
}

// AdvanceWatermark implements eventcenter.Watermarks.
func (p *Prefetch) AdvanceWatermark(ctx context.Context, source string, partition int32, t time.Time) error {
	return p.store.AdvanceWatermark(ctx, source, partition, t)
}

// Watermark implements eventcenter.Watermarks.
func (p *Prefetch) Watermark(ctx context.Context, source string) (time.Time, error) {
	return p.store.Watermark(ctx, source)
}

// PartitionWatermarks implements eventcenter.Watermarks.
func (p *Prefetch) PartitionWatermarks(ctx context.Context, source string) (map[int32]time.Time, error) {
	return p.store.PartitionWatermarks(ctx, source)
}

// WaitWatermark implements eventcenter.Watermarks.
func (p *Prefetch) WaitWatermark(ctx context.Context, source string, t time.Time) error {
	return p.store.WaitWatermark(ctx, source, t)
}
