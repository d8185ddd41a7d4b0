package tiered

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// TierReport says what one tiering run moved.
type TierReport struct {
	Cutoff   time.Time // events stored before it were moved
	Sources  int       // sources with events to move
	Events   int       // events evicted from hot (now in segments)
	Segments int       // segment objects written
	Bytes    int64     // bytes of the segments written
}

// Tier moves every event stored more than Config.HotWindow ago (on
// Config.Now) from hot into segments; see TierBefore.
func (s *Store) Tier(ctx context.Context) (TierReport, error) {
	return s.TierBefore(ctx, s.Cutoff())
}

// Cutoff is the cutoff of a tiering now: Config.Now minus Config.HotWindow.
func (s *Store) Cutoff() time.Time { return s.cfg.Now().Add(-s.cfg.HotWindow) }

// Sources lists the sources that have had events appended through a tiered
// Store sharing this cold tier.
func (s *Store) Sources(ctx context.Context) ([]string, error) {
	names, err := s.cold.List(ctx, "sources/")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		src, err := url.PathUnescape(strings.TrimPrefix(n, "sources/"))
		if err != nil {
			return nil, fmt.Errorf("tiered: source marker %q: %w", n, err)
		}
		out = append(out, src)
	}
	return out, nil
}

// TierBefore moves every event stored before cutoff from hot into segments,
// source by source. For a source, it reads those events from hot, folds
// them into the segments of their time slices (a slice with new events is
// rewritten whole, as new objects: the old rows keep their StoredAt),
// writes the new objects, verifies each by reading it back (count and
// checksum against the events it must hold), commits the source's manifest,
// waits Config.EvictGrace, deletes the objects the commit replaced, and only
// then evicts the moved events from hot.
//
// It is safe to kill at any point: before the commit, hot is untouched and
// the objects written are garbage (unreferenced); after it, the events are
// in both tiers, reads keep one copy, and a rerun finds its slices already
// hold them, writes nothing and evicts them. Runs must not overlap (the
// tiering workflow has one ID; in a process a mutex orders them).
func (s *Store) TierBefore(ctx context.Context, cutoff time.Time) (TierReport, error) {
	s.tierMu.Lock()
	defer s.tierMu.Unlock()
	rep := TierReport{Cutoff: cutoff}
	if s.closed.Load() {
		return rep, eventcenter.ErrClosed
	}
	sources, err := s.Sources(ctx)
	if err != nil {
		return rep, err
	}
	for _, src := range sources {
		if err := s.tierSource(ctx, src, cutoff, &rep); err != nil {
			return rep, fmt.Errorf("tiered: tier %s: %w", src, err)
		}
	}
	return rep, nil
}

// TierSource is TierBefore for one source.
func (s *Store) TierSource(ctx context.Context, source string, cutoff time.Time) (TierReport, error) {
	s.tierMu.Lock()
	defer s.tierMu.Unlock()
	rep := TierReport{Cutoff: cutoff}
	if err := s.tierSource(ctx, source, cutoff, &rep); err != nil {
		return rep, fmt.Errorf("tiered: tier %s: %w", source, err)
	}
	return rep, nil
}

