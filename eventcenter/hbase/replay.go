package hbase

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/tsuna/gohbase/hrpc"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// Replay implements eventcenter.Replayer. Each (source, bucket) of the time
// table, a region's share of it, is scanned by a goroutine of its own, which
// decodes the bodies its rows carry and hands them over in batches of
// ReplayWindow, reading ahead of the merge; the streams are merged in
// Compare order. Memory is bounded by the batches, not by the range.
// Breaking out of the loop stops every goroutine before it returns.
func (s *Store) Replay(ctx context.Context, q eventcenter.ReplayQuery) iter.Seq2[eventcenter.Event, error] {
	if err := s.check(ctx); err != nil {
		return failed(err)
	}
	if err := q.Validate(); err != nil {
		return failed(err)
	}
	if err := q.CheckHorizon(s.horizon()); err != nil {
		return failed(err)
	}
	sources := slices.Compact(slices.Sorted(slices.Values(q.Sources)))
	return func(yield func(eventcenter.Event, error) bool) {
		ctx, cancel := s.opCtx(ctx)
		defer cancel()
		knownAt, err := s.settle(ctx, q.KnownAt)
		if err != nil {
			yield(eventcenter.Event{}, s.fail(ctx, err))
			return
		}
		for e, err := range s.replay(ctx, sources, eventcenter.TimeRange{From: q.From, To: q.To}, knownAt) {
			if err == nil {
				err = ctx.Err() // the batches read ahead are not served after it ends
			}
			if err != nil {
				yield(eventcenter.Event{}, s.fail(ctx, err))
				return
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}

func failed(err error) iter.Seq2[eventcenter.Event, error] {
	return func(yield func(eventcenter.Event, error) bool) { yield(eventcenter.Event{}, err) }
}

// batch is what a bucket's goroutine hands over: events in order, or the
// error that ended it.
type batch struct {
	events []eventcenter.Event
	err    error
}

// replay merges the buckets of sources over r.
func (s *Store) replay(ctx context.Context, sources []string, r eventcenter.TimeRange, knownAt time.Time) iter.Seq2[eventcenter.Event, error] {
	return func(yield func(eventcenter.Event, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer func() { cancel(); wg.Wait() }()
		var streams []iter.Seq2[eventcenter.Event, error]
		for _, src := range sources {
			for b := range s.buckets {
				start, end := codec.TimeBounds(byte(b), src, r.From, r.To)
				if bytes.Compare(start, end) >= 0 {
					continue
				}
				ch := make(chan batch, replayAhead)
				wg.Go(func() { s.scanBucket(ctx, start, end, knownAt, ch) })
				streams = append(streams, drain(ch))
			}
		}
		if len(streams) == 0 {
			return
		}
		for e, err := range eventcenter.MergeReplay(streams...) {
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// replayAhead is how many batches a bucket's scan may hold ready beyond the
// one being merged.
const replayAhead = 2

// drain turns a bucket's channel into a stream.
func drain(ch <-chan batch) iter.Seq2[eventcenter.Event, error] {
	return func(yield func(eventcenter.Event, error) bool) {
		for b := range ch {
			if b.err != nil {
				yield(eventcenter.Event{}, b.err)
				return
			}
			for _, e := range b.events {
				if !yield(e, nil) {
					return
				}
			}
		}
	}
}

// scanBucket scans one bucket's time rows and sends their events in
// batches of up to ReplayWindow, one scanner RPC each, while the reader
// merges the previous ones. A row with one cell stored by knownAt is that
// event (see "Two tables, one first copy" in the package documentation); a
// row with more cells, the first stored by knownAt (a re-appended event),
// is read from events at knownAt instead, and skipped if it has no copy
// there.
func (s *Store) scanBucket(ctx context.Context, start, end []byte, knownAt time.Time, out chan<- batch) {
	defer close(out)
	send := func(b batch) bool {
		select {
		case out <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	window := s.cfg.ReplayWindow
	var (
		evs     = make([]eventcenter.Event, 0, window)
		recheck []int // of evs: re-appended, to be read from events
	)
	flush := func() error {
		if len(evs) == 0 {
			return nil
		}
		kept, err := s.resolve(ctx, evs, recheck, knownAt)
		if err != nil {
			return err
		}
		evs, recheck = make([]eventcenter.Event, 0, window), recheck[:0]
		if len(kept) > 0 && !send(batch{events: kept}) {
			return ctx.Err()
		}
		return nil
	}
	// No known-at filter here: a row's first two cells of all, so that a
	// re-appended event is told apart even when only one copy is visible.
	opts := cellReadOptions(time.Time{}, 2, hrpc.NumberOfRows(uint32(window)))
	err := retry(ctx, func() error {
		evs, recheck = evs[:0], recheck[:0] // a retry rescans from after the last batch sent
		return s.scan(ctx, s.tTime, start, end, opts, func(r *hrpc.Result) (bool, error) {
			if len(r.Cells) == 0 {
				return true, nil
			}
			var e eventcenter.Event
			var err error
			if e.Source, e.Key, e.Time, e.Pos, err = codec.ParseTimeKey(r.Cells[0].Row); err != nil {
				return false, err
			}
			if !knownAt.IsZero() && stampOf(r.Cells[0].Qualifier).After(knownAt) {
				return true, nil // every copy was stored after knownAt
			}
			if len(r.Cells) > 1 {
				recheck = append(recheck, len(evs))
			} else if err := codec.DecodeBody(r.Cells[0].Value, &e); err != nil {
				return false, err
			}
			evs = append(evs, e)
			if len(evs) == window {
				if err := flush(); err != nil {
					return false, err
				}
				start = append(slices.Clone(r.Cells[0].Row), 0)
			}
			return true, nil
		})
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		send(batch{err: err})
	}
}

// resolve reads the events at indexes recheck of evs from the events table
// at knownAt, concurrently, and returns evs without those that have no
// copy there. It reuses evs.
func (s *Store) resolve(ctx context.Context, evs []eventcenter.Event, recheck []int, knownAt time.Time) ([]eventcenter.Event, error) {
	if len(recheck) == 0 {
		return evs, nil
	}
	found := make([]bool, len(recheck))
	errs := make([]error, len(recheck))
	var wg sync.WaitGroup
	for j, i := range recheck {
		wg.Go(func() {
			e := &evs[i]
			k := codec.EventKey(nil, e.Source, e.Key, e.Time, e.Pos)
			errs[j] = retry(ctx, func() error {
				g, err := hrpc.NewGet(ctx, s.tEvents, k, cellReadOptions(knownAt, 1)...)
				if err != nil {
					return err
				}
				r, err := s.client.Get(g)
				if err != nil {
					return err
				}
				found[j], err = decodeRow(r.Cells, e)
				return err
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := evs[:0]
	for i, j := 0, 0; i < len(evs); i++ {
		if j < len(recheck) && recheck[j] == i {
			j++
			if !found[j-1] {
				continue
			}
		}
		out = append(out, evs[i])
	}
	return out, nil
}
