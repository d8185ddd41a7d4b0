package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// testInvalidEvents: a batch with one malformed event is refused whole,
// naming the event.
func testInvalidEvents(t *testing.T, h *harness) {
	good := func(key string) eventcenter.Event {
		return ev(srcOrders, key, at(1), pos(0, 1), eventcenter.OpInsert, row("v", int64(1)))
	}
	with := func(f func(e *eventcenter.Event)) eventcenter.Event {
		e := good("bad")
		f(&e)
		return e
	}
	type custom struct{ A int }
	for i, c := range []struct {
		name  string
		bad   eventcenter.Event
		field string
	}{
		{"no source", with(func(e *eventcenter.Event) { e.Source = "" }), "source"},
		{"source with a space", with(func(e *eventcenter.Event) { e.Source = "my source" }), "source"},
		{"source not ASCII", with(func(e *eventcenter.Event) { e.Source = "sourcé" }), "source"},
		{"source too long", with(func(e *eventcenter.Event) { e.Source = strings.Repeat("s", eventcenter.MaxSourceLen+1) }), "source"},
		{"no key", with(func(e *eventcenter.Event) { e.Key = "" }), "key"},
		{"key too long", with(func(e *eventcenter.Event) { e.Key = strings.Repeat("k", eventcenter.MaxKeyLen+1) }), "key"},
		{"no time", with(func(e *eventcenter.Event) { e.Time = time.Time{} }), "time"},
		{"time before 1678", with(func(e *eventcenter.Event) { e.Time = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC) }), "time"},
		{"time after 2262", with(func(e *eventcenter.Event) { e.Time = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }), "time"},
		{"no op", with(func(e *eventcenter.Event) { e.Op = 0 }), "op"},
		{"unknown op", with(func(e *eventcenter.Event) { e.Op = eventcenter.OpMessage + 1 }), "op"},
		{"delete with an after row", with(func(e *eventcenter.Event) { e.Op = eventcenter.OpDelete }), "after"},
		{"delete with an empty after row", with(func(e *eventcenter.Event) { e.Op, e.After = eventcenter.OpDelete, eventcenter.Row{} }), "after"},
		{"int32 column", with(func(e *eventcenter.Event) { e.After["x"] = int32(1) }), "after"},
		{"float32 column", with(func(e *eventcenter.Event) { e.After["x"] = float32(1) }), "after"},
		{"struct column", with(func(e *eventcenter.Event) { e.After["x"] = custom{1} }), "after"},
		{"map column", with(func(e *eventcenter.Event) { e.After["x"] = map[string]any{} }), "after"},
		{"pointer column", with(func(e *eventcenter.Event) { e.After["x"] = new(int64) }), "after"},
		{"NaN column", with(func(e *eventcenter.Event) { e.After["x"] = math.NaN() }), "after"},
		{"+Inf column", with(func(e *eventcenter.Event) { e.After["x"] = math.Inf(1) }), "after"},
		{"-Inf column", with(func(e *eventcenter.Event) { e.Before = eventcenter.Row{"x": math.Inf(-1)} }), "before"},
		{"decimal that is not a number", with(func(e *eventcenter.Event) { e.After["x"] = eventcenter.Decimal("NaN") }), "after"},
		{"column name not UTF-8", with(func(e *eventcenter.Event) { e.After["x\xff"] = int64(1) }), "after"},
		{"value too long", with(func(e *eventcenter.Event) {
			e.After["x"] = make([]byte, eventcenter.CurrentSizeLimits().Value+1)
		}), "after"},
		{"row too large", with(func(e *eventcenter.Event) {
			for i := 0; e.After.Size() <= eventcenter.CurrentSizeLimits().Row; i++ {
				e.After[fmt.Sprint("x", i)] = strings.Repeat("v", eventcenter.CurrentSizeLimits().Value)
			}
		}), "after"},
		{"time column out of range", with(func(e *eventcenter.Event) { e.After["x"] = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) }), "after"},
		{"bad before row", with(func(e *eventcenter.Event) { e.Before = eventcenter.Row{"x": uint64(1)} }), "before"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := fmt.Sprintf("good%d-a", i), fmt.Sprintf("good%d-b", i)
			h.clock.Advance(time.Millisecond)
			err := h.s.Append(h.ctx, []eventcenter.Event{good(a), c.bad, good(b)})
			var ie *eventcenter.InvalidEventError
			switch {
			case err == nil:
				t.Fatalf("Append: no error")
			case !errors.Is(err, eventcenter.ErrInvalidEvent):
				t.Errorf("Append: error %v does not match ErrInvalidEvent", err)
			case !errors.As(err, &ie):
				t.Errorf("Append: error %v is not an *InvalidEventError", err)
			default:
				if ie.Index != 1 || ie.Field != c.field {
					t.Errorf("Append: InvalidEventError names event #%d, field %q; want #1, %q (%v)", ie.Index, ie.Field, c.field, err)
				}
			}
			// Nothing of the batch is stored.
			for _, k := range []string{a, b, "bad"} {
				if got, err := h.s.AsOf(h.ctx, eventcenter.AsOf{Source: srcOrders, Key: k, Time: at(9)}); !errors.Is(err, eventcenter.ErrNotFound) {
					t.Errorf("after a refused batch, AsOf(%q) = %s, %v; want ErrNotFound", k, fmtEvent(got), err)
				}
			}
			if got := h.replay(eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: at(-1000), To: at(1000)}); len(got) != 0 {
				t.Errorf("after a refused batch, replay finds %d events, first %s", len(got), fmtEvent(got[0]))
			}
		})
	}

	// An empty batch is fine and stores nothing.
	if err := h.s.Append(h.ctx, nil); err != nil {
		t.Errorf("Append(nil): %v", err)
	}

	// Append ignores the given StoredAt and does not modify the slice.
	batch := []eventcenter.Event{good("keep")}
	batch[0].StoredAt = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	batch[0].Time = at(1).In(time.FixedZone("Q", 7200))
	batch[0].After["i"] = 5
	copied := batch[0]
	copied.After = eventcenter.Row{"v": int64(1), "i": 5}
	stamp := h.clock.Advance(time.Millisecond)
	if err := h.s.Append(h.ctx, batch); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(batch[0], copied) {
		t.Errorf("Append modified its input:\n got %#v\nwant %#v", batch[0], copied)
	}
	want := normEvent(copied)
	want.StoredAt = stamp
	h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "keep", Time: at(1)}, &want)

	// A cancelled context stores nothing.
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	if err := h.s.Append(ctx, []eventcenter.Event{good("cancelled")}); err == nil {
		// A backend may have finished before looking at the context; then the
		// event must be there.
		h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "cancelled", Time: at(1)}, ptr(func() eventcenter.Event {
			e := normEvent(good("cancelled"))
			e.StoredAt = stamp
			return e
		}()))
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a cancelled context: error %v, want context.Canceled", err)
	}
}