func (s *Store) tierSource(ctx context.Context, source string, cutoff time.Time, rep *TierReport) error {
	// The hot events stored before cutoff (KnownAt is inclusive).
	var moving hotRows
	for e, err := range codec.ReplayRaw(ctx, s.hot, source, eventcenter.AllTime.From, eventcenter.AllTime.To, cutoff.Add(-time.Nanosecond)) {
		if err != nil {
			return err
		}
		moving.add(&e)
	}
	m, err := s.manifest(ctx, source, true)
	if err != nil {
		return err
	}
	if err := s.collectGarbage(ctx, m); err != nil {
		return err
	}
	next := &Manifest{Source: source, Version: m.Version + 1, DroppedBefore: m.DroppedBefore}
	var replaced []string // objects the commit drops
	changed := false
	// The cold retention drops whole segments whose events all fall
	// before the source's horizon h (segments written by this run too).
	var h time.Time
	if r := s.cfg.ColdRetention[source]; r > 0 {
		h = s.cfg.Now().Add(-r)
	}
	expired := func(seg *Segment) bool { return !h.IsZero() && seg.MaxTime.Before(h) }
	if moving.n == 0 && !slices.ContainsFunc(m.Segments, func(seg Segment) bool { return expired(&seg) }) {
		return nil
	}
	if moving.n > 0 {
		rep.Sources++
	}
	// Late events behind the dropped horizon leave hot without a copy: the
	// retention has dropped their time.
	bySlice := moving.bySlice(s.cfg.Slice, next.DroppedBefore)
	run := runID()
	ixs, err := s.hot.ListIndexes(ctx, source)
	if err != nil {
		return err
	}
	for _, seg := range m.Segments {
		if _, ok := bySlice[seg.Slice.Unix()]; !ok {
			next.Segments = append(next.Segments, seg)
		}
	}
	folds, err := s.foldAll(ctx, source, run, m, bySlice, ixs)
	if err != nil {
		return err
	}
	for _, f := range folds {
		next.Segments = append(next.Segments, f.segs...)
		rep.Segments += f.rep.Segments
		rep.Bytes += f.rep.Bytes
		if f.wrote {
			changed = true
			for _, seg := range f.old {
				replaced = append(replaced, seg.Name)
			}
		}
	}
	kept := next.Segments[:0]
	for _, seg := range next.Segments {
		if !expired(&seg) {
			kept = append(kept, seg)
			continue
		}
		replaced, changed = append(replaced, seg.Name), true
		if d := seg.MaxTime.Add(time.Nanosecond); d.After(next.DroppedBefore) {
			next.DroppedBefore = d
		}
	}
	next.Segments = kept
	if changed {
		slices.SortFunc(next.Segments, func(a, b Segment) int { return a.MinTime.Compare(b.MinTime) })
		if err := writeManifest(ctx, s.cold, next); err != nil {
			return err
		}
		s.setManifest(next, time.Now())
		s.cfg.Logger.Info("tiered: manifest committed", "source", source, "version", next.Version, "segments", len(next.Segments))
		if err := sleep(ctx, s.cfg.EvictGrace); err != nil {
			return err
		}
		for _, name := range replaced {
			if err := s.cold.Delete(ctx, name); err != nil {
				return err
			}
			if err := s.cold.Delete(ctx, indexName(name)); err != nil {
				return err
			}
		}
	}
	// Evictions of 64Ki events: few enough calls that an embedded hot
	// store ingests few tables (embedded.Store.Evict), and progress shows.
	const batch = 1 << 16
	evicting, evicted := make([]eventcenter.RawEvent, 0, min(batch, moving.n)), 0
	evict := func() error {
		if err := s.hot.Evict(ctx, evicting); err != nil {
			return err
		}
		evicted += len(evicting)
		evicting = evicting[:0]
		s.cfg.Logger.Info("tiered: evicted from hot", "source", source, "events", evicted, "of", moving.n)
		return nil
	}
	for _, block := range moving.blocks {
		for k := range block {
			if evicting = append(evicting, evictionOf(&block[k])); len(evicting) == batch {
				if err := evict(); err != nil {
					return err
				}
			}
		}
	}
	if len(evicting) > 0 {
		if err := evict(); err != nil {
			return err
		}
	}
	// moving is in replay order: its event times run from the first's to
	// the last's.
	if c, ok := s.hot.(timeCompacter); ok && moving.n > 0 {
		first, last := moving.blocks[0][0].Time, moving.blocks[len(moving.blocks)-1]
		if err := c.CompactTimes(ctx, source, first, last[len(last)-1].Time.Add(time.Nanosecond)); err != nil {
			return err
		}
	}
	rep.Events += moving.n
	return nil
}

// hotRows are the rows a tiering run moves, read from hot in replay order
// (time first), in blocks of hotBlockRows: a row is ~160 bytes, and one
// slice regrown to hold a day of them cost more than reading them.
type hotRows struct {
	blocks [][]segRow
	arena  []byte // the rows' bytes
	n      int
}

const hotBlockRows = 4096

// add appends e's row, its rows copied as the hot store encoded them.
func (h *hotRows) add(e *eventcenter.RawEvent) {
	if len(h.blocks) == 0 || len(h.blocks[len(h.blocks)-1]) == hotBlockRows {
		h.blocks = append(h.blocks, make([]segRow, 0, hotBlockRows))
	}
	if need := len(e.After) + len(e.Before); cap(h.arena)-len(h.arena) < need {
		h.arena = make([]byte, 0, max(1<<20, need))
	}
	r := segRow{Source: e.Source, Key: e.Key, Time: e.Time.UTC(), PosLog: e.Pos.Log, PosOffset: e.Pos.Offset, Op: e.Op.String(), StoredAt: e.StoredAt.UTC()}
	if e.After != nil {
		n := len(h.arena)
		h.arena = append(h.arena, e.After...)
		r.After = h.arena[n:len(h.arena):len(h.arena)]
	}
	if e.Before != nil {
		n := len(h.arena)
		h.arena = append(h.arena, e.Before...)
		r.Before = h.arena[n:len(h.arena):len(h.arena)]
	}
	b := &h.blocks[len(h.blocks)-1]
	*b = append(*b, r)
	h.n++
}

