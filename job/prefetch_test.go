package job_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
)

// countingStore counts the reads that reach the store.
type countingStore struct {
	eventcenter.Store
	reads atomic.Int64
}

func (s *countingStore) AsOf(ctx context.Context, q eventcenter.AsOf) (eventcenter.Event, error) {
	s.reads.Add(1)
	return s.Store.AsOf(ctx, q)
}

func (s *countingStore) History(ctx context.Context, q eventcenter.HistoryQuery) ([]eventcenter.Event, error) {
	s.reads.Add(1)
	return s.Store.History(ctx, q)
}

// TestPrefetchAnswersTheTriggerKeysFetches: runs whose trigger key's
// state at the trigger time was prefetched fetch it with no store read of
// their own, and get what the store gives, also of a key changed exactly
// at the trigger time (the trigger itself); reads past the watermark of the
// fill go to the store and answer the same.
func TestPrefetchAnswersTheTriggerKeysFetches(t *testing.T) {
	ctx := context.Background()
	base := openStore(t)
	const src = "test.accts"
	var evs []eventcenter.Event
	for k := range 4 {
		for c := range 3 {
			evs = append(evs, eventcenter.Event{Source: src, Key: fmt.Sprintf("k%d", k), Time: t0.Add(time.Duration(2*c+k) * time.Hour),
				Pos: eventcenter.Position{Log: 1, Offset: uint64(10*k + c)}, Op: eventcenter.OpUpdate, After: eventcenter.Row{"v": int64(10*k + c)}})
		}
	}
	if err := base.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	wm := t0.Add(5 * time.Hour)
	if err := base.AdvanceWatermark(ctx, src, 0, wm); err != nil {
		t.Fatal(err)
	}
	st := &countingStore{Store: base}
	j := job.MustNew("pf", func(c *job.Context) (eventcenter.Row, error) {
		r, err := c.Get(src, c.Trigger().Key)
		if errors.Is(err, eventcenter.ErrNotFound) {
			return eventcenter.Row{"v": nil}, nil
		}
		if err != nil {
			return nil, err
		}
		return eventcenter.Row{"v": r["v"]}, nil
	}, job.Trigger(src))

	type row struct {
		key       string
		at        time.Time
		fromStore bool // reads the store: past the watermark
	}
	rows := []row{
		{"k0", t0.Add(90 * time.Minute), false},
		{"k1", t0.Add(4 * time.Hour), false},
		{"k1", t0.Add(3 * time.Hour), false}, // k1 changed at 3h: the prefetched state is the trigger's
		{"k2", t0.Add(-time.Hour), false},    // no state yet: no run
		{"k3", t0.Add(7 * time.Hour), true},  // past the watermark
		{"k9", t0, false},                    // unknown key: no run
	}
	qs := make([]eventcenter.AsOf, len(rows))
	for i, r := range rows {
		qs[i] = eventcenter.AsOf{Source: src, Key: r.key, Time: r.at}
	}
	answers := make([]eventcenter.AsOfResult, len(qs))
	pf := job.NewPrefetch(st)
	if err := pf.Fill(ctx, qs, answers); err != nil {
		t.Fatal(err)
	}
	if pf.Len() != len(rows)-1 {
		t.Fatalf("%d answers kept, want all but the one past the watermark", pf.Len())
	}
	for i, r := range rows {
		a := answers[i]
		if errors.Is(a.Err, eventcenter.ErrNotFound) {
			if r.key != "k2" && r.key != "k9" {
				t.Fatalf("row %d: not found", i)
			}
			continue
		}
		if a.Err != nil {
			t.Fatal(a.Err)
		}
		trig := a.Event
		if !trig.Time.Equal(r.at) { // a sample row's trigger: at the row's time
			trig.Time, trig.Pos = r.at, eventcenter.Position{}
		}
		want, err := job.Evaluate(ctx, j, trig, &job.Env{Store: base})
		if err != nil {
			t.Fatal(err)
		}
		before := st.reads.Load()
		got, err := job.Evaluate(ctx, j, trig, &job.Env{Store: pf})
		if err != nil {
			t.Fatal(err)
		}
		if reads := st.reads.Load() - before; (reads > 0) != r.fromStore {
			t.Fatalf("row %d (%s at %v): %d store reads", i, r.key, r.at, reads)
		}
		if !reflect.DeepEqual(got.Record.Features, want.Record.Features) {
			t.Fatalf("row %d: %v, store gives %v", i, got.Record.Features, want.Record.Features)
		}
	}
}