func slicesSortByKey(evs []eventcenter.Event) {
	slices.SortFunc(evs, func(a, b eventcenter.Event) int { return strings.Compare(a.Key, b.Key) })
}

// testInvalidQueries: malformed reads return ErrInvalidQuery.
func testInvalidQueries(t *testing.T, h *harness) {
	h.append(ev(srcOrders, "o1", at(1), pos(0, 1), eventcenter.OpInsert, row("v", int64(1))))
	h.declare(eventcenter.Index{Source: srcOrders, Name: "v", Column: "v"})
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, eventcenter.ErrInvalidQuery) {
			t.Errorf("%s: error %v, want ErrInvalidQuery", what, err)
		}
	}
	for _, q := range []eventcenter.AsOf{
		{Key: "o1", Time: at(1)},
		{Source: "bad source", Key: "o1", Time: at(1)},
		{Source: srcOrders, Time: at(1)},
		{Source: srcOrders, Key: "o1"},
	} {
		_, err := h.s.AsOf(h.ctx, q)
		check(fmt.Sprintf("AsOf(%+v)", q), err)
	}
	for _, q := range []eventcenter.HistoryQuery{
		{Key: "o1", From: at(0), To: at(2)},
		{Source: srcOrders, From: at(0), To: at(2)},
		{Source: srcOrders, Key: "o1", To: at(2)},
		{Source: srcOrders, Key: "o1", From: at(0)},
		{Source: srcOrders, Key: "o1", From: at(2), To: at(2).Add(-1)},
	} {
		_, err := h.s.History(h.ctx, q)
		check(fmt.Sprintf("History(%+v)", q), err)
	}
	for _, q := range []eventcenter.LookupQuery{
		{Index: "v", Value: "1", Time: at(1)},
		{Source: "bad\tsource", Index: "v", Value: "1", Time: at(1)},
		{Source: srcOrders, Value: "1", Time: at(1)},
		{Source: srcOrders, Index: "v", Value: "1"},
	} {
		_, err := h.s.Lookup(h.ctx, q)
		check(fmt.Sprintf("Lookup(%+v)", q), err)
	}
	for _, q := range []eventcenter.ReplayQuery{
		{From: at(0), To: at(2)},
		{Sources: []string{}, From: at(0), To: at(2)},
		{Sources: []string{srcOrders, ""}, From: at(0), To: at(2)},
		{Sources: []string{"bad source"}, From: at(0), To: at(2)},
		{Sources: []string{srcOrders}, To: at(2)},
		{Sources: []string{srcOrders}, From: at(0)},
		{Sources: []string{srcOrders}, From: at(2), To: at(1)},
	} {
		got, err := collect(h.s.Replay(h.ctx, q))
		check(fmt.Sprintf("Replay(%s)", fmtReplay(q)), err)
		if len(got) != 0 {
			t.Errorf("Replay(%s): %d events before the error", fmtReplay(q), len(got))
		}
	}
}

