package correction

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/cdc"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/internal/testenv"
)

// TestExtrasFromMarks: the extra keys a run's chunks find through their
// marks (no second scan of the table) are those a scan of the table's keys
// finds; a run whose chunks did not all compare through the corrector's
// index, or a call without the run's start, scans; and the marks are
// spent by the call.
func TestExtrasFromMarks(t *testing.T) {
	ctx := context.Background()
	db, name := newKeyTable(t)
	st := openEventCenter(t)

	// The event center holds 1…30 and 40; MySQL holds 1…31 but 5 and 17:
	// 5, 17 and 40 are extra (31 is missing, not extra).
	const src = "mysql.extras.t"
	at := time.Now().Add(-time.Hour)
	var evs []eventcenter.Event
	for i := 1; i <= 40; i++ {
		if i > 30 && i < 40 {
			continue
		}
		evs = append(evs, inserted(src, i, "v"+strconv.Itoa(i), at))
		if i != 5 && i != 17 && i != 40 {
			insertRow(t, db, name, i, "v"+strconv.Itoa(i))
		}
	}
	insertRow(t, db, name, 31, "v31")
	if err := st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	testenv.TrailWatermark(t, st, src, 0, 10*time.Millisecond) // as the CDC keeps it: the chunks' points are after the index's
	opts := Options{ChunkRows: 7, KeyChunk: 2}
	target, schema, chunks := planTable(t, db, name, src, opts.ChunkRows)
	if len(chunks) < 3 {
		t.Fatalf("%d chunks: the test needs several", len(chunks))
	}
	// compare runs the range chunks of a run that started at since, skipping
	// chunk skip (-1: none), on c.
	compare := func(c *Corrector, since time.Time, skip int) {
		t.Helper()
		for _, ch := range chunks {
			if ch.Index == skip {
				continue
			}
			ch.Since = since
			if _, err := c.Chunk(ctx, target, schema, ch); err != nil {
				t.Fatal(err)
			}
		}
	}
	extras := func(c *Corrector, since time.Time) []string {
		t.Helper()
		out, err := c.Extras(ctx, target, schema, len(chunks), since)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, ch := range out {
			for _, k := range ch.Keys {
				key, err := keyFromText(schema, k, time.UTC)
				if err != nil {
					t.Fatal(err)
				}
				keys = append(keys, key)
			}
		}
		slices.Sort(keys)
		return keys
	}
	want := []string{"17", "40", "5"}
	indexOf := func(c *Corrector) *keyIndex {
		c.cache.mu.Lock()
		defer c.cache.mu.Unlock()
		if call := c.cache.sources[src]; call != nil {
			return call.idx
		}
		return nil
	}

	// Every chunk on one corrector: the marks answer.
	since := time.Now()
	c := New(db, st, opts)
	compare(c, since, -1)
	idx := indexOf(c)
	if idx == nil || idx.runs[since.UnixNano()] == nil {
		t.Fatal("the chunks left no marks on the corrector's index")
	}
	if m := idx.runs[since.UnixNano()]; len(m.covered) != len(chunks) {
		t.Fatalf("%d of %d chunks covered", len(m.covered), len(chunks))
	}
	if got := extras(c, since); !slices.Equal(got, want) {
		t.Errorf("extras from the marks: %q, want %q", got, want)
	}
	if m := idx.runs[since.UnixNano()]; m == nil || !m.taken || idx.busy() {
		t.Errorf("the run's marks are still open after its extras: %+v", m)
	}
	if indexOf(c) != nil {
		t.Error("the index outlived the run's extras")
	}

	// The marks, not a scan, answered: a key whose mark is cleared comes
	// out as a candidate although MySQL has it.
	c4, since4 := New(db, st, opts), since.Add(2*time.Second)
	compare(c4, since4, -1)
	idx4 := indexOf(c4)
	m4 := idx4.runs[since4.UnixNano()]
	_, pos, _ := idx4.lookup("3")
	m4.seen[pos>>5].And(^uint32(1 << (pos & 31)))
	if got, want := extras(c4, since4), []string{"17", "3", "40", "5"}; !slices.Equal(got, want) {
		t.Errorf("extras from marks without key 3's: %q, want %q", got, want)
	}

	// A fresh corrector (the chunks ran on another worker) and a call
	// without the run's start both scan, and find the same.
	if got := extras(New(db, st, opts), since); !slices.Equal(got, want) {
		t.Errorf("extras from a scan: %q, want %q", got, want)
	}
	c2 := New(db, st, opts)
	compare(c2, since, -1)
	if got := extras(c2, time.Time{}); !slices.Equal(got, want) {
		t.Errorf("extras without the run's start: %q, want %q", got, want)
	}

	// One chunk on another corrector: its keys were not marked here, so
	// the marks cannot answer; the scan does.
	c3, other := New(db, st, opts), New(db, st, opts)
	since3 := since.Add(time.Second)
	compare(c3, since3, 1)
	ch := chunks[1]
	ch.Since = since3
	if _, err := other.Chunk(ctx, target, schema, ch); err != nil {
		t.Fatal(err)
	}
	if m := indexOf(c3).runs[since3.UnixNano()]; m == nil || m.covered[1] || len(m.covered) != len(chunks)-1 {
		t.Fatalf("marks of the run with a chunk elsewhere: %+v", m)
	}
	if got := extras(c3, since3); !slices.Equal(got, want) {
		t.Errorf("extras with a chunk elsewhere: %q, want %q", got, want)
	}
}