// bySlice returns the rows by the Unix second of their slice's start, each
// slice's rows as runs of the blocks, leaving out those before
// droppedBefore (the cold retention has dropped their time).
func (h *hotRows) bySlice(slice time.Duration, droppedBefore time.Time) map[int64][][]segRow {
	out := map[int64][][]segRow{}
	for _, b := range h.blocks {
		for i := 0; i < len(b); {
			if b[i].Time.Before(droppedBefore) {
				i++
				continue
			}
			sl := b[i].Time.Truncate(slice)
			j := i + 1
			for j < len(b) && b[j].Time.Truncate(slice).Equal(sl) {
				j++
			}
			out[sl.Unix()] = append(out[sl.Unix()], b[i:j:j])
			i = j
		}
	}
	return out
}

// evictionOf returns the event of a row to evict from hot: its identity
// and its After row as stored, which names its index rows.
func evictionOf(r *segRow) eventcenter.RawEvent {
	return eventcenter.RawEvent{Source: r.Source, Key: r.Key, Time: r.Time, Pos: eventcenter.Position{Log: r.PosLog, Offset: r.PosOffset}, After: r.After}
}

// timeCompacter is a hot store that can compact the time rows tiering has
// evicted, so that its replays stop stepping over their tombstones
// (embedded.Store.CompactTimes). Tiering calls it once per source and run.
type timeCompacter interface {
	CompactTimes(ctx context.Context, source string, from, to time.Time) error
}

// fold is what foldSlice made of one slice.
type fold struct {
	old   []Segment // the slice's segments before
	segs  []Segment // and after
	wrote bool
	rep   TierReport // the segments and bytes written
	err   error
}

