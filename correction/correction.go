package correction

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidemark-dev/tidemark/cdc"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/source"
)

// Options tune a Corrector. Every field has a default.
type Options struct {
	// Zone reads DATETIME and DATE columns: it must be the CDC's
	// Config.Zone. Default UTC.
	Zone *time.Location
	// ChunkRows is the size of a range chunk in rows. Default
	// DefaultChunkRows (50 000).
	ChunkRows int
	// KeyChunk is the size of a key chunk (extras, repairs). Default 1000.
	KeyChunk int
	// Parallelism bounds the chunks that read their rows from MySQL or
	// compare them at once, on one Corrector (a worker keeps one): a chunk
	// waiting for the source's watermark holds none. Default 4.
	Parallelism int
	// InFlightRows bounds the rows of the chunks started and not finished
	// on one Corrector, of any runs (the others wait to start), each
	// holding its rows while it waits for the watermark. A chunk counts the
	// rows it was planned for (Chunk.Rows, else ChunkRows; a key chunk its
	// keys); one planned for more runs alone. The CDC keeps the watermark
	// ~3 s behind MySQL's clock, so a worker compares at most about
	// InFlightRows rows per 3 s; lower it for wide rows. Default
	// DefaultInFlightRows × Parallelism (640 000: 12 chunks of 50 000
	// rows).
	InFlightRows int
	// Snapshots also writes a snapshot event for every compared key in
	// sync (see the package doc for its cost). Default false.
	Snapshots bool
	// WatermarkTimeout bounds a chunk's wait for the source's watermark to
	// pass its snapshot. Default 2 minutes.
	WatermarkTimeout time.Duration
	// MaxKeys bounds the keys per kind a SourceResult keeps. Default 100.
	MaxKeys int
	// Archive, if not nil, receives each chunk's snapshot as one Parquet
	// object (Chunk.Archive names it; Source names it ArchiveName). Default
	// nil: nothing is archived.
	Archive Objects
}

// DefaultInFlightRows is the rows per work slot (Options.Parallelism)
// that a Corrector's chunks in flight hold by default
// (Options.InFlightRows).
const DefaultInFlightRows = 160_000

func (o *Options) setDefaults() {
	if o.Zone == nil {
		o.Zone = time.UTC
	}
	if o.ChunkRows <= 0 {
		o.ChunkRows = DefaultChunkRows
	}
	if o.KeyChunk <= 0 {
		o.KeyChunk = 1000
	}
	if o.Parallelism <= 0 {
		o.Parallelism = 4
	}
	if o.InFlightRows <= 0 {
		o.InFlightRows = DefaultInFlightRows * o.Parallelism
	}
	if o.WatermarkTimeout <= 0 {
		o.WatermarkTimeout = 2 * time.Minute
	}
	if o.MaxKeys == 0 {
		o.MaxKeys = 100
	}
}

// Corrector compares tables of one MySQL server with the event center and
// writes corrections. Its methods are safe for concurrent use.
type Corrector struct {
	db       *sql.DB
	store    eventcenter.Store
	opts     Options
	cache    indexCache   // see index.go
	bufs     sync.Pool    // of *chunkBuf
	bufSize  atomic.Value // bufSize of the last chunk read: a new chunkBuf's
	work     *slots       // Options.Parallelism slots, comparisons first
	inFlight *slots       // Options.InFlightRows slots, a row each

	afterRead func(Chunk, Point) // tests: called in the read's slot, after it
}

// New returns a Corrector reading MySQL through db (opened by Open, or with
// DSNParams) and correcting store.
func New(db *sql.DB, store eventcenter.Store, opts Options) *Corrector {
	opts.setDefaults()
	return &Corrector{db: db, store: store, opts: opts,
		work: newSlots(opts.Parallelism), inFlight: newSlots(opts.InFlightRows)}
}

// Options returns the corrector's options, defaults filled in.
func (c *Corrector) Options() Options { return c.opts }

