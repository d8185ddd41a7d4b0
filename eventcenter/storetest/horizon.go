package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// horizonRetention is the retention of the store of testHorizon.
const horizonRetention = time.Hour

// testHorizon: a store that keeps only a window refuses, with a
// *BeyondHorizonError naming its horizon, every read whose answer may
// depend on what was stored before the horizon, and answers the others.
func testHorizon(t *testing.T, h *harness) {
	rs, ok := h.s.(eventcenter.Retention)
	if !ok {
		t.Fatalf("a store opened with a retention does not implement eventcenter.Retention")
	}
	start := h.clock.Now()
	around := func(d time.Duration) time.Time { return start.Add(d) } // event times around the clock
	user := func(u string) eventcenter.Row { return row("user", u) }

	// Stored at the start: events that happened just before.
	h.append(
		ev(srcOrders, "old", around(-10*time.Minute), pos(0, 1), eventcenter.OpInsert, user("a")),
		ev(srcOrders, "both", around(-10*time.Minute), pos(0, 2), eventcenter.OpInsert, user("a")),
	)
	h.declare(eventcenter.Index{Source: srcOrders, Name: "user", Column: "user"})
	// Two hours later (the horizon is an hour back): recent events.
	h.clock.Advance(2 * time.Hour)
	recent := h.append(
		ev(srcOrders, "both", around(90*time.Minute), pos(0, 3), eventcenter.OpUpdate, user("b")),
		ev(srcOrders, "new", around(100*time.Minute), pos(0, 4), eventcenter.OpInsert, user("b")),
		ev(srcOrders, "gone", around(100*time.Minute), pos(0, 5), eventcenter.OpInsert, user("b")),
		ev(srcOrders, "gone", around(110*time.Minute), pos(0, 6), eventcenter.OpDelete, nil),
	)
	now := h.clock.Now()
	horizon := now.Add(-horizonRetention)
	if got := rs.Horizon(now); !got.Equal(horizon) {
		t.Fatalf("Horizon(%s) = %s, want %s", fmtTime(now), fmtTime(got), fmtTime(horizon))
	}

	beyond := func(what string, err error) {
		t.Helper()
		var be *eventcenter.BeyondHorizonError
		switch {
		case !errors.Is(err, eventcenter.ErrBeyondHorizon):
			t.Errorf("%s: error %v, want ErrBeyondHorizon", what, err)
		case !errors.As(err, &be):
			t.Errorf("%s: error %v is not a *BeyondHorizonError", what, err)
		case !be.Horizon.Equal(horizon):
			t.Errorf("%s: the error names the horizon %s, want %s", what, fmtTime(be.Horizon), fmtTime(horizon))
		}
	}
	asOf := func(key string, tm, known time.Time) error {
		_, err := h.s.AsOf(h.ctx, eventcenter.AsOf{Source: srcOrders, Key: key, Time: tm, KnownAt: known})
		return err
	}

	// AsOf answers when the latest event it finds is inside the window.
	h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "both", Time: now}, &recent[0])
	h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "new", Time: now}, &recent[1])
	h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "new", Time: now, KnownAt: now}, &recent[1])
	h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "gone", Time: now}, nil) // deleted inside the window
	// and refuses when it may have lost the latest event.
	beyond("AsOf of a key last written before the horizon", asOf("old", now, time.Time{}))
	beyond("AsOf of a key never written", asOf("never", now, time.Time{}))
	beyond("AsOf at a time before the horizon", asOf("both", around(30*time.Minute), time.Time{}))
	beyond("AsOf of a key before its first recent event", asOf("new", around(95*time.Minute), time.Time{}))
	beyond("AsOf known at a time before the horizon", asOf("new", now, horizon.Add(-time.Nanosecond)))

	// History and Replay answer from the horizon on.
	h.wantHistory(eventcenter.HistoryQuery{Source: srcOrders, Key: "gone", From: horizon, To: farFuture}, recent[2], recent[3])
	h.wantReplay(eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: horizon, To: farFuture}, recent...)
	_, err := h.s.History(h.ctx, eventcenter.HistoryQuery{Source: srcOrders, Key: "both", From: horizon.Add(-time.Nanosecond), To: now})
	beyond("History from before the horizon", err)
	_, err = h.s.History(h.ctx, eventcenter.HistoryQuery{Source: srcOrders, Key: "both", From: horizon, To: now, KnownAt: start})
	beyond("History known at a time before the horizon", err)
	for _, q := range []eventcenter.ReplayQuery{
		{Sources: []string{srcOrders}, From: farPast, To: farFuture},
		{Sources: []string{srcOrders}, From: horizon, To: now, KnownAt: start},
	} {
		_, err := collect(h.s.Replay(h.ctx, q))
		beyond(fmt.Sprintf("Replay(%s)", fmtReplay(q)), err)
	}

	// Lookup answers at a time inside the window.
	h.wantLookup(eventcenter.LookupQuery{Source: srcOrders, Index: "user", Value: "b", Time: now}, recent[0], recent[1])
	_, err = h.s.Lookup(h.ctx, eventcenter.LookupQuery{Source: srcOrders, Index: "user", Value: "a", Time: around(30 * time.Minute)})
	beyond("Lookup at a time before the horizon", err)
	_, err = h.s.Lookup(h.ctx, eventcenter.LookupQuery{Source: srcOrders, Index: "user", Value: "b", Time: now, KnownAt: start})
	beyond("Lookup known at a time before the horizon", err)
}
