package embedded

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

func decodeMark(key, val []byte) (string, int32, time.Time, error) {
	source, rest, err := codec.SplitSource(key)
	if err != nil {
		return "", 0, time.Time{}, err
	}
	part, err := codec.ParseMarkSuffix(rest)
	if err != nil {
		return "", 0, time.Time{}, err
	}
	t, err := decodeMarkValue(val)
	return source, part, t, err
}

// A registered partition that has not advanced is stored with an empty
// value: it is at the floor, the zero time.
func decodeMarkValue(val []byte) (time.Time, error) {
	if len(val) == 0 {
		return time.Time{}, nil
	}
	return codec.DecodeMark(val)
}

// RegisterPartitions implements eventcenter.Watermarks. The partitions not
// yet known are written at the floor in one synced batch.
func (s *Store) RegisterPartitions(ctx context.Context, source string, partitions []int32) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	if err := eventcenter.ValidateSource(source); err != nil {
		return fmt.Errorf("%w: watermark source: %v", eventcenter.ErrInvalidQuery, err)
	}
	s.markMu.Lock()
	defer s.markMu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	var added []int32
	for _, p := range partitions {
		if _, ok := s.marks[source][p]; ok || slices.Contains(added, p) {
			continue
		}
		if err := b.Set(codec.MarkKey([]byte{tabMarks}, source, p), nil, nil); err != nil {
			return err
		}
		added = append(added, p)
	}
	if len(added) == 0 {
		return nil
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	if s.marks[source] == nil {
		s.marks[source] = map[int32]time.Time{}
	}
	for _, p := range added {
		s.marks[source][p] = time.Time{}
	}
	return nil
}

// AdvanceWatermark implements eventcenter.Watermarks. The write is synced,
// and Pebble's log is ordered, so it is durable only after every append
// that returned before it.
func (s *Store) AdvanceWatermark(ctx context.Context, source string, partition int32, t time.Time) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	if err := eventcenter.ValidateSource(source); err != nil {
		return fmt.Errorf("%w: watermark source: %v", eventcenter.ErrInvalidQuery, err)
	}
	if t.IsZero() {
		return fmt.Errorf("%w: watermark of %s/%d: missing time", eventcenter.ErrInvalidQuery, source, partition)
	}
	s.markMu.Lock()
	defer s.markMu.Unlock()
	cur, ok := s.marks[source][partition]
	switch {
	case ok && t.Before(cur):
		return fmt.Errorf("%w: %s partition %d is at %v, asked %v", eventcenter.ErrWatermarkRegression, source, partition, cur, t)
	case ok && t.Equal(cur):
		return nil
	}
	key := codec.MarkKey([]byte{tabMarks}, source, partition)
	if err := s.db.Set(key, codec.EncodeMark(t), pebble.Sync); err != nil {
		return err
	}
	if s.marks[source] == nil {
		s.marks[source] = map[int32]time.Time{}
	}
	s.marks[source][partition] = t.UTC()
	if ch, ok := s.waiters[source]; ok {
		close(ch)
		delete(s.waiters, source)
	}
	return nil
}

// minMark returns the source's watermark; the caller holds markMu.
func (s *Store) minMark(source string) time.Time {
	var low time.Time
	for _, t := range s.marks[source] {
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
	s.markMu.Lock()
	defer s.markMu.Unlock()
	return s.minMark(source), nil
}

// PartitionWatermarks implements eventcenter.Watermarks.
func (s *Store) PartitionWatermarks(ctx context.Context, source string) (map[int32]time.Time, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	s.markMu.Lock()
	defer s.markMu.Unlock()
	out := maps.Clone(s.marks[source])
	if out == nil {
		out = map[int32]time.Time{}
	}
	return out, nil
}

// WaitWatermark implements eventcenter.Watermarks; it wakes on every advance
// of the source, without polling.
func (s *Store) WaitWatermark(ctx context.Context, source string, t time.Time) error {
	if s.closed.Load() {
		return eventcenter.ErrClosed
	}
	for {
		s.markMu.Lock()
		wm := s.minMark(source)
		if !wm.IsZero() && !wm.Before(t) {
			s.markMu.Unlock()
			return nil
		}
		ch, ok := s.waiters[source]
		if !ok {
			ch = make(chan struct{})
			s.waiters[source] = ch
		}
		s.markMu.Unlock()
		select {
		case <-ctx.Done():
			return eventcenter.WatermarkTimeout(ctx, t, wm)
		case <-s.life:
			return eventcenter.ErrClosed
		case <-ch:
		}
	}
}