// TestExtrasWithTrailingWatermark: with the watermark just behind the
// clock, as the CDC keeps it, the run's own corrections (and any change
// after the index was built) are recent keys by the time of the extras;
// the keys the chunks saw in MySQL are not candidates again, so each
// drifted key is counted once, on the marks path as on the scan path.
func TestExtrasWithTrailingWatermark(t *testing.T) {
	ctx := context.Background()
	db, name := newKeyTable(t)
	for i := 1; i <= 20; i++ {
		v := "v" + strconv.Itoa(i)
		if i == 16 {
			v = "drift"
		}
		if i == 5 {
			continue // extra: the event center has it
		}
		insertRow(t, db, name, i, v)
	}
	for _, marks := range []bool{true, false} {
		t.Run(fmt.Sprintf("marks=%v", marks), func(t *testing.T) {
			st := openEventCenter(t)
			const src = "mysql.trail.t"
			at := time.Now().Add(-time.Hour)
			var evs []eventcenter.Event
			for i := 1; i <= 20; i++ {
				if i == 15 {
					continue // missing
				}
				evs = append(evs, inserted(src, i, "v"+strconv.Itoa(i), at))
			}
			if err := st.Append(ctx, evs); err != nil {
				t.Fatal(err)
			}
			// The watermark trails the clock: the index's upTo precedes the
			// chunks' points, where their corrections go.
			testenv.TrailWatermark(t, st, src, 0, 10*time.Millisecond)
			target, schema, chunks := planTable(t, db, name, src, 7)
			c := New(db, st, Options{ChunkRows: 7, KeyChunk: 100, MaxKeys: -1})
			since := time.Now()
			var total Drift
			for _, ch := range chunks {
				ch.Since = since
				r, err := c.Chunk(ctx, target, schema, ch)
				if err != nil {
					t.Fatal(err)
				}
				total.Add(r.Drift, -1)
			}
			extrasSince := since
			if !marks {
				extrasSince = time.Time{}
			}
			extras, err := c.Extras(ctx, target, schema, len(chunks), extrasSince)
			if err != nil {
				t.Fatal(err)
			}
			candidates := 0
			for _, ch := range extras {
				candidates += len(ch.Keys)
				ch.Since = since
				r, err := c.Chunk(ctx, target, schema, ch)
				if err != nil {
					t.Fatal(err)
				}
				total.Add(r.Drift, -1)
			}
			if candidates != 1 {
				t.Errorf("%d extra candidates, want 1 (key 5)", candidates)
			}
			want := map[string][]string{KindMissing: {"15"}, KindDifferent: {"16"}, KindExtra: {"5"}}
			for kind, keys := range want {
				if got := total.Keys[kind]; !slices.Equal(got, keys) {
					t.Errorf("%s keys %q, want %q", kind, got, keys)
				}
			}
			if total.Corrections != 3 {
				t.Errorf("%d corrections counted, want 3", total.Corrections)
			}
		})
	}
}