// ChunkResult is what one chunk found and wrote.
type ChunkResult struct {
	Source string `json:"source"`
	Chunk  int    `json:"chunk"`
	Point  Point  `json:"point"`
	// Object is the archive object written with the chunk's rows, if any.
	Object string `json:"object,omitempty"`
	// First is the earliest event time of the chunk's corrections (those
	// written, and those of an earlier attempt counted as this one's):
	// as-of reads from First on may read differently. Zero if none.
	First time.Time `json:"first,omitzero"`
	// Unread counts the keys of Compared found in sync by the source's
	// index (index.go) without reading their history.
	Unread int `json:"unread,omitempty"`
	Drift
}

// corrected notes a correction of the chunk at t.
func (r *ChunkResult) corrected(t time.Time) {
	r.Corrections++
	if r.First.IsZero() || t.Before(r.First) {
		r.First = t
	}
}

// Chunk reads one chunk of the target in a consistent snapshot, waits for
// the source's watermark to pass it, compares every key with the event
// center's state at the snapshot's point, and appends a correction for each
// key that differs (and, with Options.Snapshots, a snapshot event for each
// that does not). When it returns nil, the events are stored. A retry reads
// a new snapshot and corrects only what is still wrong.
//
// A retried chunk resumes: the keys an earlier attempt corrected (a
// correction stored at or after ch.Since, which the key's state still is)
// are counted in the result as found and corrected, without a new event,
// so a retried chunk's result and events equal a clean run's.
func (c *Corrector) Chunk(ctx context.Context, t Target, schema *cdc.Table, ch Chunk) (ChunkResult, error) {
	return c.ChunkReporting(ctx, t, schema, ch, nil)
}

