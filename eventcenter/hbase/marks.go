package hbase

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/tsuna/gohbase/hrpc"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// RegisterPartitions implements eventcenter.Watermarks. A registered
// partition that has not advanced is a mark cell with an empty value,
// written by compare-and-set on the cell's absence, so a registration never
// overwrites a watermark another process advanced meanwhile.
func (s *Store) RegisterPartitions(ctx context.Context, source string, partitions []int32) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := eventcenter.ValidateSource(source); err != nil {
		return fmt.Errorf("%w: watermark source: %v", eventcenter.ErrInvalidQuery, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	have, err := s.marks(ctx, source)
	if err != nil {
		return s.fail(ctx, err)
	}
	for _, p := range partitions {
		if _, ok := have[p]; ok {
			continue
		}
		// HBase compares an absent expected value as "no cell, or an empty
		// one": either way the partition is at the floor, and the put
		// leaves it there.
		row := codec.MarkKey(nil, source, p)
		if _, err := s.checkAndPut(ctx, s.tMarks, row, qualMark, map[string][]byte{qualMark: {}}, nil); err != nil {
			return s.fail(ctx, err)
		}
		have[p] = time.Time{}
	}
	return nil
}

// decodeMark reads a mark cell: empty for a registered partition at the
// floor (the zero time).
func decodeMark(b []byte) (time.Time, error) {
	if len(b) == 0 {
		return time.Time{}, nil
	}
	return codec.DecodeMark(b)
}

// AdvanceWatermark implements eventcenter.Watermarks. The watermark moves
// by compare-and-set on its current value, in a loop, so that processes
// advancing one partition concurrently never move it backwards. HBase
// acknowledges a put once it is in the write-ahead log, so the advance is
// durable after every append that returned before it.
func (s *Store) AdvanceWatermark(ctx context.Context, source string, partition int32, t time.Time) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := eventcenter.ValidateSource(source); err != nil {
		return fmt.Errorf("%w: watermark source: %v", eventcenter.ErrInvalidQuery, err)
	}
	if t.IsZero() {
		return fmt.Errorf("%w: watermark of %s/%d: missing time", eventcenter.ErrInvalidQuery, source, partition)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	row := codec.MarkKey(nil, source, partition)
	want := codec.EncodeMark(t)
	for {
		var cur []byte
		err := retry(ctx, func() error {
			g, err := hrpc.NewGet(ctx, s.tMarks, row, hrpc.Families(families))
			if err != nil {
				return err
			}
			r, err := s.client.Get(g)
			if err != nil {
				return err
			}
			cur = nil
			for _, c := range r.Cells {
				if string(c.Qualifier) == qualMark {
					cur = c.Value
				}
			}
			return nil
		})
		if err != nil {
			return s.fail(ctx, err)
		}
		if len(cur) > 0 { // else: no cell, or one at the floor
			have, err := codec.DecodeMark(cur)
			if err != nil {
				return s.fail(ctx, err)
			}
			switch c := bytes.Compare(want, cur); {
			case c < 0:
				return fmt.Errorf("%w: %s partition %d is at %v, asked %v", eventcenter.ErrWatermarkRegression, source, partition, have, t)
			case c == 0:
				return nil
			}
		}
		done, err := s.checkAndPut(ctx, s.tMarks, row, qualMark, map[string][]byte{qualMark: want}, cur)
		if err != nil {
			return s.fail(ctx, err)
		}
		if done {
			s.wakeWaiters()
			return nil
		}
		// another process moved it meanwhile: compare again
	}
}

func (s *Store) wakeWaiters() {
	ch := make(chan struct{})
	close(*s.markCh.Swap(&ch))
}

// marks reads every partition's watermark of source.
func (s *Store) marks(ctx context.Context, source string) (map[int32]time.Time, error) {
	prefix := codec.MarkPrefix(nil, source)
	out := map[int32]time.Time{}
	err := retry(ctx, func() error {
		clear(out)
		return s.scan(ctx, s.tMarks, prefix, codec.PrefixEnd(prefix), []func(hrpc.Call) error{hrpc.Families(families)},
			func(r *hrpc.Result) (bool, error) {
				for _, c := range r.Cells {
					if string(c.Qualifier) != qualMark {
						continue
					}
					part, err := codec.ParseMarkSuffix(c.Row[len(prefix):])
					if err != nil {
						return false, err
					}
					t, err := decodeMark(c.Value)
					if err != nil {
						return false, err
					}
					out[part] = t
				}
				return true, nil
			})
	})
	return out, err
}

func minMark(marks map[int32]time.Time) time.Time {
	var low time.Time
	for _, t := range marks {
		if t.IsZero() {
			return t // a partition at the floor
		}
		if low.IsZero() || t.Before(low) {
			low = t
		}
	}
	return low
}

// Watermark implements eventcenter.Watermarks.
func (s *Store) Watermark(ctx context.Context, source string) (time.Time, error) {
	if err := s.check(ctx); err != nil {
		return time.Time{}, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	m, err := s.marks(ctx, source)
	if err != nil {
		return time.Time{}, s.fail(ctx, err)
	}
	return minMark(m), nil
}

// PartitionWatermarks implements eventcenter.Watermarks.
func (s *Store) PartitionWatermarks(ctx context.Context, source string) (map[int32]time.Time, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	m, err := s.marks(ctx, source)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return maps.Clone(m), nil
}

// WaitWatermark implements eventcenter.Watermarks. It reads the watermark
// every WatermarkPoll (another process may advance it), and at once when
// this store advances one.
func (s *Store) WaitWatermark(ctx context.Context, source string, t time.Time) error {
	if s.closed.Load() {
		return eventcenter.ErrClosed
	}
	tick := time.NewTicker(s.cfg.WatermarkPoll)
	defer tick.Stop()
	var wm time.Time
	for {
		wake := *s.markCh.Load()
		m, err := s.Watermark(ctx, source)
		switch {
		case s.closed.Load():
			return eventcenter.ErrClosed
		case err != nil && ctx.Err() == nil:
			return err
		case err == nil:
			wm = m
			if !wm.IsZero() && !wm.Before(t) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return eventcenter.WatermarkTimeout(ctx, t, wm)
		case <-s.life.Done():
			return eventcenter.ErrClosed
		case <-wake:
		case <-tick.C:
		}
	}
}