// testConcurrent: concurrent appends of overlapping batches keep one copy
// per identity, and an index declared while appends run covers them all.
func testConcurrent(t *testing.T, h *harness) {
	const writers, perWriter = 6, 200
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < perWriter; i += 20 {
				var batch []eventcenter.Event
				for j := i; j < i+20; j++ {
					// Writers overlap: identity depends on j only, the payload on w.
					batch = append(batch, ev(srcOrders, fmt.Sprintf("k%02d", j%37), at(j%11), pos(0, uint64(j)), eventcenter.OpUpdate,
						row("writer", int64(w), "user", int64(j%3))))
				}
				if err := h.s.Append(h.ctx, batch); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		errs <- h.s.DeclareIndex(h.ctx, eventcenter.Index{Source: srcOrders, Name: "user", Column: "user"})
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	all := h.replay(eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: at(-1), To: at(100)})
	if len(all) != perWriter {
		t.Fatalf("replay after concurrent appends: %d events, want %d (one per identity)", len(all), perWriter)
	}
	// Each key's state, and each lookup, agrees with the replay.
	states := map[string]eventcenter.Event{}
	for _, e := range all {
		states[e.Key] = e // Compare order: the last one wins
	}
	byUser := map[string][]eventcenter.Event{}
	for k, e := range states {
		h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: k, Time: at(100)}, &e)
		v, _ := eventcenter.IndexValue(e.After["user"])
		byUser[v] = append(byUser[v], e)
	}
	for v, want := range byUser {
		slicesSortByKey(want)
		h.wantLookup(eventcenter.LookupQuery{Source: srcOrders, Index: "user", Value: v, Time: at(100)}, want...)
	}
}

// testClosed: after Close, every call returns ErrClosed.
func testClosed(t *testing.T, h *harness) {
	h.append(ev(srcOrders, "o1", at(1), pos(0, 1), eventcenter.OpInsert, row("v", int64(1))))
	if err := h.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := h.ctx
	s := h.s
	for name, call := range map[string]func() error{
		"Close": s.Close,
		"Append": func() error {
			return s.Append(ctx, []eventcenter.Event{ev(srcOrders, "o2", at(1), pos(0, 2), eventcenter.OpInsert, nil)})
		},
		"AsOf": func() error {
			_, err := s.AsOf(ctx, eventcenter.AsOf{Source: srcOrders, Key: "o1", Time: at(1)})
			return err
		},
		"History": func() error {
			_, err := s.History(ctx, eventcenter.HistoryQuery{Source: srcOrders, Key: "o1", From: at(0), To: at(2)})
			return err
		},
		"Lookup": func() error {
			_, err := s.Lookup(ctx, eventcenter.LookupQuery{Source: srcOrders, Index: "v", Value: "1", Time: at(1)})
			return err
		},
		"Replay": func() error {
			_, err := collect(s.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: at(0), To: at(2)}))
			return err
		},
		"DeclareIndex": func() error {
			return s.DeclareIndex(ctx, eventcenter.Index{Source: srcOrders, Name: "v", Column: "v"})
		},
		"ListIndexes": func() error {
			_, err := s.ListIndexes(ctx, srcOrders)
			return err
		},
		"AdvanceWatermark": func() error { return s.AdvanceWatermark(ctx, srcOrders, 0, at(1)) },
		"Watermark": func() error {
			_, err := s.Watermark(ctx, srcOrders)
			return err
		},
		"PartitionWatermarks": func() error {
			_, err := s.PartitionWatermarks(ctx, srcOrders)
			return err
		},
		"WaitWatermark": func() error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return s.WaitWatermark(ctx, srcOrders, at(1))
		},
	} {
		if err := call(); !errors.Is(err, eventcenter.ErrClosed) {
			t.Errorf("%s after Close: error %v, want ErrClosed", name, err)
		}
	}
}