// foldAll runs foldSlice on every slice of bySlice (m's segments the old
// ones), up to GOMAXPROCS slices at once: one slice's encoding, upload and
// verification overlap another's. It returns the folds in slice order, or
// the first error, once no fold runs.
func (s *Store) foldAll(ctx context.Context, source, run string, m *Manifest, bySlice map[int64][][]segRow, ixs []eventcenter.Index) ([]fold, error) {
	secs := slices.Sorted(maps.Keys(bySlice))
	folds := make([]fold, len(secs))
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, sec := range secs {
		f := &folds[i]
		for _, seg := range m.Segments {
			if seg.Slice.Unix() == sec {
				f.old = append(f.old, seg)
			}
		}
		sem <- struct{}{}
		if fctx.Err() != nil { // a fold failed (or ctx ended): start no more
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f.segs, f.wrote, f.err = s.foldSlice(fctx, source, time.Unix(sec, 0).UTC(), run, f.old, bySlice[sec], ixs, &f.rep)
			if f.err != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	for _, f := range folds {
		if f.err != nil && !errors.Is(f.err, context.Canceled) {
			return nil, f.err
		}
	}
	for _, f := range folds {
		if f.err != nil {
			return nil, f.err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return folds, nil
}

// foldSlice returns the segments of slice sl once rows are in it. If the
// old segments hold every row already (a rerun after a crash between the
// commit and the eviction), it returns them and writes nothing.
func (s *Store) foldSlice(ctx context.Context, source string, sl time.Time, run string, old []Segment, rows [][]segRow, ixs []eventcenter.Index, rep *TierReport) ([]Segment, bool, error) {
	// Rows are sorted through pointers: a row is ~180 bytes.
	var all []*segRow
	for _, seg := range old {
		data, err := s.cold.Get(ctx, seg.Name)
		if err != nil {
			return nil, false, err
		}
		segRows, err := segmentRows(data)
		if err != nil {
			return nil, false, fmt.Errorf("segment %s: %w", seg.Name, err)
		}
		for i := range segRows {
			all = append(all, &segRows[i])
		}
	}
	n := len(all)
	for _, rs := range rows {
		for i := range rs {
			all = append(all, &rs[i])
		}
	}
	// Of each event identity, the first copy: the old segments' (the cold
	// copy was stored first).
	slices.SortStableFunc(all, rowKeyOrder)
	all = slices.CompactFunc(all, sameRowID)
	if len(all) == n {
		s.cfg.Logger.Info("tiered: slice holds the events already", "source", source, "slice", sl)
		return old, false, nil
	}
	// Cut into segments of at most SegmentRows at event-time boundaries,
	// so the segments' time ranges stay disjoint.
	slices.SortFunc(all, compareRows)
	var out []Segment
	for start := 0; start < len(all); {
		end := min(start+s.cfg.SegmentRows, len(all))
		for end < len(all) && end > start+1 && all[end].Time.Equal(all[end-1].Time) {
			end--
		}
		if end < len(all) && all[end].Time.Equal(all[end-1].Time) { // one time fills the segment
			for end < len(all) && all[end].Time.Equal(all[end-1].Time) {
				end++
			}
		}
		ptrs := slices.Clone(all[start:end])
		slices.SortFunc(ptrs, rowKeyOrder)
		part := make([]segRow, len(ptrs))
		for i, r := range ptrs {
			part[i] = *r
		}
		seg, err := s.writeSegment(ctx, segmentName(source, sl, run, len(out)), part, ixs)
		if err != nil {
			return nil, false, err
		}
		seg.Slice = sl
		out = append(out, seg)
		rep.Segments++
		rep.Bytes += seg.Size
		start = end
	}
	return out, true, nil
}

// writeSegment encodes rows (key order) as the object name, uploads it and
// verifies it: the object read back holds exactly these rows, every column
// equal to the row as the hot store held it (verifySegment).
func (s *Store) writeSegment(ctx context.Context, name string, rows []segRow, ixs []eventcenter.Index) (Segment, error) {
	data, seg, err := encodeSegment(rows, s.cfg.RowGroupRows)
	if err != nil {
		return seg, err
	}
	seg.Name = name
	if err := s.cold.Put(ctx, name, data); err != nil {
		return seg, err
	}
	back, err := s.cold.Get(ctx, name)
	if err != nil {
		return seg, err
	}
	if err := verifySegment(back, rows); err != nil {
		return seg, fmt.Errorf("verify %s: %w", name, err)
	}
	{
		data, err := buildIndex(rows, ixs)
		if err != nil {
			return seg, err
		}
		if err := s.cold.Put(ctx, indexName(name), data); err != nil {
			return seg, err
		}
		if back, err := s.cold.Get(ctx, indexName(name)); err != nil {
			return seg, err
		} else if !bytes.Equal(back, data) {
			return seg, fmt.Errorf("verify %s: the object read back differs", indexName(name))
		}
		seg.IndexObject = true
		for _, ix := range ixs {
			seg.Indexes = append(seg.Indexes, ix.Name)
		}
	}
	s.cfg.Logger.Info("tiered: segment written and verified", "segment", name, "events", seg.Rows, "bytes", seg.Size)
	return seg, nil
}

func runID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Backlog counts the source's events in hot that the next tiering would
// move (stored before Cutoff) and returns the oldest StoredAt among them.
// It scans the source's hot events.
func (s *Store) Backlog(ctx context.Context, source string) (n int, oldest time.Time, err error) {
	for e, err := range s.hot.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{source}, From: eventcenter.AllTime.From, To: eventcenter.AllTime.To, KnownAt: s.Cutoff().Add(-time.Nanosecond)}) {
		if err != nil {
			return 0, time.Time{}, err
		}
		if n == 0 || e.StoredAt.Before(oldest) {
			oldest = e.StoredAt
		}
		n++
	}
	return n, oldest, nil
}

// collectGarbage deletes the source's segment objects that m does not
// list: what a run killed before its commit wrote, or what a commit
// replaced and its run was killed before deleting. Runs do not overlap, so
// no object being written is among them.
func (s *Store) collectGarbage(ctx context.Context, m *Manifest) error {
	names, err := s.cold.List(ctx, segmentPrefix(m.Source))
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, seg := range m.Segments {
		listed[seg.Name] = true
		if seg.IndexObject {
			listed[indexName(seg.Name)] = true
		}
	}
	for _, name := range names {
		if listed[name] {
			continue
		}
		if err := s.cold.Delete(ctx, name); err != nil {
			return err
		}
		s.cfg.Logger.Info("tiered: deleted an object no manifest lists", "segment", name)
	}
	return nil
}
