package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// testKnownAtRepeatable: once a read as known at K has returned, no append
// becomes visible with a StoredAt at or before K: neither a slow append
// stamped before the read and still being written when it ran, nor an
// append that starts after it while the clock still stands at K.
func testKnownAtRepeatable(t *testing.T, h *harness) {
	h.declare(eventcenter.Index{Source: srcOrders, Name: "user", Column: "user"})

	// A slow append: a large batch, stamped first, still being written while
	// a small one stamped after it lands and is read.
	const n = 10_000
	slow := make([]eventcenter.Event, n)
	for i := range slow {
		slow[i] = ev(srcOrders, fmt.Sprintf("slow%05d", i), at(1), pos(0, uint64(i)), eventcenter.OpInsert, row("user", "u1", "i", int64(i)))
	}
	h.clock.Advance(time.Millisecond)
	stamped := h.clock.Tap()
	slowDone := make(chan error, 1)
	go func() { slowDone <- h.s.Append(h.ctx, slow) }()
	select {
	case <-stamped:
	case err := <-slowDone:
		t.Fatalf("the slow Append returned (%v) without reading the clock", err)
	}
	fast := h.append(ev(srcOrders, "fast", at(1), pos(1, 0), eventcenter.OpInsert, row("user", "u1")))[0]
	k := fast.StoredAt

	type answers struct {
		asOf    eventcenter.Event
		asOfErr error
		history []eventcenter.Event
		lookup  []eventcenter.Event
		replay  []eventcenter.Event
	}
	read := func() answers {
		var a answers
		a.asOf, a.asOfErr = h.s.AsOf(h.ctx, eventcenter.AsOf{Source: srcOrders, Key: "slow09999", Time: at(2), KnownAt: k})
		a.history = h.history(eventcenter.HistoryQuery{Source: srcOrders, Key: "slow00000", From: at(0), To: at(2), KnownAt: k})
		a.lookup = h.lookup(eventcenter.LookupQuery{Source: srcOrders, Index: "user", Value: "u1", Time: at(2), KnownAt: k})
		a.replay = h.replay(eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: at(0), To: at(2), KnownAt: k})
		return a
	}
	first := read()
	if err := <-slowDone; err != nil {
		t.Fatalf("the slow Append: %v", err)
	}
	again := read()
	if first.asOfErr != nil || again.asOfErr != nil || !reflect.DeepEqual(first.asOf, again.asOf) {
		t.Errorf("AsOf known at %s: first %s, %v; after the slow append landed %s, %v", fmtTime(k),
			fmtEvent(first.asOf), first.asOfErr, fmtEvent(again.asOf), again.asOfErr)
	}
	for _, c := range []struct {
		what          string
		first, second []eventcenter.Event
	}{{"History", first.history, again.history}, {"Lookup", first.lookup, again.lookup}, {"Replay", first.replay, again.replay}} {
		if d := diffEvents(c.second, c.first); d != "" {
			t.Errorf("%s known at %s changed once the slow append (stamped before it) landed: %d events, then %d:\n%s",
				c.what, fmtTime(k), len(c.first), len(c.second), d)
		}
	}
	if len(again.replay) != n+1 {
		t.Errorf("Replay known at %s: %d events, want the %d of both appends", fmtTime(k), len(again.replay), n+1)
	}

	// The clock stands still: an append after a read at its present (or
	// later: that reads the present) is stamped after it.
	now := h.clock.Now()
	for _, known := range []time.Time{now, farFuture} {
		q := eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: at(0), To: at(10), KnownAt: known}
		before := h.replay(q)
		key := "after-" + fmtTime(known)
		if err := h.s.Append(h.ctx, []eventcenter.Event{ev(srcOrders, key, at(3), pos(2, 0), eventcenter.OpInsert, nil)}); err != nil {
			t.Fatalf("Append: %v", err)
		}
		got, err := h.s.History(h.ctx, eventcenter.HistoryQuery{Source: srcOrders, Key: key, From: at(0), To: at(10)})
		if err != nil || len(got) != 1 {
			t.Fatalf("History of the appended key: %d events, %v", len(got), err)
		}
		if !got[0].StoredAt.After(now) {
			t.Errorf("an append after a read known at %s (the clock standing at %s) is stamped %s, not after it",
				fmtTime(known), fmtTime(now), fmtTime(got[0].StoredAt))
		}
		if known.Equal(now) {
			if d := diffEvents(h.replay(q), before); d != "" {
				t.Errorf("Replay known at %s changed after an append:\n%s", fmtTime(known), d)
			}
		}
	}
}

// testTimeBounds: events at the first and the last representable instants
// are stored and found by every read, an index declared afterwards
// included; one nanosecond outside is refused.
func testTimeBounds(t *testing.T, h *harness) {
	first := h.append(ev(srcOrders, "first", eventcenter.MinTime, pos(0, 0), eventcenter.OpInsert, row("user", "u")))[0]
	last := h.append(ev(srcOrders, "last", eventcenter.MaxTime, pos(0, 0), eventcenter.OpInsert, row("user", "u")))[0]
	h.declare(eventcenter.Index{Source: srcOrders, Name: "user", Column: "user"}) // indexes what is stored

	h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "first", Time: eventcenter.MinTime}, &first)
	h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "first", Time: farPast}, nil)
	h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "last", Time: eventcenter.MaxTime}, &last)
	h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "last", Time: eventcenter.MaxTime.Add(-time.Nanosecond)}, nil)
	h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "last", Time: farFuture}, &last)
	for _, tm := range []time.Time{eventcenter.MaxTime, farFuture} {
		h.wantLookup(eventcenter.LookupQuery{Source: srcOrders, Index: "user", Value: "u", Time: tm}, first, last)
	}
	h.wantLookup(eventcenter.LookupQuery{Source: srcOrders, Index: "user", Value: "u", Time: eventcenter.MaxTime.Add(-time.Nanosecond)}, first)
	h.wantHistory(eventcenter.HistoryQuery{Source: srcOrders, Key: "last", From: eventcenter.MaxTime, To: farFuture}, last)
	h.wantHistory(eventcenter.HistoryQuery{Source: srcOrders, Key: "last", From: farFuture, To: farFuture})
	h.wantHistory(eventcenter.HistoryQuery{Source: srcOrders, Key: "first", From: farPast, To: eventcenter.MinTime.Add(time.Nanosecond)}, first)
	h.wantHistory(eventcenter.HistoryQuery{Source: srcOrders, Key: "first", From: farPast, To: eventcenter.MinTime})
	h.wantReplay(eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: eventcenter.AllTime.From, To: eventcenter.AllTime.To}, first, last)
	h.wantReplay(eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: farPast, To: eventcenter.MaxTime}, first)
	h.wantReplay(eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: farFuture, To: farFuture})

	for _, tm := range []time.Time{eventcenter.MinTime.Add(-time.Nanosecond), eventcenter.MaxTime.Add(time.Nanosecond)} {
		err := h.s.Append(h.ctx, []eventcenter.Event{ev(srcOrders, "outside", tm, pos(0, 0), eventcenter.OpInsert, nil)})
		var ie *eventcenter.InvalidEventError
		if !errors.As(err, &ie) || ie.Field != "time" {
			t.Errorf("Append at %s, a nanosecond outside the bounds: error %v, want an invalid time", fmtTime(tm), err)
		}
	}
}
