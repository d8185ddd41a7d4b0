package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/source"
)

// lateFixture is an in-memory event center whose source "mysql.late.orders"
// has its watermark at base+1m, and an ingester storing into it (through
// wrap, if set) without Kafka: the tests call appendBatch as Run does.
type lateFixture struct {
	st    *embedded.Store
	base  time.Time
	heard [][]Late
}

const lateSrc = "mysql.late.orders"

func newLateFixture(t *testing.T) *lateFixture {
	t.Helper()
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fx := &lateFixture{st: st, base: time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)}
	ctx := t.Context()
	if err := st.RegisterPartitions(ctx, lateSrc, []int32{0}); err != nil {
		t.Fatal(err)
	}
	if err := st.AdvanceWatermark(ctx, lateSrc, 0, fx.base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	return fx
}

// ingester returns an ingester storing into store (the fixture's store if
// nil).
func (fx *lateFixture) ingester(t *testing.T, store eventcenter.Store) *Ingester {
	t.Helper()
	if store == nil {
		store = fx.st
	}
	reg, err := source.Parse([]byte(`
sources:
  - name: ` + lateSrc + `
    kind: mysql
    topic: late-internal
    mysql: {database: late, table: orders}
`))
	if err != nil {
		t.Fatal(err)
	}
	in, err := New(Config{Brokers: []string{"127.0.0.1:1"}, Sources: reg, Store: store,
		OnLate: func(_ context.Context, late []Late) { fx.heard = append(fx.heard, late) }})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// order n at base+d, behind the watermark if d <= 1m.
func (fx *lateFixture) order(n int, d time.Duration) eventcenter.Event {
	return eventcenter.Event{Source: lateSrc, Key: fmt.Sprint("o", n%10), Time: fx.base.Add(d), Pos: eventcenter.Position{Log: 1, Offset: uint64(n)},
		Op: eventcenter.OpInsert, After: eventcenter.Row{"n": int64(n)}}
}

func (fx *lateFixture) noted(t *testing.T, e eventcenter.Event) bool {
	t.Helper()
	_, ok, err := LateOf(t.Context(), fx.st, e.ID())
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestLateEventsOfOneKeyInOneBatch: two late events of one key in one
// batch are each noted, and a late event consumed twice in one batch (a
// producer's retry) is heard of once.
func TestLateEventsOfOneKeyInOneBatch(t *testing.T) {
	fx := newLateFixture(t)
	in := fx.ingester(t, nil)
	a, b, onTime := fx.order(1, 10*time.Second), fx.order(11, 20*time.Second), fx.order(21, 2*time.Minute)
	if a.Key != b.Key {
		t.Fatal("the fixture is not what the test means")
	}
	if err := in.appendBatch(t.Context(), nil, &batch{events: []eventcenter.Event{a, b, a, onTime}}); err != nil {
		t.Fatal(err)
	}
	if !fx.noted(t, a) || !fx.noted(t, b) || fx.noted(t, onTime) {
		t.Errorf("notes of a %v, b %v, on time %v; want a and b", fx.noted(t, a), fx.noted(t, b), fx.noted(t, onTime))
	}
	var heard []string
	for _, late := range fx.heard {
		for _, l := range late {
			heard = append(heard, fmt.Sprint(l.Event.Key, "@", l.Event.Pos.Offset))
		}
	}
	if !slices.Equal(heard, []string{"o1@1", "o1@11"}) {
		t.Errorf("OnLate heard %v, want o1@1 and o1@11 once each", heard)
	}
}

// partial is a store that is not atomic (as HBase's Append is not): the
// first Append holding the event crash stores that event alone and fails
// as a process dying mid-Append would.
type partial struct {
	eventcenter.Store
	crash   eventcenter.ID
	crashed bool
}

func (p *partial) Append(ctx context.Context, evs []eventcenter.Event) error {
	if p.crashed {
		return eventcenter.ErrClosed
	}
	for _, e := range evs {
		if e.ID() == p.crash {
			p.crashed = true
			if err := p.Store.Append(ctx, []eventcenter.Event{e}); err != nil {
				return err
			}
			return fmt.Errorf("crash mid-Append: %w", eventcenter.ErrClosed)
		}
	}
	return p.Store.Append(ctx, evs)
}

// TestNoLateEventWithoutItsNote: on a store that may store a batch in
// parts, ingest dying in the middle of storing a late event leaves no late
// event without its note: the batch consumed again after the restart
// stores the rest, and the note is there (or stored then).
func TestNoLateEventWithoutItsNote(t *testing.T) {
	fx := newLateFixture(t)
	late, onTime := fx.order(1, 10*time.Second), fx.order(2, 2*time.Minute)
	b := []eventcenter.Event{onTime, late}
	crashing := fx.ingester(t, &partial{Store: fx.st, crash: late.ID()})
	if err := crashing.appendBatch(t.Context(), nil, &batch{events: slices.Clone(b)}); !errors.Is(err, eventcenter.ErrClosed) {
		t.Fatalf("append through the crashing store: %v, want the crash", err)
	}
	if _, err := fx.st.AsOf(t.Context(), eventcenter.AsOf{Source: lateSrc, Key: late.Key, Time: late.Time}); err != nil {
		t.Fatalf("the crash did not store the late event: %v (the fixture is not what the test means)", err)
	}
	restarted := fx.ingester(t, nil)
	if err := restarted.appendBatch(t.Context(), nil, &batch{events: slices.Clone(b)}); err != nil {
		t.Fatal(err)
	}
	if !fx.noted(t, late) {
		t.Error("the late event is stored without its note")
	}
}

// noWatermark is a store whose watermarks cannot be read.
type noWatermark struct{ eventcenter.Store }

func (noWatermark) Watermark(context.Context, string) (time.Time, error) {
	return time.Time{}, errors.New("watermark unreadable")
}

// TestUnreadableWatermarkStoresTheBatch: a source whose watermark cannot
// be read holds nothing back: the batch is stored, its events un-noted and
// unheard of (late notes are best effort; `tidemark parity impact
// --lateness` finds such events by their lateness).
func TestUnreadableWatermarkStoresTheBatch(t *testing.T) {
	fx := newLateFixture(t)
	late := fx.order(1, 10*time.Second)
	in := fx.ingester(t, noWatermark{fx.st})
	if err := in.appendBatch(t.Context(), nil, &batch{events: []eventcenter.Event{late}}); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.st.AsOf(t.Context(), eventcenter.AsOf{Source: lateSrc, Key: late.Key, Time: late.Time}); err != nil {
		t.Fatalf("the event is not stored: %v", err)
	}
	if fx.noted(t, late) || len(fx.heard) != 0 {
		t.Errorf("noted %v, OnLate heard %v; want neither without a watermark", fx.noted(t, late), fx.heard)
	}
}
