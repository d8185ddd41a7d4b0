package hbase

import (
	"context"
	"sync"

	"github.com/tsuna/gohbase/hrpc"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// Evict removes the rows of the events with the identities of events: their
// events and time rows, and their index rows under every index of the
// source declared when Evict reads the declarations (once per source and
// call; being built included), named by each event's After row, which must
// be the stored one, encoded as stored (codec.AppendRow, as
// codec.ReplayRaw yields it). An index declared in another process while
// Evict runs may keep rows of evicted events, which Lookup never returns
// (it reads each candidate's state).
// Identities not stored are ignored, so it is idempotent; a failed Evict
// may have removed a part, which a retry completes. After it returns, no
// read sees them. The cold tier (eventcenter/tiered) calls it for events it
// has copied into verified, committed segments; nothing else may: the event
// center otherwise never forgets an event.
//
// A delete masks the cells of its row up to its timestamp (the region
// server's clock, in milliseconds): an event appended again within that
// millisecond is masked with it, which the cold tier's reads absorb (the
// cold copy is the first one).
func (s *Store) Evict(ctx context.Context, events []eventcenter.RawEvent) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	type del struct{ table, row []byte }
	var dels []del
	for i := range events {
		e := &events[i]
		d, err := s.declsFor(ctx, e.Source, i == 0 || e.Source != events[i-1].Source)
		if err != nil {
			return s.fail(ctx, err)
		}
		dels = append(dels,
			del{s.tEvents, codec.EventKey(nil, e.Source, e.Key, e.Time, e.Pos)},
			del{s.tTime, codec.TimeKey(nil, s.buckets, e.Source, e.Key, e.Time, e.Pos)})
		if e.After == nil {
			continue
		}
		for _, ix := range d.all {
			v, ok, err := codec.IndexValue(e.After, ix.Column)
			if err != nil {
				return err
			}
			if ok {
				dels = append(dels, del{s.tIndex, codec.IndexKey(nil, e.Source, ix.Name, v, e.Key, e.Time, e.Pos)})
			}
		}
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	sem := make(chan struct{}, s.cfg.MaxInflight)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, d := range dels {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			err := retry(ctx, func() error {
				rpc, err := hrpc.NewDel(ctx, d.table, d.row, nil)
				if err != nil {
					return err
				}
				_, err = s.client.Delete(rpc)
				return err
			})
			if err != nil {
				once.Do(func() { first = err; stop() })
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return s.fail(ctx, first)
}
