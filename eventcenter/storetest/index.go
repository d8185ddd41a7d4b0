package storetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// testIndex: "all orders of user U as of T", with orders moving between
// users and deleted, the index declared after the data exists, and more
// data appended after it.
func testIndex(t *testing.T, h *harness) {
	var off uint64
	upd := func(key string, sec int, user any) eventcenter.Event {
		off++
		r := row("status", "new")
		if user != "(none)" {
			r["user_id"] = user
		}
		return ev(srcOrders, key, at(sec), pos(0, off), eventcenter.OpUpdate, r)
	}
	del := func(key string, sec int) eventcenter.Event {
		off++
		return ev(srcOrders, key, at(sec), pos(0, off), eventcenter.OpDelete, nil)
	}
	s := h.append(
		upd("o1", 1, int64(1)),
		upd("o1", 3, int64(2)), // o1 moves to user 2
		upd("o2", 1, "1"),      // "1" as a string indexes as "1" too
		upd("o2", 4, nil),      // a nil column is not indexed
		upd("o2", 6, int64(1)), // and back
		upd("o3", 1, int64(2)),
		del("o3", 5),
		upd("o9", 1, eventcenter.Decimal("1")),
		upd("o10", 2, 1), // int
		upd("o4", 1, "(none)"),
		ev(srcUsers, "o1", at(1), pos(0, 1), eventcenter.OpInsert, row("user_id", int64(1))),
	)
	o1a, o1b, o2a, _, o2c, o3, _, o9, o10 := s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8]

	// Declared after the data: it must cover it.
	h.declare(eventcenter.Index{Source: srcOrders, Name: "user_id", Column: "user_id"})
	lq := func(value string, sec int) eventcenter.LookupQuery {
		return eventcenter.LookupQuery{Source: srcOrders, Index: "user_id", Value: value, Time: at(sec)}
	}
	for _, c := range []struct {
		value string
		sec   int
		want  []eventcenter.Event
	}{
		{"1", 0, nil},
		{"1", 1, []eventcenter.Event{o1a, o2a, o9}},
		{"1", 2, []eventcenter.Event{o1a, o10, o2a, o9}}, // ordered by key as bytes
		{"1", 3, []eventcenter.Event{o10, o2a, o9}},      // o1 left
		{"1", 4, []eventcenter.Event{o10, o9}},           // o2's user is nil
		{"1", 6, []eventcenter.Event{o10, o2c, o9}},      // o2 is back
		{"2", 1, []eventcenter.Event{o3}},
		{"2", 3, []eventcenter.Event{o1b, o3}},
		{"2", 5, []eventcenter.Event{o1b}}, // o3 deleted
		{"3", 9, nil},
		{"", 9, nil},
	} {
		h.wantLookup(lq(c.value, c.sec), c.want...)
	}
	// Just before and exactly at a move.
	q := lq("1", 3)
	q.Time = q.Time.Add(-time.Nanosecond)
	h.wantLookup(q, o1a, o10, o2a, o9)

	// Appended after the declaration.
	off = 100
	o5 := h.append(upd("o5", 2, int64(1)))[0]
	h.wantLookup(lq("1", 2), o1a, o10, o2a, o5, o9)
	// A late move, stored later: hidden as known before it.
	o9moved := h.append(upd("o9", 2, "2"))[0]
	h.wantLookup(lq("1", 3), o10, o2a, o5)
	h.wantLookup(lq("2", 3), o1b, o3, o9moved)
	known := lq("1", 3)
	known.KnownAt = o9moved.StoredAt.Add(-time.Nanosecond)
	h.wantLookup(known, o10, o2a, o5, o9)
	known.Value = "2"
	h.wantLookup(known, o1b, o3)
	known.Value, known.KnownAt = "1", o5.StoredAt.Add(-time.Nanosecond)
	h.wantLookup(known, o10, o2a, o9)

	// A re-appended event with another payload changes no lookup.
	again := o3
	again.After = row("user_id", int64(7))
	h.append(again)
	h.wantLookup(lq("7", 1))
	h.wantLookup(lq("2", 1), o3)

	// Other sources and values are apart.
	h.wantLookup(eventcenter.LookupQuery{Source: srcOrders, Index: "user_id", Value: "1 ", Time: at(9)})
	if _, err := h.s.Lookup(h.ctx, eventcenter.LookupQuery{Source: srcUsers, Index: "user_id", Value: "1", Time: at(9)}); !errors.Is(err, eventcenter.ErrUnknownIndex) {
		t.Errorf("Lookup on a source without the index: error %v, want ErrUnknownIndex", err)
	}
}