// ChunkReporting is Chunk calling read, if not nil, with the chunk's point
// before it writes its first event: the point a retry must resume at
// (Chunk.Resume) should this attempt die. If read fails, the chunk fails,
// having written nothing. A chunk that writes nothing (in sync) does not
// call it: a retry of it has nothing to resume.
func (c *Corrector) ChunkReporting(ctx context.Context, t Target, schema *cdc.Table, ch Chunk, read func(Point) error) (ChunkResult, error) {
	res := ChunkResult{Source: t.Source, Chunk: ch.Index}
	var want []string // a key chunk's keys, MySQL has them or not
	if ch.Keys != nil {
		for _, k := range ch.Keys {
			key, err := keyFromText(schema, k, c.opts.Zone)
			if err != nil {
				return res, fmt.Errorf("correction: source %s: %w", t.Source, err)
			}
			want = append(want, key)
		}
	}
	// A range chunk's index first (see index.go): a chunk that reads MySQL
	// after the index was built has its point after the index's watermark.
	var idx *keyIndex
	if ch.Keys == nil {
		var err error
		if idx, err = c.index(ctx, t.Source, schema); err != nil {
			return res, fmt.Errorf("correction: source %s: indexing the event center: %w", t.Source, err)
		}
	}
	// A chunk holds its rows from its read to its end, most of that time
	// waiting for the watermark: the corrector's InFlightRows slots bound
	// the rows of the chunks that do, on this corrector (a worker's),
	// whatever runs they belong to. It works (reads, archives, compares) in
	// one of its Parallelism slots, and waits for the watermark in none.
	held, err := c.inFlight.takeN(ctx, false, c.planned(ch))
	if err != nil {
		return res, err
	}
	defer c.inFlight.giveN(held)
	var (
		buf  *chunkBuf
		rows []mysqlRow
	)
	defer func() { // the rows are not used after this call
		if buf != nil {
			clear(buf.hits) // which hold the index
			c.bufs.Put(buf)
		}
	}()
	err = func() error { // in a work slot, given back however it ends
		if err := c.work.take(ctx, false); err != nil {
			return err
		}
		defer c.work.give()
		// Taken in the slot: a chunk waiting for one holds no buffer, and
		// one made new is sized like the last chunk read.
		buf, _ = c.bufs.Get().(*chunkBuf)
		if buf == nil {
			size, _ := c.bufSize.Load().(bufSize)
			buf = size.make()
		}
		var err error
		if res.Point, rows, err = readChunk(ctx, c.db, schema, &ch, c.opts.Zone, buf); err != nil {
			return fmt.Errorf("correction: source %s chunk %d: %w", t.Source, ch.Index, err)
		}
		if ch.Keys == nil { // a key chunk's few rows would size the next buffers small
			c.bufSize.Store(buf.size())
		}
		if c.afterRead != nil {
			c.afterRead(ch, res.Point)
		}
		if ch.Archive != "" && c.opts.Archive != nil {
			if err := c.archive(ctx, ch.Archive, schema, rows); err != nil {
				return err
			}
			res.Object = ch.Archive
		}
		return nil
	}()
	if err != nil {
		return res, err
	}
	p := res.Point
	wctx, cancel := context.WithTimeout(ctx, c.opts.WatermarkTimeout)
	err = c.store.WaitWatermark(wctx, t.Source, p.Time)
	cancel()
	if err != nil {
		return res, fmt.Errorf("correction: source %s chunk %d: waiting for the watermark to pass the snapshot at %v: %w", t.Source, ch.Index, p.Time, err)
	}
	if err := c.work.take(ctx, true); err != nil {
		return res, err
	}
	defer c.work.give()

	// The fast path (index.go) for range chunks; the few keys of a key
	// chunk (extras, a repair) all take the exact path, and so do a range
	// chunk's if its point is not after the index's watermark (MySQL's
	// clock behind the watermark's): the index may then hold changes made
	// after the point, stamped before it.
	var (
		marks  *runMarks // what this run's chunks saw, for its extras
		recent map[string]bool
	)
	if idx != nil && !p.Time.After(idx.upTo) {
		idx = nil
	}
	if idx != nil {
		if recent, err = c.recent(ctx, t.Source, idx, p.Time); err != nil {
			return res, fmt.Errorf("correction: source %s: %w", t.Source, err)
		}
		marks = idx.marks(ch.Since)
		buf.hits = idx.lookupRows(rows, buf.hits)
	}
	hits := buf.hits

	// The keys compared: the chunk's rows', then those of a key chunk's
	// keys MySQL does not have.
	absent := want
	if want != nil {
		has := make(map[string]bool, len(rows))
		for _, r := range rows {
			has[r.key] = true
		}
		absent = slices.DeleteFunc(slices.Clone(want), func(k string) bool { return has[k] })
	}
	shape := shapeOf(schema)
	var batch []eventcenter.Event
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if read != nil { // before the first write
			if err := read(res.Point); err != nil {
				return fmt.Errorf("correction: source %s chunk %d: %w", t.Source, ch.Index, err)
			}
			read = nil
		}
		if err := c.store.Append(ctx, batch); err != nil {
			return fmt.Errorf("correction: source %s chunk %d: %w", t.Source, ch.Index, err)
		}
		batch = batch[:0]
		return nil
	}
	for i := range len(rows) + len(absent) {
		var key string
		var my eventcenter.Row // nil: MySQL does not have the key
		if i < len(rows) {
			r := &rows[i]
			key = r.key
			if idx != nil {
				e, pos, indexed := hits[i].entry()
				isRecent := recent[key]
				if marks != nil {
					if indexed {
						marks.see(pos)
					} else {
						idx.seeUnlisted(marks, key)
					}
				}
				if indexed && !isRecent {
					if r.hashed && e.sum == r.sum && !c.ours(e.op, time.Unix(0, e.storedAt), ch.Since) &&
						(!c.opts.Snapshots || e.op == eventcenter.OpSnapshot || e.op == eventcenter.OpCorrection) {
						res.Compared++ // in sync: the fast path (see index.go)
						res.Unread++
						continue
					}
				}
			}
			if err := r.typed(schema, &shape, c.opts.Zone); err != nil {
				return res, fmt.Errorf("correction: source %s chunk %d: %w", t.Source, ch.Index, err)
			}
			my = r.row(&shape)
		} else {
			key = absent[i-len(rows)]
		}
		st, err := c.stateAt(ctx, t.Source, key, p)
		if err != nil {
			return res, err
		}
		res.Compared++
		if st.last != nil && c.ours(st.last.Op, st.last.StoredAt, ch.Since) {
			// Corrected by an earlier attempt of this chunk: if MySQL still
			// agrees, count that correction as this run's.
			if b := st.last.Before; my == nil && st.row == nil || my != nil && st.row != nil && len(diffColumns(my, st.row)) == 0 {
				switch {
				case b == nil:
					res.note(KindMissing, key)
				case my == nil:
					res.note(KindExtra, key)
				default:
					res.note(KindDifferent, key)
					for _, col := range diffColumns(my, b) {
						if res.Columns == nil {
							res.Columns = map[string]int{}
						}
						res.Columns[col]++
					}
				}
				res.corrected(st.last.Time)
				continue
			}
		}
		ev := eventcenter.Event{Source: t.Source, Key: key, Time: st.time, Pos: p.Pos, Op: eventcenter.OpCorrection, After: my, Before: st.row}
		if r := ch.Resume; r != nil && (st.last == nil || st.last.Pos.Compare(r.Pos) < 0) {
			// Unchanged since the dead attempt's point: correct it there,
			// with that attempt's identity, so that the store completes a
			// correction the attempt left half-written (HBase) instead of
			// holding a second one.
			ev.Pos, ev.Time = r.Pos, r.Time
			if st.time.Before(ev.Time) {
				ev.Time = st.time
			}
		}
		switch {
		case my == nil && st.row == nil:
			continue
		case my == nil:
			res.note(KindExtra, key)
		case st.row == nil:
			res.note(KindMissing, key)
		default:
			cols := diffColumns(my, st.row)
			if len(cols) == 0 {
				if !c.opts.Snapshots || st.op == eventcenter.OpSnapshot || st.op == eventcenter.OpCorrection {
					continue
				}
				ev.Op, ev.Before = eventcenter.OpSnapshot, nil
				res.Snapshots++
				batch = append(batch, ev)
				continue
			}
			res.note(KindDifferent, key)
			for _, col := range cols {
				if res.Columns == nil {
					res.Columns = map[string]int{}
				}
				res.Columns[col]++
			}
		}
		res.corrected(ev.Time)
		batch = append(batch, ev)
		if len(batch) >= 1000 {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if err := flush(); err != nil {
		return res, err
	}
	if marks != nil {
		idx.cover(marks, ch.Index)
	}
	return res, nil
}

// keyState is a key's state at a point, and the time a correction there
// must carry.
type keyState struct {
	row  eventcenter.Row    // nil: absent
	op   eventcenter.Op     // of the event that set it
	last *eventcenter.Event // that event; nil if none
	time time.Time
}

// stateAt returns the key's state at p: the After row of its last event
// positioned before p. Events of a key are in binlog order by (time,
// position), so the correction's time is p.Time, or the time of the key's
// first event after p if that is earlier.
func (c *Corrector) stateAt(ctx context.Context, src, key string, p Point) (keyState, error) {
	evs, err := c.store.History(ctx, eventcenter.HistoryQuery{Source: src, Key: key, From: eventcenter.MinTime, To: p.Time.Add(time.Nanosecond)})
	if err != nil {
		return keyState{}, fmt.Errorf("correction: source %s key %q: %w", src, key, err)
	}
	st := keyState{time: p.Time}
	var last *eventcenter.Event
	for i := range evs {
		e := &evs[i]
		// A correction or snapshot written at this very point (a chunk of
		// an earlier run read at the same binlog position) is MySQL's state
		// there: it counts as before the point, the latest one last.
		if c := e.Pos.Compare(p.Pos); c < 0 || c == 0 && (e.Op == eventcenter.OpCorrection || e.Op == eventcenter.OpSnapshot) {
			if last == nil || e.Pos.Compare(last.Pos) > 0 || e.Pos == last.Pos && !e.Time.Before(last.Time) {
				last = e
			}
		} else if e.Time.Before(st.time) {
			st.time = e.Time
		}
	}
	if last != nil {
		if last.Time.After(st.time) {
			return keyState{}, fmt.Errorf("correction: source %s key %q: an event at %v %v, before the point %v, is later than one after it: the events are not in binlog order",
				src, key, last.Time, last.Pos, p)
		}
		st.row, st.op, st.last = last.After, last.Op, last
	}
	return st, nil
}

// ours reports whether an event of op stored at storedAt is a correction
// written by this run (at or after since; a zero since: none is).
func (c *Corrector) ours(op eventcenter.Op, storedAt, since time.Time) bool {
	return op == eventcenter.OpCorrection && !since.IsZero() && !storedAt.Before(since)
}

// keyFromText makes the event key of a key tuple as MySQL prints it.
func keyFromText(t *cdc.Table, tuple [][]byte, zone *time.Location) (string, error) {
	if len(tuple) != len(t.Key) {
		return "", fmt.Errorf("a key of %d values for a key of %d columns", len(tuple), len(t.Key))
	}
	vals := make([]any, len(tuple))
	for i, k := range t.Key {
		v, err := cdc.ValueFromText(&t.Columns[k], tuple[i], zone)
		if err != nil {
			return "", err
		}
		vals[i] = v
	}
	return source.RowKey(vals...)
}

// textOf prints a key column's row value as MySQL prints it (the inverse
// of cdc.ValueFromText for key types).
func textOf(col *cdc.Column, v any, zone *time.Location) ([]byte, error) {
	switch x := v.(type) {
	case int64:
		if col.DataType == "bit" {
			var b []byte
			for n := uint64(x); n > 0 || len(b) == 0; n >>= 8 {
				b = append([]byte{byte(n)}, b...)
			}
			return b, nil
		}
		return strconv.AppendInt(nil, x, 10), nil
	case eventcenter.Decimal:
		return []byte(x), nil
	case string:
		return []byte(x), nil
	case []byte:
		return x, nil
	case float64:
		return strconv.AppendFloat(nil, x, 'g', -1, 64), nil
	case time.Time:
		switch col.DataType {
		case "date":
			return []byte(x.In(zone).Format("2006-01-02")), nil
		case "timestamp":
			return []byte(x.UTC().Format("2006-01-02 15:04:05.999999")), nil
		}
		return []byte(x.In(zone).Format("2006-01-02 15:04:05.999999")), nil
	}
	return nil, fmt.Errorf("key column %s: a value of type %T", col.Name, v)
}

// Extras returns key chunks (numbered from first) holding the keys whose
// state the event center has, as of its latest events, and MySQL has not.
// Chunk compares them in a snapshot: those still absent are extra.
//
// If every range chunk of the run that started at since (chunks 0…first-1,
// Chunk.Since) compared through this corrector's index of the source, the
// keys MySQL has are those the chunks saw, each at its chunk's point: the
// candidates are the keys with a state that no chunk saw (among them any
// inserted after its chunk was read, which their key chunk then finds in
// sync). A key deleted behind the CDC's back after its chunk was read is
// then found by the next run, not this one. Otherwise (a chunk ran on
// another worker, the index was rebuilt, since is zero, the event center
// knew few of the keys) one scan of the table's key columns tells which
// keys MySQL has now.
func (c *Corrector) Extras(ctx context.Context, t Target, schema *cdc.Table, first int, since time.Time) ([]Chunk, error) {
	idx, err := c.index(ctx, t.Source, schema)
	if err != nil {
		return nil, fmt.Errorf("correction: source %s: indexing the event center: %w", t.Source, err)
	}
	defer c.release(t.Source, idx)
	recent, err := c.recent(ctx, t.Source, idx, eventcenter.MaxTime)
	if err != nil {
		return nil, fmt.Errorf("correction: source %s: %w", t.Source, err)
	}
	// The keys MySQL has that the event center knows: indexed ones by their
	// entry, recent ones by name.
	var (
		inMySQL       func(pos int32) bool
		recentInMySQL func(key string) bool
	)
	if m := idx.takeRun(since, first); m != nil {
		defer idx.spend(m)
		inMySQL = m.saw
		recentInMySQL = func(key string) bool {
			if _, i, ok := idx.lookup(key); ok {
				return m.saw(i)
			}
			return m.unlisted[key]
		}
	} else {
		seen, named := make([]bool, idx.size), map[string]bool{}
		inMySQL, recentInMySQL = func(pos int32) bool { return seen[pos] }, func(key string) bool { return named[key] }
		err = scanKeys(ctx, c.db, schema, func(tuple [][]byte) error {
			key, err := keyFromText(schema, tuple, c.opts.Zone)
			if err != nil {
				return err
			}
			if _, i, ok := idx.lookup(key); ok {
				seen[i] = true
			}
			if recent[key] {
				named[key] = true
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("correction: source %s: %w", t.Source, err)
		}
	}
	candidates := map[string]bool{}
	for i, k := range idx.all {
		if !inMySQL(i) {
			candidates[string(k)] = true
		}
	}
	for k := range recent {
		if !recentInMySQL(k) {
			candidates[k] = true
		}
	}
	// The few keys left: their key columns' values from their latest row.
	var keys []string
	tuples := map[string][][]byte{}
	for _, key := range slices.Sorted(maps.Keys(candidates)) {
		ev, err := c.store.AsOf(ctx, eventcenter.AsOf{Source: t.Source, Key: key, Time: eventcenter.MaxTime})
		if errors.Is(err, eventcenter.ErrNotFound) {
			continue // deleted since
		}
		if err != nil {
			return nil, fmt.Errorf("correction: source %s key %q: %w", t.Source, key, err)
		}
		tuple := make([][]byte, len(schema.Key))
		for i, k := range schema.Key {
			col := &schema.Columns[k]
			if tuple[i], err = textOf(col, ev.After[col.Name], c.opts.Zone); err != nil {
				return nil, fmt.Errorf("correction: source %s key %q: %w", t.Source, key, err)
			}
		}
		keys = append(keys, key)
		tuples[key] = tuple
	}
	var out []Chunk
	for i := 0; i < len(keys); i += c.opts.KeyChunk {
		ch := Chunk{Index: first + len(out), Keys: [][][]byte{}}
		for _, k := range keys[i:min(i+c.opts.KeyChunk, len(keys))] {
			ch.Keys = append(ch.Keys, tuples[k])
		}
		out = append(out, ch)
	}
	return out, nil
}

// KeyChunks returns key chunks (numbered from first) for the given event
// keys of the target, for a repair of those keys only.
func KeyChunks(schema *cdc.Table, keys []string, size, first int) ([]Chunk, error) {
	if size <= 0 {
		size = 1000
	}
	var out []Chunk
	for i := 0; i < len(keys); i += size {
		ch := Chunk{Index: first + len(out), Keys: [][][]byte{}}
		for _, k := range keys[i:min(i+size, len(keys))] {
			tuple, err := parseKey(k, len(schema.Key))
			if err != nil {
				return nil, err
			}
			ch.Keys = append(ch.Keys, tuple)
		}
		out = append(out, ch)
	}
	return out, nil
}

// parseKey splits an event key (source.RowKey) into its column texts. Text
// forms that differ from MySQL's (times in RFC 3339) are not supported.
func parseKey(key string, n int) ([][]byte, error) {
	if n == 1 {
		return [][]byte{[]byte(key)}, nil
	}
	var out [][]byte
	s := key
	for len(s) > 0 {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return nil, fmt.Errorf("correction: key %q is not a key of %d columns", key, n)
		}
		v, _ := strconv.Unquote(q)
		out = append(out, []byte(v))
		s = s[len(q):]
		if len(s) > 0 {
			if s[0] != ',' {
				return nil, fmt.Errorf("correction: key %q is not a key of %d columns", key, n)
			}
			s = s[1:]
		}
	}
	if len(out) != n {
		return nil, fmt.Errorf("correction: key %q is not a key of %d columns", key, n)
	}
	return out, nil
}

// SourceResult is what a correction of one source found and wrote.
type SourceResult struct {
	Target Target        `json:"target"`
	Chunks []ChunkResult `json:"chunks"` // by chunk index
	Drift                // the sum, with at most Options.MaxKeys keys per kind
	// Objects are the archive objects written, one per chunk.
	Objects []string `json:"objects,omitempty"`
}

// name sets the archive object of each chunk, if the corrector archives.
func (c *Corrector) name(t Target, chunks []Chunk, date time.Time) {
	if c.opts.Archive == nil {
		return
	}
	for i := range chunks {
		chunks[i].Archive = ArchiveName(t.Source, date, chunks[i].Index)
	}
}

// planned is the rows ch counts against Options.InFlightRows: a key
// chunk's keys, a range chunk's planned rows (Chunk.Rows, else
// Options.ChunkRows). A range chunk may read more (the table's last, or
// rows inserted in its range since the plan): the bound is the plan's.
func (c *Corrector) planned(ch Chunk) int {
	if ch.Keys != nil {
		return len(ch.Keys)
	}
	return cmp.Or(ch.Rows, c.opts.ChunkRows)
}

// Source corrects a whole table in this process: Plan, every range chunk
// (as many started at once as Options.InFlightRows holds,
// Options.Parallelism of them working), then the extra keys. If keys is
// not nil, only those event keys are compared (a repair). progress, if not nil, is
// called after each chunk (not concurrently). The first chunk error stops
// the run; the events of chunks done are stored.
func (c *Corrector) Source(ctx context.Context, t Target, keys []string, progress func(done, total int, r ChunkResult)) (SourceResult, error) {
	res := SourceResult{Target: t}
	schema, err := LoadSchema(ctx, c.db, t)
	if err != nil {
		return res, err
	}
	if keys == nil { // index the event center while MySQL plans and reads the first chunks
		go c.index(ctx, t.Source, schema)
	}
	var chunks []Chunk
	if keys != nil {
		chunks, err = KeyChunks(schema, keys, c.opts.KeyChunk, 0)
	} else {
		chunks, err = Plan(ctx, c.db, schema, c.opts.ChunkRows)
	}
	if err != nil {
		return res, fmt.Errorf("correction: source %s: %w", t, err)
	}
	since := time.Now()
	c.name(t, chunks, since)
	for i := range chunks {
		chunks[i].Since = since
	}
	done := 0
	run := func(chunks []Chunk, total int) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var (
			mu       sync.Mutex
			firstErr error
			wg       sync.WaitGroup
			sem      = make(chan struct{}, max(c.opts.Parallelism, c.opts.InFlightRows/min(c.opts.ChunkRows, c.opts.KeyChunk))) // as many as may hold their rows
		)
		for _, ch := range chunks {
			sem <- struct{}{}
			if ctx.Err() != nil {
				break
			}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				r, err := c.Chunk(ctx, t, schema, ch)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					return
				}
				res.Chunks = append(res.Chunks, r)
				if r.Object != "" {
					res.Objects = append(res.Objects, r.Object)
				}
				res.Add(r.Drift, c.opts.MaxKeys)
				done++
				if progress != nil {
					progress(done, total, r)
				}
			}()
		}
		wg.Wait()
		if firstErr == nil && ctx.Err() != nil {
			return ctx.Err()
		}
		return firstErr
	}
	total := len(chunks)
	if err := run(chunks, total); err != nil {
		return res, err
	}
	if keys == nil {
		extras, err := c.Extras(ctx, t, schema, len(chunks), since)
		if err != nil {
			return res, err
		}
		c.name(t, extras, since)
		for i := range extras {
			extras[i].Since = since
		}
		if err := run(extras, total+len(extras)); err != nil {
			return res, err
		}
	}
	slices.SortFunc(res.Chunks, func(a, b ChunkResult) int { return a.Chunk - b.Chunk })
	return res, nil
}
