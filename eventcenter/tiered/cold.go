package tiered

import (
	"bytes"
	"cmp"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// segFile is an opened segment: its footer, read once, and the parquet
// file over it. Row groups are read by one ranged GET each (readGroup).
type segFile struct {
	file *parquet.File
	ra   *segReaderAt
}

// segReaderAt serves a parquet.File: the footer from memory, a row group
// from the bytes its reader fetched (one GET), anything else by a GET.
type segReaderAt struct {
	blob      Blob
	name      string
	footerOff int64
	footer    []byte

	mu      sync.Mutex
	windows map[int64][]byte // fetched row groups being decoded, by offset
}

func (r *segReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.footerOff && off+int64(len(p)) <= r.footerOff+int64(len(r.footer)) {
		return copy(p, r.footer[off-r.footerOff:]), nil
	}
	r.mu.Lock()
	for start, w := range r.windows {
		if off >= start && off+int64(len(p)) <= start+int64(len(w)) {
			r.mu.Unlock()
			return copy(p, w[off-start:]), nil
		}
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := r.blob.GetRange(ctx, r.name, off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	return copy(p, b), nil
}

// openedFile returns seg opened, if it is.
func (s *Store) openedFile(seg *Segment) *segFile {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[seg.Name]
}

// openFile returns seg opened: its footer read by a ranged GET at first.
func (s *Store) openFile(ctx context.Context, seg *Segment) (*segFile, error) {
	if f := s.openedFile(seg); f != nil {
		return f, nil
	}
	footer, err := s.cold.GetRange(ctx, seg.Name, seg.Size-seg.FooterLen, seg.FooterLen)
	if err != nil {
		return nil, err
	}
	return s.openFooter(seg, footer)
}

// openFooter opens seg over its footer (the last seg.FooterLen bytes) and
// keeps it.
func (s *Store) openFooter(seg *Segment, footer []byte) (*segFile, error) {
	ra := &segReaderAt{blob: s.cold, name: seg.Name, footerOff: seg.Size - seg.FooterLen, footer: footer, windows: map[int64][]byte{}}
	pf, err := parquet.OpenFile(ra, seg.Size, parquet.SkipMagicBytes(true), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true), parquet.ReadBufferSize(1<<20))
	if err != nil {
		return nil, fmt.Errorf("tiered: open segment %s: %w", seg.Name, err)
	}
	f := &segFile{file: pf, ra: ra}
	s.mu.Lock()
	if len(s.files) >= maxOpenFiles {
		clear(s.files) // a crude bound: footers are read again as reads need them
	}
	s.files[seg.Name] = f
	s.mu.Unlock()
	return f, nil
}

// maxOpenFiles bounds the opened segments (their footers) a Store keeps.
const maxOpenFiles = 4096

// maxTailRead bounds the bytes a first touch of a segment reads in one
// ranged GET from a row group to the object's end (footer included) rather
// than in two GETs at once (the row group, the footer): one round trip
// instead of the slower of two, for a few more bytes.
const maxTailRead = 1 << 20

// readGroup returns the rows of row group i of seg, in key order, from the
// cache or by one ranged GET (none if the group's bytes are cached). The
// rows are shared: callers must not change them (fromRow builds an event
// of its own from one).
func (s *Store) readGroup(ctx context.Context, seg *Segment, i int) ([]segRow, error) {
	id := groupID{seg.Name, i}
	e, ok := s.groups.get(id)
	if ok && e.rows != nil {
		return e.rows, nil
	}
	var raw []byte
	if ok {
		raw = e.raw
	}
	var rows []segRow
	_, err := s.inGroup(ctx, seg, i, raw, func(rg parquet.RowGroup) error {
		r := parquet.NewGenericRowGroupReader[segRow](rg)
		defer r.Close()
		var err error
		rows, err = readAll(r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tiered: segment %s row group %d: %w", seg.Name, i, err)
	}
	s.groups.put(&groupEntry{id: id, rows: rows, size: len(rows)})
	return rows, nil
}

// readKey returns the rows of key in row group i of seg (key order). If
// the group's rows are not cached, it decodes only key's rows, located by
// the key column, and caches the group's bytes: a second read of the group
// decodes it whole (readGroup) without a GET. So a first touch answers
// without decoding a thousand rows for one key's few.
func (s *Store) readKey(ctx context.Context, seg *Segment, i int, key string) ([]segRow, error) {
	id := groupID{seg.Name, i}
	e, ok := s.groups.get(id)
	switch {
	case ok && e.rows != nil:
		return keyRows(e.rows, key), nil
	case ok:
		rows, err := s.readGroup(ctx, seg, i)
		return keyRows(rows, key), err
	}
	var rows []segRow
	raw, err := s.inGroup(ctx, seg, i, nil, func(rg parquet.RowGroup) error {
		var err error
		rows, err = rowsOfKey(rg, key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tiered: segment %s row group %d: %w", seg.Name, i, err)
	}
	// A copy: raw may be part of a longer read (fetchGroup).
	s.groups.put(&groupEntry{id: id, raw: bytes.Clone(raw), size: seg.RowGroups[i].Rows})
	return rows, nil
}

// inGroup runs read on row group i of seg, given its bytes raw (nil:
// fetched by fetchGroup), and returns those bytes.
func (s *Store) inGroup(ctx context.Context, seg *Segment, i int, raw []byte, read func(parquet.RowGroup) error) ([]byte, error) {
	g := seg.RowGroups[i]
	var f *segFile
	var err error
	if raw != nil {
		f, err = s.openFile(ctx, seg)
	} else {
		f, raw, err = s.fetchGroup(ctx, seg, g)
	}
	if err != nil {
		return nil, err
	}
	f.ra.mu.Lock()
	f.ra.windows[g.Offset] = raw
	f.ra.mu.Unlock()
	defer func() {
		f.ra.mu.Lock()
		delete(f.ra.windows, g.Offset)
		f.ra.mu.Unlock()
	}()
	return raw, read(f.file.RowGroups()[i])
}

// rowsOfKey reads the rows of key in rg (rows in key order): it scans the
// key column for them, then reads those rows alone.
func rowsOfKey(rg parquet.RowGroup, key string) ([]segRow, error) {
	col, ok := rg.Schema().Lookup("key")
	if !ok {
		return nil, errors.New("no key column")
	}
	lo, hi, n := -1, -1, 0 // key's rows are [lo, hi); n values read
	want := []byte(key)
	err := eachValue(rg.ColumnChunks()[col.ColumnIndex], func(v *parquet.Value) bool {
		c := bytes.Compare(v.ByteArray(), want)
		if c == 0 && lo < 0 {
			lo = n
		}
		if c > 0 {
			hi = n
			return false
		}
		n++
		return true
	})
	if err != nil {
		return nil, err
	}
	if lo < 0 {
		return nil, nil
	}
	if hi < 0 {
		hi = n
	}
	r := parquet.NewGenericRowGroupReader[segRow](rg)
	defer r.Close()
	if err := r.SeekToRow(int64(lo)); err != nil {
		return nil, err
	}
	rows := make([]segRow, hi-lo)
	k, err := r.Read(rows)
	if err != nil && err != io.EOF {
		return nil, err
	}
	if k != len(rows) {
		return nil, fmt.Errorf("read %d rows of key %q, the key column has %d", k, key, len(rows))
	}
	return rows, nil
}

// fetchGroup returns seg opened and the bytes of its row group g, both
// located by the manifest: at first touch, the footer and the row group in
// one ranged GET (the object's tail from g, up to maxTailRead) or two at
// once; later, the row group alone.
func (s *Store) fetchGroup(ctx context.Context, seg *Segment, g RowGroup) (*segFile, []byte, error) {
	if f := s.openedFile(seg); f != nil {
		data, err := s.cold.GetRange(ctx, seg.Name, g.Offset, g.Length)
		return f, data, err
	}
	if tail := seg.Size - g.Offset; tail <= maxTailRead && tail >= g.Length+seg.FooterLen {
		data, err := s.cold.GetRange(ctx, seg.Name, g.Offset, tail)
		if err != nil {
			return nil, nil, err
		}
		// The footer copied: the file keeps it, not the whole tail.
		f, err := s.openFooter(seg, bytes.Clone(data[tail-seg.FooterLen:]))
		return f, data[:g.Length], err
	}
	var (
		f    *segFile
		ferr error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		f, ferr = s.openFile(ctx, seg)
	}()
	data, err := s.cold.GetRange(ctx, seg.Name, g.Offset, g.Length)
	<-done
	if err == nil {
		err = ferr
	}
	return f, data, err
}

// keyRows returns the rows of key in a row group (key order).
func keyRows(rows []segRow, key string) []segRow {
	lo, _ := slices.BinarySearchFunc(rows, key, func(r segRow, k string) int {
		if r.Key < k {
			return -1
		}
		return 1
	})
	hi := lo
	for hi < len(rows) && rows[hi].Key == key {
		hi++
	}
	return rows[lo:hi]
}

// knownBy: a row stored at storedAt is known at knownAt (zero: now).
func knownBy(storedAt, knownAt time.Time) bool {
	return knownAt.IsZero() || !storedAt.After(knownAt)
}

// withManifest runs read on the source's manifest; if a segment it names is
// gone (a fold replaced it since the manifest was cached), it runs read
// once more on the manifest read afresh.
func (s *Store) withManifest(ctx context.Context, source string, read func(*Manifest) error) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	m, err := s.manifest(ctx, source, false)
	if err != nil {
		return err
	}
	err = read(m)
	if !errors.Is(err, ErrNoObject) {
		return err
	}
	if m, err = s.manifest(ctx, source, true); err != nil {
		return err
	}
	return read(m)
}

// coldLatest returns the key's latest cold event at q.Time (a delete included).
func (s *Store) coldLatest(ctx context.Context, q eventcenter.AsOf) (best eventcenter.Event, found bool, err error) {
	err = s.withManifest(ctx, q.Source, func(m *Manifest) error {
		found = false
		examined := 0
		for i := len(m.Segments) - 1; i >= 0; i-- {
			seg := &m.Segments[i]
			if seg.MinTime.After(q.Time) {
				continue
			}
			if found && best.Time.After(seg.MaxTime) {
				break
			}
			// The newest segment is read at once (the footer and the row
			// group in one round trip); the older ones are asked their key
			// filter first, so a key last changed long ago costs no row
			// group of each segment in between.
			g := seg.group(q.Key)
			if g < 0 {
				continue
			}
			if examined > 0 {
				if ok, err := s.holds(ctx, seg, q.Key); err != nil || !ok {
					if err != nil {
						return err
					}
					continue
				}
			}
			examined++
			rows, err := s.readKey(ctx, seg, g, q.Key)
			if err != nil {
				return err
			}
			for _, r := range rows {
				if r.Time.After(q.Time) || !knownBy(r.StoredAt, q.KnownAt) {
					continue
				}
				e, err := fromRow(&r)
				if err != nil {
					return fmt.Errorf("tiered: segment %s: %w", seg.Name, err)
				}
				if !found || later(&e, &best) {
					best, found = e, true
				}
			}
		}
		return nil
	})
	return best, found, err
}

// coldHistory returns the key's cold events in [q.From, q.To).
func (s *Store) coldHistory(ctx context.Context, q eventcenter.HistoryQuery) (out []eventcenter.Event, err error) {
	err = s.withManifest(ctx, q.Source, func(m *Manifest) error {
		out = out[:0]
		for i := range m.Segments {
			seg := &m.Segments[i]
			if seg.MaxTime.Before(q.From) || !seg.MinTime.Before(q.To) {
				continue
			}
			if ok, err := s.holds(ctx, seg, q.Key); err != nil || !ok {
				if err != nil {
					return err
				}
				continue
			}
			rows, err := s.readKey(ctx, seg, seg.group(q.Key), q.Key)
			if err != nil {
				return err
			}
			for _, r := range rows {
				if !r.Time.Before(q.From) && r.Time.Before(q.To) && knownBy(r.StoredAt, q.KnownAt) {
					e, err := fromRow(&r)
					if err != nil {
						return fmt.Errorf("tiered: segment %s: %w", seg.Name, err)
					}
					out = append(out, e)
				}
			}
		}
		return nil
	})
	return out, err
}

// coldCandidates returns the keys of cold events whose After row has
// q.Value in column, among the segments up to q.Time: from a segment's
// index object where it covers the index (a superset: every key that had
// the value in the segment), else by reading the segment's row groups.
func (s *Store) coldCandidates(ctx context.Context, q eventcenter.LookupQuery, column string) (keys []string, err error) {
	err = s.withManifest(ctx, q.Source, func(m *Manifest) error {
		keys = keys[:0]
		for i := range m.Segments {
			seg := &m.Segments[i]
			if seg.MinTime.After(q.Time) {
				break
			}
			if slices.Contains(seg.Indexes, q.Index) {
				x, err := s.readIndex(ctx, seg)
				if err != nil {
					return err
				}
				keys = append(keys, x.keysOf(q.Index, q.Value)...)
				continue
			}
			for g := range seg.RowGroups {
				rows, err := s.readGroup(ctx, seg, g)
				if err != nil {
					return err
				}
				for i := range rows {
					r := &rows[i]
					if r.Time.After(q.Time) || !knownBy(r.StoredAt, q.KnownAt) {
						continue
					}
					e, err := fromRow(r)
					if err != nil {
						return fmt.Errorf("tiered: segment %s: %w", seg.Name, err)
					}
					if v, ok := eventcenter.IndexValue(e.After[column]); ok && v == q.Value {
						keys = append(keys, e.Key)
					}
				}
			}
		}
		return nil
	})
	return keys, err
}

// coldReplay yields the source's cold events in [from, to) in Compare
// order, one segment at a time (a whole-object GET each): memory is bounded
// by Config.SegmentRows. It reads the manifest again before each segment
// (within ManifestMaxAge), continuing after the last event time it covered.
// Each event is decoded from its segment row as it is yielded: its rows
// are its own, no copy of a cached event's.
func (s *Store) coldReplay(ctx context.Context, source string, from, to, knownAt time.Time) iter.Seq2[eventcenter.Event, error] {
	return func(yield func(eventcenter.Event, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var done time.Time // the segments up to this event time are replayed
		started := false
		var ahead *prefetch // the next segment, being read while this one is yielded
		for {
			var batch []*segRow
			more := false
			err := s.withManifest(ctx, source, func(m *Manifest) error {
				batch, more = batch[:0], false
				for i := range m.Segments {
					seg := &m.Segments[i]
					if seg.MaxTime.Before(from) || (started && !seg.MaxTime.After(done)) {
						continue
					}
					if !seg.MinTime.Before(to) {
						return nil
					}
					var rows []segRow
					var err error
					if ahead != nil && ahead.name == seg.Name {
						<-ahead.done
						rows, err = ahead.rows, ahead.err
					} else {
						rows, err = s.readSegment(ctx, seg)
					}
					ahead = nil
					if err != nil {
						return err
					}
					if i+1 < len(m.Segments) && m.Segments[i+1].MinTime.Before(to) {
						ahead = s.prefetch(ctx, &m.Segments[i+1])
					}
					for i := range rows {
						r := &rows[i]
						if !r.Time.Before(from) && r.Time.Before(to) && (!started || r.Time.After(done)) && knownBy(r.StoredAt, knownAt) {
							batch = append(batch, r)
						}
					}
					done, started, more = seg.MaxTime, true, true
					return nil
				}
				return nil
			})
			if err != nil {
				yield(eventcenter.Event{}, err)
				return
			}
			slices.SortFunc(batch, compareRows)
			for _, r := range batch {
				if s.closed.Load() {
					yield(eventcenter.Event{}, eventcenter.ErrClosed)
					return
				}
				e, err := fromRow(r)
				if err != nil {
					yield(eventcenter.Event{}, fmt.Errorf("tiered: a segment row of %s: %w", source, err))
					return
				}
				if !yield(e, nil) {
					return
				}
			}
			if !more {
				return
			}
		}
	}
}

// compareRows is eventcenter.Compare on segment rows.
func compareRows(a, b *segRow) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	if c := cmp.Compare(a.PosLog, b.PosLog); c != 0 {
		return c
	}
	if c := cmp.Compare(a.PosOffset, b.PosOffset); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Source, b.Source); c != 0 {
		return c
	}
	return cmp.Compare(a.Key, b.Key)
}

// prefetch is a segment read in the background (readSegment).
type prefetch struct {
	name string
	done chan struct{}
	rows []segRow
	err  error
}

// prefetch starts reading seg; its result is ready when done is closed.
func (s *Store) prefetch(ctx context.Context, seg *Segment) *prefetch {
	p := &prefetch{name: seg.Name, done: make(chan struct{})}
	seg2 := *seg
	go func() {
		defer close(p.done)
		// Not enter: the replay waiting for it holds the store shared, and
		// a Close waiting meanwhile would block a second shared hold. It
		// touches only the Blob (which Close does not close) and ends with
		// the replay's context.
		if s.closed.Load() {
			p.err = eventcenter.ErrClosed
			return
		}
		p.rows, p.err = s.readSegment(ctx, &seg2)
	}()
	return p
}

// wholeSegment is the groupID of a whole segment in the cache.
const wholeSegment = -1

// readSegment returns every row of seg (key order) by one GET, kept in the
// cache if they are at most a quarter of it: the chunks of a backfill over
// one slice then read it once. The rows are shared: callers must not
// change them.
func (s *Store) readSegment(ctx context.Context, seg *Segment) ([]segRow, error) {
	id := groupID{seg.Name, wholeSegment}
	if e, ok := s.groups.get(id); ok {
		return e.rows, nil
	}
	data, err := s.cold.Get(ctx, seg.Name)
	if err != nil {
		return nil, err
	}
	rows, err := segmentRows(data)
	if err != nil {
		return nil, fmt.Errorf("tiered: segment %s: %w", seg.Name, err)
	}
	if len(rows) <= s.cfg.CacheRows/4 {
		s.groups.put(&groupEntry{id: id, rows: rows, size: len(rows)})
	}
	return rows, nil
}

// groupCache keeps decoded row groups, least recently used first out,
// bounded by their events.
type groupCache struct {
	mu    sync.Mutex
	max   int
	rows  int
	order *list.List // of *groupEntry, most recent at the front
	items map[groupID]*list.Element
}

type groupID struct {
	segment string
	group   int
}

// groupEntry is the rows of a cached row group (readGroup) or of a whole
// segment (readSegment), or a row group's bytes as fetched (readKey).
type groupEntry struct {
	id   groupID
	rows []segRow
	raw  []byte
	size int // the rows the entry counts for: len(rows), or the group's rows
}

func newGroupCache(max int) *groupCache {
	return &groupCache{max: max, order: list.New(), items: map[groupID]*list.Element{}}
}

func (c *groupCache) get(id groupID) (*groupEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[id]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*groupEntry), true
}

func (c *groupCache) put(e *groupEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[e.id]; ok {
		old := el.Value.(*groupEntry)
		if old.rows != nil || e.rows == nil {
			return
		}
		c.order.Remove(el) // the group's rows replace its bytes
		c.rows -= old.size
	}
	c.items[e.id] = c.order.PushFront(e)
	c.rows += e.size
	for c.rows > c.max && c.order.Len() > 1 {
		el := c.order.Back()
		e := el.Value.(*groupEntry)
		c.order.Remove(el)
		delete(c.items, e.id)
		c.rows -= e.size
	}
}