// testIndexDeclaration: declaring, redeclaring, conflicting and listing.
func testIndexDeclaration(t *testing.T, h *harness) {
	list := func(source string, want ...eventcenter.Index) {
		t.Helper()
		got, err := h.s.ListIndexes(h.ctx, source)
		if err != nil {
			t.Fatalf("ListIndexes(%s): %v", source, err)
		}
		if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
			t.Errorf("ListIndexes(%s) = %+v, want %+v", source, got, want)
		}
	}
	list(srcOrders)

	o1 := h.append(ev(srcOrders, "o1", at(1), pos(0, 1), eventcenter.OpInsert, row("user_id", int64(1), "status", "paid")))[0]
	byUser := eventcenter.Index{Source: srcOrders, Name: "user_id", Column: "user_id"}
	byStatus := eventcenter.Index{Source: srcOrders, Name: "by_status", Column: "status"}
	users := eventcenter.Index{Source: srcUsers, Name: "user_id", Column: "id"}
	h.declare(byUser)
	h.declare(byStatus)
	h.declare(users)
	list(srcOrders, byStatus, byUser) // by name
	list(srcUsers, users)
	list("mysql.shop.none")

	// Redeclaring is a no-op.
	h.declare(byUser)
	list(srcOrders, byStatus, byUser)

	// The same name on another column is an error and changes nothing.
	if err := h.s.DeclareIndex(h.ctx, eventcenter.Index{Source: srcOrders, Name: "user_id", Column: "status"}); err == nil {
		t.Errorf("DeclareIndex of an existing name on another column: no error")
	}
	list(srcOrders, byStatus, byUser)
	h.wantLookup(eventcenter.LookupQuery{Source: srcOrders, Index: "user_id", Value: "1", Time: at(1)}, o1)
	h.wantLookup(eventcenter.LookupQuery{Source: srcOrders, Index: "user_id", Value: "paid", Time: at(1)})
	h.wantLookup(eventcenter.LookupQuery{Source: srcOrders, Index: "by_status", Value: "paid", Time: at(1)}, o1)

	// Malformed declarations fail and are not listed.
	for _, ix := range []eventcenter.Index{
		{Source: srcOrders, Name: "", Column: "x"},
		{Source: srcOrders, Name: "x", Column: ""},
		{Source: "", Name: "x", Column: "x"},
		{Source: "bad source", Name: "x", Column: "x"},
	} {
		if err := h.s.DeclareIndex(h.ctx, ix); err == nil {
			t.Errorf("DeclareIndex(%+v): no error", ix)
		}
	}
	list(srcOrders, byStatus, byUser)

	for _, q := range []eventcenter.LookupQuery{
		{Source: srcOrders, Index: "nope", Value: "1", Time: at(1)},
		{Source: srcOrders, Index: "status", Value: "paid", Time: at(1)}, // the column, not the name
		{Source: "mysql.shop.none", Index: "user_id", Value: "1", Time: at(1)},
	} {
		if _, err := h.s.Lookup(h.ctx, q); !errors.Is(err, eventcenter.ErrUnknownIndex) {
			t.Errorf("Lookup(%s.%s): error %v, want ErrUnknownIndex", q.Source, q.Index, err)
		}
	}
}
