package embedded

import (
	"context"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// Evict removes the events with the identities of events from the store,
// with their time and index rows, in one atomic batch; identities not
// stored are ignored, so it is idempotent. After it returns, no read sees
// them. Each event's After row must be the one stored (it names the index
// rows to remove): the cold tier (eventcenter/tiered) passes the events it
// has just read and copied into verified segments. Nothing else may call it:
// the event center otherwise never forgets an event.
func (s *Store) Evict(ctx context.Context, events []eventcenter.Event) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	s.ixMu.RLock()
	defer s.ixMu.RUnlock()
	b := s.db.NewBatch()
	defer b.Close()
	var key []byte
	for i := range events {
		e := &events[i]
		key = codec.EventKey(append(key[:0], tabEvents), e.Source, e.Key, e.Time, e.Pos)
		if err := b.Delete(key, nil); err != nil {
			return err
		}
		key = codec.TimeKey(append(key[:0], tabTime), 1, e.Source, e.Key, e.Time, e.Pos)
		if err := b.Delete(key, nil); err != nil {
			return err
		}
		for _, ix := range s.indexes[e.Source] {
			if v, ok := eventcenter.IndexValue(e.After[ix.Column]); ok {
				key = codec.IndexKey(append(key[:0], tabIndex), e.Source, ix.Name, v, e.Key, e.Time, e.Pos)
				if err := b.Delete(key, nil); err != nil {
					return err
				}
			}
		}
	}
	return b.Commit(s.wo)
}

// Flush writes the memtable to a table. Tiering calls it before it evicts
// (see CompactTimes).
func (s *Store) Flush(ctx context.Context) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	return s.db.Flush()
}

// CompactTimes compacts the source's time rows with from <= time < to (the
// memtable and every table overlapping them), so that replays no longer
// step over the tombstones Evict left there. It changes no read's answer.
// It costs a rewrite of those tables: the cold tier calls it once per
// tiering run of a source, over the event times it evicted.
//
// The events must have been flushed (Flush) before Evict wrote their
// tombstones, as tiering does: events and their tombstones in one memtable
// flush to one table, which Pebble's manual compaction moves to an empty
// bottom level without rewriting it (a move drops no tombstone; only an
// elision-only compaction rewrites it later, if at all). Flushed apart,
// the tombstones' table overlaps the events' and the compaction rewrites
// both, dropping each event with its tombstone.
func (s *Store) CompactTimes(ctx context.Context, source string, from, to time.Time) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	// Compact plans the levels to compact before it flushes the memtable:
	// a flush first, so that it takes the flushed rows to the bottom level,
	// where tombstones are dropped.
	if err := s.db.Flush(); err != nil {
		return err
	}
	o := timeIterOptions(source, from, to)
	return s.db.Compact(ctx, o.LowerBound, o.UpperBound, true)
}