// testCloseInFlight: every call in flight when Close runs completes or
// returns ErrClosed, without a panic: appends, reads, an index being
// declared, a replay being iterated (its next step after Close ends it with
// ErrClosed, or it completes), and a WaitWatermark without a deadline,
// which wakes with ErrClosed. Close itself succeeds (no leaked iterator).
func testCloseInFlight(t *testing.T, h *harness) {
	var seed []eventcenter.Event
	for i := range 2000 {
		seed = append(seed, ev(srcOrders, fmt.Sprintf("k%04d", i), at(i%50), pos(0, uint64(i)), eventcenter.OpInsert, row("user", int64(i%7))))
	}
	h.append(seed...)
	h.declare(eventcenter.Index{Source: srcOrders, Name: "user", Column: "user"})

	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	report := func(what string, err error) {
		if err != nil && !errors.Is(err, eventcenter.ErrClosed) {
			mu.Lock()
			bad = append(bad, fmt.Sprintf("%s: %v", what, err))
			mu.Unlock()
		}
	}
	// Each loop runs its call until the store refuses it; started tells
	// that every loop made one call at least.
	var started sync.WaitGroup
	loop := func(what string, call func(i int) error) {
		started.Add(1)
		wg.Go(func() {
			for i := 0; ; i++ {
				err := call(i)
				if i == 0 {
					started.Done()
				}
				if err != nil {
					report(what, err)
					return
				}
			}
		})
	}
	for w := range 3 {
		loop(fmt.Sprintf("Append #%d", w), func(i int) error {
			return h.s.Append(h.ctx, []eventcenter.Event{
				ev(srcPay, fmt.Sprintf("w%d-%d", w, i), at(i%50), pos(uint64(w), uint64(i)), eventcenter.OpInsert, row("user", int64(i%7))),
			})
		})
	}
	loop("AsOf", func(i int) error {
		_, err := h.s.AsOf(h.ctx, eventcenter.AsOf{Source: srcOrders, Key: fmt.Sprintf("k%04d", i%2000), Time: at(60)})
		return err
	})
	loop("AsOf known at", func(i int) error {
		_, err := h.s.AsOf(h.ctx, eventcenter.AsOf{Source: srcOrders, Key: fmt.Sprintf("k%04d", i%2000), Time: at(60), KnownAt: h.clock.Now()})
		return err
	})
	loop("History", func(i int) error {
		_, err := h.s.History(h.ctx, eventcenter.HistoryQuery{Source: srcOrders, Key: fmt.Sprintf("k%04d", i%2000), From: at(0), To: at(60)})
		return err
	})
	loop("Lookup", func(i int) error {
		_, err := h.s.Lookup(h.ctx, eventcenter.LookupQuery{Source: srcOrders, Index: "user", Value: fmt.Sprint(i % 7), Time: at(60)})
		return err
	})
	loop("Replay", func(int) error {
		_, err := collect(h.s.Replay(h.ctx, eventcenter.ReplayQuery{Sources: []string{srcOrders, srcPay}, From: at(0), To: at(60)}))
		return err
	})
	loop("AdvanceWatermark", func(i int) error {
		return h.s.AdvanceWatermark(h.ctx, srcPay, 0, at(i))
	})
	// An index declared as Close runs.
	started.Add(1)
	wg.Go(func() {
		started.Done()
		report("DeclareIndex", h.s.DeclareIndex(h.ctx, eventcenter.Index{Source: srcOrders, Name: "late", Column: "user"}))
	})
	// A replay being iterated: one event before Close, the rest after.
	paused, resume := make(chan struct{}), make(chan struct{})
	started.Add(1)
	wg.Go(func() {
		n := 0
		for _, err := range h.s.Replay(h.ctx, eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: at(0), To: at(60)}) {
			if err != nil {
				report("an iterated Replay", err)
				return
			}
			if n++; n == 1 {
				started.Done()
				close(paused)
				<-resume
			}
		}
	})
	// A wait without a deadline, on a source nobody advances.
	waiting := make(chan error, 1)
	go func() { waiting <- h.s.WaitWatermark(h.ctx, "kafka.never", at(1)) }()

	started.Wait()
	<-paused
	if err := h.s.Close(); err != nil {
		t.Errorf("Close with calls in flight: %v", err)
	}
	close(resume)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatalf("calls in flight still running 30s after Close")
	}
	select {
	case err := <-waiting:
		if !errors.Is(err, eventcenter.ErrClosed) {
			t.Errorf("WaitWatermark in flight at Close: error %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("WaitWatermark without a deadline still waiting 10s after Close")
	}
	for _, b := range bad {
		t.Errorf("a call in flight at Close: %s (want nil or ErrClosed)", b)
	}
}