// openEventCenter opens an embedded event center in a folder of the
// test's, closed when the test ends: after any cleanup registered later,
// such as testenv.TrailWatermark's.
func openEventCenter(t *testing.T) *embedded.Store {
	t.Helper()
	st, err := embedded.Open(embedded.Config{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// insertRow inserts (id, v) into newKeyTable's table.
func insertRow(t *testing.T, db *sql.DB, name string, id int, v string) {
	t.Helper()
	if _, err := db.Exec(fmt.Sprintf("INSERT INTO %s.t VALUES (%d, '%s')", name, id, v)); err != nil {
		t.Fatal(err)
	}
}

// inserted is the event center's insert of newKeyTable's row (id, v) at at.
func inserted(src string, id int, v string, at time.Time) eventcenter.Event {
	return eventcenter.Event{Source: src, Key: strconv.Itoa(id), Time: at, Pos: eventcenter.Position{Log: 1, Offset: uint64(id) << 16},
		Op: eventcenter.OpInsert, After: eventcenter.Row{"id": int64(id), "v": v}}
}

// planTable loads newKeyTable's table as source src and plans it in
// chunks of chunkRows.
func planTable(t *testing.T, db *sql.DB, name, src string, chunkRows int) (Target, *cdc.Table, []Chunk) {
	t.Helper()
	target := Target{Source: src, Database: name, Table: "t"}
	schema, err := LoadSchema(context.Background(), db, target)
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := Plan(context.Background(), db, schema, chunkRows)
	if err != nil {
		t.Fatal(err)
	}
	return target, schema, chunks
}

// newKeyTable creates a database of its own (dropped at the end of the
// test) holding an empty table t (id INT PRIMARY KEY, v VARCHAR(8)), and
// returns a connection opened as the correction reads, and the database.
func newKeyTable(t *testing.T) (*sql.DB, string) {
	t.Helper()
	db, name := newDatabase(t, "keys")
	if _, err := db.Exec("CREATE TABLE " + name + ".t (id INT PRIMARY KEY, v VARCHAR(8) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	return db, name
}

// newDatabase creates an empty database of its own, named for kind
// (dropped at the end of the test), and returns a connection opened as
// the correction reads, and the database.
func newDatabase(t *testing.T, kind string) (*sql.DB, string) {
	t.Helper()
	cfg := testenv.MySQL(t)
	db, err := Open(cfg.Addr, cfg.User, cfg.Password)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := cfg.DB + "_" + kind + "_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		db.Exec("DROP DATABASE " + name)
		db.Close()
	})
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	return db, name
}

// TestWatermarkAheadOfMySQL: with the watermark ahead of MySQL's clock (as
// the CDC moves it while MySQL is idle, if its clock runs ahead), the index
// is as of MySQL's clock less the CDC's lateness, so the chunks read after
// it still use it; and a change positioned after a chunk's point but
// stamped before it is not trusted to the index. Key 1 had drifted at the
// point ('x' beside MySQL's 'a'); such a change set it to 'a', so its
// latest state hashes like MySQL's row, but the drift at the point is
// found; keys 2 and 3 are in sync without a read.
func TestWatermarkAheadOfMySQL(t *testing.T) {
	ctx := context.Background()
	db, name := newKeyTable(t)
	st := openEventCenter(t)
	const src = "mysql.before.t"
	at := time.Now().Add(-time.Hour)
	var evs []eventcenter.Event
	for i, v := range []struct{ ours, mysql string }{{"x", "a"}, {"b", "b"}, {"c", "c"}} {
		id := i + 1
		evs = append(evs, inserted(src, id, v.ours, at))
		insertRow(t, db, name, id, v.mysql)
	}
	evs = append(evs, eventcenter.Event{Source: src, Key: "1", Time: time.Now().Add(-time.Second), Pos: eventcenter.Position{Log: 1 << 40},
		Op: eventcenter.OpUpdate, After: eventcenter.Row{"id": int64(1), "v": "a"}})
	if err := st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := st.AdvanceWatermark(ctx, src, 0, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	target, schema, chunks := planTable(t, db, name, src, 100)
	r, err := New(db, st, Options{}).Chunk(ctx, target, schema, chunks[0])
	if err != nil {
		t.Fatal(err)
	}
	if r.Drift.Compared != 3 || r.Drift.Different != 1 || !slices.Equal(r.Drift.Keys["different"], []string{"1"}) || r.Unread != 2 {
		t.Errorf("drift %+v, %d unread; want 3 compared, key 1 different, 2 and 3 unread", r.Drift, r.Unread)
	}
}

// TestRetryCountsTheRunsCorrections: a chunk retried on a fresh corrector
// (another worker) after its first attempt corrected a key, with an index
// that holds that correction, counts the key as drifted (the correction is
// the run's own) and writes no second one, instead of taking the key as in
// sync.
func TestRetryCountsTheRunsCorrections(t *testing.T) {
	ctx := context.Background()
	db, name := newKeyTable(t)
	st := openEventCenter(t)
	const src = "mysql.retry.t"
	at := time.Now().Add(-time.Hour)
	var evs []eventcenter.Event
	for i := 1; i <= 10; i++ {
		insertRow(t, db, name, i, "v"+strconv.Itoa(i))
		if i != 3 { // missing
			evs = append(evs, inserted(src, i, "v"+strconv.Itoa(i), at))
		}
	}
	if err := st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := st.AdvanceWatermark(ctx, src, 0, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	target, schema, chunks := planTable(t, db, name, src, 100)
	ch := chunks[0]
	ch.Since = time.Now()
	first, err := New(db, st, Options{}).Chunk(ctx, target, schema, ch)
	if err != nil {
		t.Fatal(err)
	}
	// The retry's index is as of MySQL's clock less the CDC's lateness:
	// past that, it holds the first attempt's correction.
	time.Sleep(cdc.DefaultLateness + 100*time.Millisecond)
	retry, err := New(db, st, Options{}).Chunk(ctx, target, schema, ch)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []ChunkResult{first, retry} {
		if r.Drift.Missing != 1 || !slices.Equal(r.Drift.Keys["missing"], []string{"3"}) || r.Drift.Compared != 10 {
			t.Errorf("drift %+v; want key 3 missing of 10", r.Drift)
		}
	}
	if first.Drift.Corrections != 1 || retry.Drift.Corrections != 1 || retry.Unread != 9 {
		t.Errorf("corrections %d then %d, retry %d unread; want 1 each (the first attempt's, counted again) and 9 unread",
			first.Drift.Corrections, retry.Drift.Corrections, retry.Unread)
	}
	hist, err := st.History(ctx, eventcenter.HistoryQuery{Source: src, Key: "3", From: eventcenter.MinTime, To: eventcenter.MaxTime})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 || hist[0].Op != eventcenter.OpCorrection {
		t.Errorf("key 3's history: %+v; want the first attempt's correction alone", hist)
	}
}

// TestWaitingChunkHoldsNoSlot: a chunk waiting for the source's watermark
// holds none of the corrector's Parallelism slots, so another chunk reads
// MySQL meanwhile (with one slot, the second chunk reads before the first
// is done).
func TestWaitingChunkHoldsNoSlot(t *testing.T) {
	ctx := context.Background()
	db, name := newKeyTable(t)
	st := openEventCenter(t)
	const src = "mysql.slots.t"
	for i := 1; i <= 4; i++ {
		insertRow(t, db, name, i, "v"+strconv.Itoa(i))
	}
	if err := st.AdvanceWatermark(ctx, src, 0, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	target, schema, chunks := planTable(t, db, name, src, 2)
	if len(chunks) < 2 {
		t.Fatalf("%d chunks: want 2", len(chunks))
	}
	c := New(db, st, Options{Parallelism: 1})
	read := make(chan int, 2)
	errs := make(chan error, 2)
	c.afterRead = func(ch Chunk, _ Point) { read <- ch.Index }
	for _, ch := range chunks[:2] {
		go func() {
			_, err := c.Chunk(ctx, target, schema, ch)
			errs <- err
		}()
	}
	for range 2 {
		select {
		case <-read:
		case err := <-errs:
			t.Fatalf("a chunk ended before both read: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("the second chunk did not read while the first waited for the watermark")
		}
	}
	if err := st.AdvanceWatermark(ctx, src, 0, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}

	// A chunk that panics while it works gives its slots back.
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the read callback's panic was lost")
			}
		}()
		c.afterRead = func(Chunk, Point) { panic("read") }
		c.Chunk(ctx, target, schema, chunks[0])
	}()
	c.afterRead = nil
	done := make(chan error, 1)
	go func() {
		_, err := c.Chunk(ctx, target, schema, chunks[0])
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a chunk after the panic did not get a slot")
	}

	// With one chunk in flight, the second does not read until the first
	// is done.
	if err := st.AdvanceWatermark(ctx, src, 0, time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	c = New(db, st, Options{Parallelism: 1, InFlightRows: 1}) // a chunk of more rows runs alone
	var order []string
	var mu sync.Mutex
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	c.afterRead = func(ch Chunk, _ Point) {
		note(fmt.Sprint("read ", ch.Index))
		if ch.Index == 0 {
			time.Sleep(300 * time.Millisecond) // the second asks meanwhile
		}
	}
	var wg sync.WaitGroup
	for i, ch := range chunks[:2] {
		wg.Go(func() {
			if i == 1 {
				time.Sleep(50 * time.Millisecond) // the first starts first
			}
			c.Chunk(ctx, target, schema, ch)
			note(fmt.Sprint("done ", i))
		})
	}
	wg.Wait()
	if want := []string{"read 0", "done 0", "read 1", "done 1"}; !slices.Equal(order, want) {
		t.Errorf("with one chunk in flight: %q, want %q", order, want)
	}
}

// TestEventsAtTheBoundaries: events stamped exactly at the index's
// watermark are in the index (and not replayed as recent), and events
// stamped exactly at a chunk's point are recent, before or after the point
// by their binlog position. A drifted key on either side is corrected; a
// key in sync on either side is not.
func TestEventsAtTheBoundaries(t *testing.T) {
	ctx := context.Background()
	db, name := newKeyTable(t)
	st := openEventCenter(t)
	const src = "mysql.bounds.t"
	at0, w := time.Now().Add(-time.Hour), time.Now().Add(-30*time.Minute)
	var evs []eventcenter.Event
	for i := 1; i <= 6; i++ {
		insertRow(t, db, name, i, "v"+strconv.Itoa(i))
		evs = append(evs, inserted(src, i, "v"+strconv.Itoa(i), at0))
	}
	// At the watermark: 1 drifts, 2 is updated to what MySQL has.
	atW := func(id int, v string) eventcenter.Event {
		e := inserted(src, id, v, w)
		e.Op, e.Pos.Offset = eventcenter.OpUpdate, e.Pos.Offset+1<<32
		return e
	}
	evs = append(evs, atW(1, "old"), atW(2, "v2"))
	if err := st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := st.AdvanceWatermark(ctx, src, 0, w); err != nil {
		t.Fatal(err)
	}
	target, schema, chunks := planTable(t, db, name, src, 100)
	if len(chunks) != 1 {
		t.Fatalf("%d chunks, want 1", len(chunks))
	}
	c := New(db, st, Options{})
	idx, err := c.index(ctx, src, schema)
	if err != nil {
		t.Fatal(err)
	}
	if !idx.upTo.Equal(w) {
		t.Fatalf("index up to %v, want the watermark %v", idx.upTo, w)
	}
	if err := st.AdvanceWatermark(ctx, src, 0, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// At the chunk's point, once it has read MySQL: 3 drifts before the
	// point, 4 drifts after it (so is in sync at it), 5 is updated to what
	// MySQL has just after the index's watermark.
	var point Point
	c.afterRead = func(_ Chunk, p Point) {
		point = p
		at := func(id int, v string, t time.Time, offset uint64) eventcenter.Event {
			e := inserted(src, id, v, t)
			e.Op, e.Pos = eventcenter.OpUpdate, eventcenter.Position{Log: p.Pos.Log, Offset: offset}
			return e
		}
		err := st.Append(ctx, []eventcenter.Event{
			at(3, "new", p.Time, p.Pos.Offset-1),
			at(4, "after", p.Time, p.Pos.Offset+1),
			at(5, "v5", w.Add(time.Nanosecond), p.Pos.Offset-2),
		})
		if err != nil {
			t.Error(err)
		}
	}
	// The point a retry resumes at is reported before the first write.
	resumeAt := 0
	corrections := func() int {
		n := 0
		for ev, err := range st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{src}, From: eventcenter.MinTime, To: eventcenter.MaxTime}) {
			if err != nil {
				t.Fatal(err)
			}
			if ev.Op == eventcenter.OpCorrection {
				n++
			}
		}
		return n
	}
	res, err := c.ChunkReporting(ctx, target, schema, chunks[0], func(p Point) error {
		if resumeAt++; p != point || corrections() != 0 {
			t.Errorf("resume point %v reported with %d corrections stored, want %v before any", p, corrections(), point)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if resumeAt != 1 {
		t.Errorf("the resume point was reported %d times, want once", resumeAt)
	}
	if !point.Time.After(w) {
		t.Fatalf("the chunk's point %v is not after the index's watermark %v", point.Time, w)
	}
	if res.Compared != 6 || res.Different != 2 || res.Missing+res.Extra != 0 || res.Corrections != 2 {
		t.Errorf("compared %d, drift %+v; want 6 compared, 1 and 3 different and corrected", res.Compared, res.Drift)
	}
	if got := res.Keys[KindDifferent]; !slices.Equal(got, []string{"1", "3"}) {
		t.Errorf("different keys %q, want 1 and 3", got)
	}
	// 2 and 6 in sync through the index; 3, 4 and 5 recent; 1 drifted.
	if res.Unread != 2 {
		t.Errorf("%d keys in sync through the index, want 2 (2 and 6)", res.Unread)
	}
	// (4's event after the point is read by a time as of the point's time:
	// as-of reads go by time; the point by position.)
	for id, want := range map[int]string{1: "v1", 3: "v3"} {
		ev, err := st.AsOf(ctx, eventcenter.AsOf{Source: src, Key: strconv.Itoa(id), Time: point.Time})
		if err != nil {
			t.Fatal(err)
		}
		if ev.After["v"] != want {
			t.Errorf("key %d as of the point: %v, want %s", id, ev.After["v"], want)
		}
	}
	// Again: in sync now (but for 4 if the binlog moved past its change),
	// and a chunk that writes nothing reports no point.
	c.afterRead = nil
	reported := false
	again, err := c.ChunkReporting(ctx, target, schema, chunks[0], func(Point) error { reported = true; return nil })
	if err != nil || reported != (again.Corrections > 0) {
		t.Errorf("again: %d corrections, resume point reported: %v (%v)", again.Corrections, reported, err)
	}
}