// TestPrefetchFetchesOwnTheirRows: the first fetch of an answer is given
// the answer's own rows without a store read; a later fetch of it reads the
// store, so it gets the state as stored however the first fetch changed its
// rows ([]byte values included). Over rounds, every fetch gets a copy of
// the answer's rows and no fetch reads the store.
func TestPrefetchFetchesOwnTheirRows(t *testing.T) {
	ctx := context.Background()
	base := openStore(t)
	const src = "test.accts"
	stored := eventcenter.Row{"v": int64(7), "b": []byte("abc")}
	if err := base.Append(ctx, []eventcenter.Event{{Source: src, Key: "k", Time: t0, Pos: eventcenter.Position{Log: 1, Offset: 1}, Op: eventcenter.OpInsert, After: stored}}); err != nil {
		t.Fatal(err)
	}
	if err := base.AdvanceWatermark(ctx, src, 0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	st := &countingStore{Store: base}
	q := eventcenter.AsOf{Source: src, Key: "k", Time: t0.Add(time.Minute)}
	fetch := func(r eventcenter.Reader) (eventcenter.Row, int64) {
		t.Helper()
		before := st.reads.Load()
		e, err := r.AsOf(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return e.After, st.reads.Load() - before
	}
	spoil := func(r eventcenter.Row) {
		r["v"] = int64(-1)
		r["b"].([]byte)[0] = 'X'
		r["new"] = "x"
	}

	pf := job.NewPrefetch(st)
	answers := make([]eventcenter.AsOfResult, 1)
	if err := pf.Fill(ctx, []eventcenter.AsOf{q}, answers); err != nil {
		t.Fatal(err)
	}
	over := pf.Over(st)
	first, reads := fetch(pf)
	if reads != 0 || !reflect.DeepEqual(first, stored) {
		t.Fatalf("first fetch: %v with %d store reads, want %v with none", first, reads, stored)
	}
	spoil(first)
	second, reads := fetch(pf)
	if reads != 1 || !reflect.DeepEqual(second, stored) {
		t.Fatalf("second fetch: %v with %d store reads, want %v from the store", second, reads, stored)
	}

	// Over rounds: copies of the answer's rows, no store read; the first
	// fetch above took the answer's rows themselves, so Fill again.
	pf.Reset()
	if err := pf.Fill(ctx, []eventcenter.AsOf{q}, answers); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r, reads := fetch(over)
		if reads != 0 || !reflect.DeepEqual(r, stored) {
			t.Fatalf("fetch %d over rounds: %v with %d store reads, want %v with none", i, r, reads, stored)
		}
		spoil(r)
	}
}

// TestPrefetchOverRemoteNeverReadsPrefetchedAgain: under a Prefetch over a
// remote store, a run that is evaluated again (rounds) or that fetches a
// prefetched answer twice is answered from the prefetch every time, with
// the stored rows however the run changed them: no prefetched read reaches
// the store.
func TestPrefetchOverRemoteNeverReadsPrefetchedAgain(t *testing.T) {
	bothPaths(t, testPrefetchOverRemoteNeverReadsPrefetchedAgain)
}

func testPrefetchOverRemoteNeverReadsPrefetchedAgain(t *testing.T) {
	ctx := context.Background()
	st, _, trig := gatherFixture(t, 300)
	if err := st.AdvanceWatermark(ctx, "test.apps", 0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	remoteApps := 0
	remote := &remoteStore{Store: st, width: 1024, latency: time.Millisecond, onBatch: func(qs []eventcenter.AsOf) {
		mu.Lock()
		defer mu.Unlock()
		for _, q := range qs {
			if q.Source == "test.apps" {
				remoteApps++
			}
		}
	}}
	qs := make([]eventcenter.AsOf, len(trig))
	for i, e := range trig {
		qs[i] = eventcenter.AsOf{Source: "test.apps", Key: e.Key, Time: e.Time}
	}
	pf := job.NewPrefetch(remote)
	if err := pf.Fill(ctx, qs, make([]eventcenter.AsOfResult, len(qs))); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	remoteApps = 0 // the Fill's
	mu.Unlock()
	j := job.MustNew("twice", func(c *job.Context) (eventcenter.Row, error) {
		key := c.Trigger().Key
		a, err := c.Get("test.apps", key)
		if err != nil {
			return nil, err
		}
		user := a["user"].(string)
		a["user"] = "spoiled"
		if _, err := c.Get("test.users", user); err != nil && !errors.Is(err, eventcenter.ErrNotFound) {
			return nil, err
		}
		b, err := c.Get("test.apps", key)
		if err != nil {
			return nil, err
		}
		if b["user"] != user {
			return nil, fmt.Errorf("second fetch of %s: user %v, want %s", key, b["user"], user)
		}
		b["user"] = "spoiled again"
		// A History: rounds leave the run to the gathered path, which
		// evaluates it again over what rounds read.
		if _, err := c.History("test.users", user, time.Hour); err != nil {
			return nil, err
		}
		return eventcenter.Row{"user": user}, nil
	}, job.Trigger("test.apps"))
	results := make([]job.Result, len(trig))
	job.EvaluateAll(ctx, j, &job.Env{Store: pf}, trig, results, 0)
	for i, r := range results {
		if r.Outcome != job.OK {
			t.Fatalf("run %d: %v %v", i, r.Outcome, r.Err)
		}
	}
	if remoteApps != 0 || remote.reads.Load() != 0 {
		t.Errorf("%d prefetched reads reached the remote store in batches, %d single reads", remoteApps, remote.reads.Load())
	}
}

// TestPrefetchDuplicatesConcurrent: many runs of one key and time
// (and of one key at times answered by one event), on many goroutines over a
// local store, each changing what it reads ([]byte values included) and
// reading it twice: each sees the stored rows.
func TestPrefetchDuplicatesConcurrent(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	const src = "test.apps"
	if err := st.Append(ctx, []eventcenter.Event{{Source: src, Key: "k", Time: t0, Pos: eventcenter.Position{Offset: 1}, Op: eventcenter.OpInsert,
		After: eventcenter.Row{"v": int64(7), "b": []byte("abc")}}}); err != nil {
		t.Fatal(err)
	}
	if err := st.AdvanceWatermark(ctx, src, 0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	pf := job.NewPrefetch(st)
	var trig []eventcenter.Event
	var qs []eventcenter.AsOf
	for i := range 400 {
		at := t0.Add(time.Duration(i%3) * time.Minute)
		qs = append(qs, eventcenter.AsOf{Source: src, Key: "k", Time: at})
	}
	for seg := range 3 { // Reset and Fill again, as segments do
		out := make([]eventcenter.AsOfResult, len(qs))
		pf.Reset()
		if err := pf.Fill(ctx, qs, out); err != nil {
			t.Fatal(err)
		}
		trig = trig[:0]
		for i := range qs {
			e := out[i].Event
			e.After, e.Before = e.After.Clone(), e.Before.Clone()
			if !e.Time.Equal(qs[i].Time) {
				e.Time, e.Pos = qs[i].Time, eventcenter.Position{}
			}
			trig = append(trig, e)
		}
		j := job.MustNew("dup", func(c *job.Context) (eventcenter.Row, error) {
			c.Trigger().After["b"].([]byte)[1] = 'T'
			for range 2 {
				r, err := c.Get(src, "k")
				if err != nil {
					return nil, err
				}
				if r["v"] != int64(7) || string(r["b"].([]byte)) != "abc" {
					return nil, fmt.Errorf("read %v", r)
				}
				r["v"] = int64(-1)
				r["b"].([]byte)[0] = 'X'
			}
			return eventcenter.Row{"ok": true}, nil
		}, job.Trigger(src))
		res := make([]job.Result, len(trig))
		job.EvaluateAll(ctx, j, &job.Env{Store: pf}, trig, res, 8)
		for i, r := range res {
			if r.Outcome != job.OK {
				t.Fatalf("segment %d run %d: %v %v", seg, i, r.Outcome, r.Err)
			}
		}
	}
}

// echoStore answers an as-of read with an event naming the read (its
// source and KnownAt), a minute before the read's time.
type echoStore struct{ eventcenter.Store }

func (s echoStore) AsOf(_ context.Context, q eventcenter.AsOf) (eventcenter.Event, error) {
	return eventcenter.Event{Source: q.Source, Key: q.Key, Time: q.Time.Add(-time.Minute), Op: eventcenter.OpUpdate,
		After: eventcenter.Row{"source": q.Source, "known": q.KnownAt.UnixNano()}}, nil
}

// A prefetched answer is of its read only: reads of one key at one time
// in two sources, or as known at two instants (or at none), are told apart
// (answers are found by key, then matched), and Len counts every answer.
func TestPrefetchMatchesSourceAndKnownAt(t *testing.T) {
	ctx := context.Background()
	base := openStore(t)
	for _, src := range []string{"a", "b"} {
		if err := base.AdvanceWatermark(ctx, src, 0, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	st := &countingStore{Store: echoStore{base}}
	qs := []eventcenter.AsOf{
		{Source: "a", Key: "k", Time: t0},
		{Source: "b", Key: "k", Time: t0},
		{Source: "a", Key: "k", Time: t0, KnownAt: t0.Add(time.Second)},
		{Source: "a", Key: "k", Time: t0, KnownAt: t0.Add(2 * time.Second)},
		{Source: "a", Key: "k2", Time: t0},
	}
	pf := job.NewPrefetch(st)
	if err := pf.Fill(ctx, qs, make([]eventcenter.AsOfResult, len(qs))); err != nil {
		t.Fatal(err)
	}
	if pf.Len() != len(qs) {
		t.Fatalf("Len %d, want %d", pf.Len(), len(qs))
	}
	reads := st.reads.Load()
	for _, q := range qs {
		got, err := pf.AsOf(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if got.After["source"] != q.Source || got.After["known"] != q.KnownAt.UnixNano() || got.Key != q.Key {
			t.Errorf("%+v: prefetch answers %v of %s", q, got.After, got.Key)
		}
	}
	if n := st.reads.Load() - reads; n != 0 {
		t.Errorf("%d reads reached the store", n)
	}
}

// The History of the trigger key's instant [T, T+1ns) is answered empty
// only when the state prefetched at T is older than T; a change at T
// itself, or a read not prefetched, goes to the store.
func TestPrefetchHistoryOfTheInstant(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{Store: openStore(t)}
	evs := []eventcenter.Event{
		{Source: "a", Key: "old", Time: t0.Add(-time.Hour), Pos: eventcenter.Position{Log: 1, Offset: 1}, Op: eventcenter.OpInsert, After: eventcenter.Row{"v": int64(1)}},
		{Source: "a", Key: "now", Time: t0, Pos: eventcenter.Position{Log: 1, Offset: 2}, Op: eventcenter.OpInsert, After: eventcenter.Row{"v": int64(2)}},
	}
	if err := st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := st.AdvanceWatermark(ctx, "a", 0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	qs := []eventcenter.AsOf{{Source: "a", Key: "old", Time: t0}, {Source: "a", Key: "now", Time: t0}, {Source: "a", Key: "none", Time: t0}}
	pf := job.NewPrefetch(st)
	if err := pf.Fill(ctx, qs, make([]eventcenter.AsOfResult, len(qs))); err != nil {
		t.Fatal(err)
	}
	instant := func(key string, at time.Time) eventcenter.HistoryQuery {
		return eventcenter.HistoryQuery{Source: "a", Key: key, From: at, To: at.Add(time.Nanosecond)}
	}
	known := func(q eventcenter.HistoryQuery, at time.Time) eventcenter.HistoryQuery { q.KnownAt = at; return q }
	wider := func(q eventcenter.HistoryQuery) eventcenter.HistoryQuery { q.To = q.From.Add(time.Hour); return q }
	for _, tc := range []struct {
		q          eventcenter.HistoryQuery
		want       int // events
		storeReads int64
	}{
		{instant("old", t0), 0, 0},                 // prefetched, older than T: empty, no read
		{instant("now", t0), 1, 1},                 // changed at T: the store's
		{instant("old", t0.Add(-time.Hour)), 1, 1}, // not prefetched: the store's
		{instant("none", t0), 0, 1},                // prefetched as not found: the store's
		{known(instant("old", t0), t0), 0, 1},      // as known at another instant: the store's
		{wider(instant("old", t0)), 0, 1},          // not the instant: the store's
		{wider(instant("old", t0.Add(-time.Hour))), 1, 1},
	} {
		reads := st.reads.Load()
		got, err := pf.History(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.want || st.reads.Load()-reads != tc.storeReads {
			t.Errorf("%s at %v: %d events and %d store reads, want %d and %d", tc.q.Key, tc.q.From, len(got), st.reads.Load()-reads, tc.want, tc.storeReads)
		}
	}
}
