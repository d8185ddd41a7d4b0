package hbase

import (
	"bytes"
	"context"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/tsuna/gohbase/hrpc"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// Replay implements eventcenter.Replayer. Each (source, bucket) is scanned
// by a goroutine of its own, which fetches the events' bodies with
// ReplayWindow concurrent gets and hands them over in batches; the streams
// are merged in Compare order. Memory is bounded by the windows, not by the
// range. Breaking out of the loop stops every goroutine before it returns.
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
				ch := make(chan batch, 2)
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

// scanBucket scans one bucket's time rows and sends their events, window by
// window, each window's bodies fetched concurrently. A time row whose events
// row has no cell visible at knownAt (stored later, or an append that
// failed before writing it) is skipped.
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
	keys := make([][]byte, 0, window)
	flush := func() bool {
		if len(keys) == 0 {
			return true
		}
		evs, err := s.fetchBodies(ctx, keys, knownAt)
		keys = keys[:0]
		if err != nil {
			send(batch{err: err})
			return false
		}
		return len(evs) == 0 || send(batch{events: evs})
	}
	err := retry(ctx, func() error {
		keys = keys[:0] // a retry rescans from after the last window sent
		return s.scan(ctx, s.tTime, start, end, []func(hrpc.Call) error{hrpc.Families(families), hrpc.NumberOfRows(1024)},
			func(r *hrpc.Result) (bool, error) {
				if len(r.Cells) == 0 {
					return true, nil
				}
				src, key, t, pos, err := codec.ParseTimeKey(r.Cells[0].Row)
				if err != nil {
					return false, err
				}
				keys = append(keys, codec.EventKey(nil, src, key, t, pos))
				if len(keys) == window {
					if !flush() {
						return false, ctx.Err()
					}
					start = append(slices.Clone(r.Cells[0].Row), 0)
				}
				return true, nil
			})
	})
	if err != nil {
		send(batch{err: err})
		return
	}
	flush()
}

// fetchBodies reads the events rows of keys concurrently, in their order.
func (s *Store) fetchBodies(ctx context.Context, keys [][]byte, knownAt time.Time) ([]eventcenter.Event, error) {
	evs := make([]eventcenter.Event, len(keys))
	found := make([]bool, len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() {
			errs[i] = retry(ctx, func() error {
				g, err := hrpc.NewGet(ctx, s.tEvents, k, eventReadOptions(knownAt)...)
				if err != nil {
					return err
				}
				r, err := s.client.Get(g)
				if err != nil {
					return err
				}
				found[i], err = decodeRow(r.Cells, &evs[i])
				return err
			})
		})
	}
	wg.Wait()
	out := evs[:0]
	for i := range evs {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if found[i] {
			out = append(out, evs[i])
		}
	}
	return out, nil
}
