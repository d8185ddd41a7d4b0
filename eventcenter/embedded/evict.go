package embedded

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// Evict removes the events with the identities of events from the store,
// with their time and index rows, in one atomic step; identities not
// stored are ignored, so it is idempotent. After it returns, no read sees
// them. Each event's After row must be the stored one, encoded as stored
// (codec.AppendRow, as ReplayRaw yields it): its values of the source's
// indexed columns name the index rows to remove, under the indexes declared
// when Evict runs (a declaration waits for it). The cold tier
// (eventcenter/tiered) passes the events it has just read and copied into
// verified segments; nothing else may call it: the event center otherwise
// never forgets an event.
//
// The deletions do not go through the log and the memtable: they are
// written as sorted tables, one per kind of row, and ingested together
// (pebble's Ingest: atomic, ordered after every write committed before it
// and before every write after it, so an event appended again after its
// eviction is kept). A tiering run evicts a day of events at once; as
// memtable writes, its tombstones cost more than reading the events, and a
// flush of them spanned every table, so compacting the evicted time rows
// (CompactTimes) rewrote the events table too.
func (s *Store) Evict(ctx context.Context, events []eventcenter.RawEvent) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	if len(events) == 0 {
		return nil
	}
	// Shared until the ingestion: a declaration cannot index these events
	// after their index rows were picked.
	s.ixMu.RLock()
	defer s.ixMu.RUnlock()
	var tables [3][][]byte // events, time and index rows
	arena := make([]byte, 0, len(events)*3*48)
	for i := range events {
		e := &events[i]
		n := len(arena)
		arena = codec.EventKey(append(arena, tabEvents), e.Source, e.Key, e.Time, e.Pos)
		tables[0] = append(tables[0], arena[n:len(arena):len(arena)])
		n = len(arena)
		arena = codec.TimeKey(append(arena, tabTime), 1, e.Source, e.Key, e.Time, e.Pos)
		tables[1] = append(tables[1], arena[n:len(arena):len(arena)])
		if e.After == nil {
			continue
		}
		for _, ix := range s.indexes[e.Source] {
			v, ok, err := codec.IndexValue(e.After, ix.Column)
			if err != nil {
				return fmt.Errorf("embedded: evict %s/%q: %w", e.Source, e.Key, err)
			}
			if ok {
				n = len(arena)
				arena = codec.IndexKey(append(arena, tabIndex), e.Source, ix.Name, v, e.Key, e.Time, e.Pos)
				tables[2] = append(tables[2], arena[n:len(arena):len(arena)])
			}
		}
	}
	fs := s.opts.FS
	var paths []string
	defer func() {
		for _, p := range paths {
			_ = fs.Remove(p)
		}
	}()
	wo := s.opts.MakeWriterOptions(0, s.db.FormatMajorVersion().MaxTableFormat())
	for t, keys := range tables {
		if len(keys) == 0 {
			continue
		}
		slices.SortFunc(keys, bytes.Compare)
		keys = slices.CompactFunc(keys, bytes.Equal)
		p := fs.PathJoin(s.dir, fmt.Sprintf("%s%d-%d.tmp", evictPrefix, evictions.Add(1), t))
		paths = append(paths, p)
		if err := writeDeletes(fs, p, wo, keys); err != nil {
			return fmt.Errorf("embedded: evict: %w", err)
		}
	}
	err := s.db.Ingest(ctx, paths)
	s.iters.wrote() // ingested or not: a failed ingestion may have applied
	if err != nil {
		return fmt.Errorf("embedded: evict: %w", err)
	}
	return nil
}

// evictions numbers the tables Evict writes, for their file names (in the
// store's folder, removed once ingested, or at the next Open if the process
// died in between).
var evictions atomic.Int64

const evictPrefix = "tidemark-evict-"

func removeEvictTables(fs vfs.FS, dir string) {
	names, err := fs.List(dir)
	if err != nil {
		return
	}
	for _, n := range names {
		if strings.HasPrefix(n, evictPrefix) {
			_ = fs.Remove(fs.PathJoin(dir, n))
		}
	}
}

// writeDeletes writes a table at path of fs holding a deletion of each of
// keys (sorted, unique).
func writeDeletes(fs vfs.FS, path string, o sstable.WriterOptions, keys [][]byte) error {
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), o)
	for _, k := range keys {
		if err := w.Delete(k); err != nil {
			_ = w.Close()
			return err
		}
	}
	return w.Close() // closes f
}

// CompactTimes compacts the source's time rows with from <= time < to (the
// memtable and every table overlapping them), so that replays no longer
// step over the tombstones Evict left there. It changes no read's answer.
// It costs a rewrite of those tables: the cold tier calls it once per
// tiering run of a source, over the event times it evicted.
//
// Evict's deletions are tables of their own, ingested above the events
// they delete (an ingestion flushes a memtable it overlaps first), so the
// compaction rewrites both and drops each event with its tombstone. (Had
// events and tombstones shared a memtable, they would flush to one table,
// which Pebble's manual compaction moves to an empty bottom level without
// rewriting it: a move drops no tombstone.)
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
