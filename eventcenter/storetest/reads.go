package storetest

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

const (
	srcOrders = "mysql.shop.orders"
	srcUsers  = "mysql.shop.users"
)

// testAsOf: the state of a key at T is the latest event at or before T.
func testAsOf(t *testing.T, h *harness) {
	stored := h.append(
		ev(srcOrders, "o1", at(10), pos(1, 100), eventcenter.OpInsert, row("amount", int64(5))),
		ev(srcOrders, "o1", at(20), pos(1, 200), eventcenter.OpUpdate, row("amount", int64(7))),
		ev(srcOrders, "o2", at(10), pos(1, 101), eventcenter.OpInsert, row("amount", int64(1))),
		ev(srcUsers, "o1", at(5), pos(3, 1), eventcenter.OpInsert, row("name", "not an order")),
	)
	ins, upd, o2, user := stored[0], stored[1], stored[2], stored[3]
	for _, c := range []struct {
		name string
		q    eventcenter.AsOf
		want *eventcenter.Event
	}{
		{"before the first event", eventcenter.AsOf{Source: srcOrders, Key: "o1", Time: at(10).Add(-time.Nanosecond)}, nil},
		{"exactly at the insert", eventcenter.AsOf{Source: srcOrders, Key: "o1", Time: at(10)}, &ins},
		{"between", eventcenter.AsOf{Source: srcOrders, Key: "o1", Time: at(15)}, &ins},
		{"just before the update", eventcenter.AsOf{Source: srcOrders, Key: "o1", Time: at(20).Add(-time.Nanosecond)}, &ins},
		{"exactly at the update", eventcenter.AsOf{Source: srcOrders, Key: "o1", Time: at(20)}, &upd},
		{"long after", eventcenter.AsOf{Source: srcOrders, Key: "o1", Time: at(1_000_000)}, &upd},
		{"far future", eventcenter.AsOf{Source: srcOrders, Key: "o1", Time: farFuture}, &upd},
		{"far past", eventcenter.AsOf{Source: srcOrders, Key: "o1", Time: farPast}, nil},
		{"time in another zone", eventcenter.AsOf{Source: srcOrders, Key: "o1", Time: at(20).In(time.FixedZone("X", -7*3600))}, &upd},
		{"other key", eventcenter.AsOf{Source: srcOrders, Key: "o2", Time: at(30)}, &o2},
		{"same key, other source", eventcenter.AsOf{Source: srcUsers, Key: "o1", Time: at(30)}, &user},
		{"unknown key", eventcenter.AsOf{Source: srcOrders, Key: "o3", Time: at(30)}, nil},
		{"key that is a prefix of a key", eventcenter.AsOf{Source: srcOrders, Key: "o", Time: at(30)}, nil},
		{"unknown source", eventcenter.AsOf{Source: "mysql.shop.nothing", Key: "o1", Time: at(30)}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := *h
			h.t = t
			h.wantAsOf(c.q, c.want)
		})
	}
}

// testSameTimeByPosition: events of one time are ordered by position (Log,
// then Offset), whatever order they were appended in.
func testSameTimeByPosition(t *testing.T, h *harness) {
	tm := at(100)
	ps := []eventcenter.Position{ // ascending
		pos(0, 5), pos(0, 10), pos(0, math.MaxUint64), pos(1, 0), pos(1, 1<<40), pos(math.MaxUint64, 0),
	}
	want := make([]eventcenter.Event, len(ps))
	var appended []int // indexes of ps, in append order
	for _, i := range []int{3, 0, 5, 1, 4, 2} {
		want[i] = h.append(ev(srcOrders, "o1", tm, ps[i], eventcenter.OpUpdate, row("step", int64(i))))[0]
		appended = append(appended, i)
	}
	// and one at an earlier time with a larger position
	early := h.append(ev(srcOrders, "o1", tm.Add(-time.Nanosecond), pos(math.MaxUint64, math.MaxUint64), eventcenter.OpInsert, row("step", int64(-1))))[0]

	h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "o1", Time: tm}, &want[len(want)-1])
	h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "o1", Time: tm.Add(-time.Nanosecond)}, &early)
	h.wantHistory(eventcenter.HistoryQuery{Source: srcOrders, Key: "o1", From: tm, To: tm.Add(time.Nanosecond)}, want...)
	h.wantHistory(eventcenter.HistoryQuery{Source: srcOrders, Key: "o1", From: at(0), To: at(200)}, append([]eventcenter.Event{early}, want...)...)
	h.wantReplay(eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: at(0), To: at(200)}, append([]eventcenter.Event{early}, want...)...)
	// Known at each append: the state is the largest position known then.
	for k := range appended {
		best := slices.Max(appended[:k+1])
		h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "o1", Time: tm, KnownAt: want[appended[k]].StoredAt}, &want[best])
	}
}

// testDeleteRevives: a delete leaves the key absent; a later insert revives it.
func testDeleteRevives(t *testing.T, h *harness) {
	s := h.append(
		ev(srcOrders, "o1", at(1), pos(0, 1), eventcenter.OpInsert, row("v", "a")),
		ev(srcOrders, "o1", at(2), pos(0, 2), eventcenter.OpDelete, nil),
		ev(srcOrders, "o1", at(3), pos(0, 3), eventcenter.OpInsert, row("v", "b")),
	)
	q := func(sec int, d time.Duration) eventcenter.AsOf {
		return eventcenter.AsOf{Source: srcOrders, Key: "o1", Time: at(sec).Add(d)}
	}
	h.wantAsOf(q(2, -1), &s[0])
	h.wantAsOf(q(2, 0), nil)
	h.wantAsOf(q(2, 500*time.Millisecond), nil)
	h.wantAsOf(q(3, -1), nil)
	h.wantAsOf(q(3, 0), &s[2])
	// The delete is history, with no After row.
	h.wantHistory(eventcenter.HistoryQuery{Source: srcOrders, Key: "o1", From: at(0), To: at(4)}, s...)

	// A delete of a key never written leaves it absent; deleting twice too.
	d := h.append(
		ev(srcOrders, "o9", at(1), pos(0, 9), eventcenter.OpDelete, nil),
		ev(srcOrders, "o1", at(4), pos(0, 4), eventcenter.OpDelete, eventcenter.Row(nil)),
		ev(srcOrders, "o1", at(5), pos(0, 5), eventcenter.OpDelete, nil),
	)
	h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "o9", Time: at(10)}, nil)
	h.wantAsOf(q(5, 0), nil)
	h.wantHistory(eventcenter.HistoryQuery{Source: srcOrders, Key: "o9", From: at(0), To: at(10)}, d[0])
}

// testSnapshotCorrection: whatever the operation, the state after an event
// is its After row; a correction without a row makes the key absent.
func testSnapshotCorrection(t *testing.T, h *harness) {
	s := h.append(
		ev(srcOrders, "o1", at(1), pos(0, 1), eventcenter.OpSnapshot, row("v", int64(1))),
		ev(srcOrders, "o1", at(2), pos(0, 2), eventcenter.OpCorrection, row("v", int64(2))),
		ev(srcOrders, "o1", at(3), pos(0, 3), eventcenter.OpCorrection, nil),
		ev(srcOrders, "o1", at(4), pos(0, 4), eventcenter.OpSnapshot, row("v", int64(4))),
		ev(srcOrders, "o1", at(5), pos(0, 5), eventcenter.OpUpdate, eventcenter.Row{}), // an empty row is a state
		ev(srcOrders, "o2", at(1), pos(0, 6), eventcenter.OpCorrection, nil),
		ev(srcOrders, "o3", at(1), pos(0, 7), eventcenter.OpMessage, row("body", []byte("hi"))),
	)
	for _, c := range []struct {
		key  string
		sec  int
		want *eventcenter.Event
	}{
		{"o1", 1, &s[0]}, {"o1", 2, &s[1]}, {"o1", 3, nil}, {"o1", 4, &s[3]}, {"o1", 5, &s[4]},
		{"o2", 9, nil}, {"o3", 9, &s[6]},
	} {
		h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: c.key, Time: at(c.sec)}, c.want)
	}
}

// testIdempotent: an event whose identity is stored is ignored, first wins
// with its StoredAt, across and inside batches.
func testIdempotent(t *testing.T, h *harness) {
	first := h.append(ev(srcOrders, "o1", at(1), pos(0, 1), eventcenter.OpInsert, row("v", "first")))[0]
	h.append(ev(srcOrders, "o1", at(1), pos(0, 1), eventcenter.OpInsert, row("v", "first")))
	h.append(ev(srcOrders, "o1", at(1), pos(0, 1), eventcenter.OpUpdate, row("v", "second", "extra", true)))
	h.append(ev(srcOrders, "o1", at(1), pos(0, 1), eventcenter.OpDelete, nil))
	h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "o1", Time: at(1)}, &first)
	h.wantHistory(eventcenter.HistoryQuery{Source: srcOrders, Key: "o1", From: at(0), To: at(9)}, first)

	// Inside one batch: the first copy wins, stamped with the batch's time.
	b := h.append(
		ev(srcOrders, "o2", at(1), pos(0, 2), eventcenter.OpInsert, row("v", "a")),
		ev(srcOrders, "o2", at(1), pos(0, 2), eventcenter.OpInsert, row("v", "b")),
		ev(srcOrders, "o2", at(1).In(time.FixedZone("Y", 3600)), pos(0, 2), eventcenter.OpInsert, row("v", "c")), // same instant
	)
	h.wantHistory(eventcenter.HistoryQuery{Source: srcOrders, Key: "o2", From: at(0), To: at(9)}, b[0])

	// Identities that differ in any one part are different events.
	d := h.append(
		ev(srcOrders, "o2", at(1).Add(time.Nanosecond), pos(0, 2), eventcenter.OpUpdate, row("v", "t")),
		ev(srcOrders, "o2", at(1), pos(1, 2), eventcenter.OpUpdate, row("v", "log")),
		ev(srcOrders, "o2", at(1), pos(0, 3), eventcenter.OpUpdate, row("v", "off")),
		ev(srcOrders, "o2 ", at(1), pos(0, 2), eventcenter.OpUpdate, row("v", "key")),
		ev(srcUsers, "o2", at(1), pos(0, 2), eventcenter.OpUpdate, row("v", "source")),
	)
	h.wantHistory(eventcenter.HistoryQuery{Source: srcOrders, Key: "o2", From: at(0), To: at(9)}, b[0], d[2], d[1], d[0])
	h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "o2 ", Time: at(1)}, &d[3])
	h.wantAsOf(eventcenter.AsOf{Source: srcUsers, Key: "o2", Time: at(1)}, &d[4])

	// Re-appending a whole range (as a Kafka replay from an old offset does),
	// in other batches and another order, changes no read.
	var batch []eventcenter.Event
	for i := range 40 {
		op := eventcenter.OpUpdate
		var after eventcenter.Row = row("i", int64(i))
		if i%7 == 3 {
			op, after = eventcenter.OpDelete, nil
		}
		batch = append(batch, ev(srcUsers, string(rune('a'+i%5)), at(10+i/3), pos(2, uint64(i)), op, after))
	}
	h.append(batch...)
	before := snapshotReads(h, []string{srcOrders, srcUsers})
	for i := len(batch); i > 0; i -= 7 {
		again := make([]eventcenter.Event, 0, 7)
		for j := max(0, i-7); j < i; j++ {
			e := batch[j]
			e.After = row("i", int64(-1)) // a different payload must not win either
			e.Op = eventcenter.OpSnapshot
			again = append(again, e)
		}
		h.append(again...)
	}
	h.append(batch...)
	after := snapshotReads(h, []string{srcOrders, srcUsers})
	for i := range before {
		if d := diffEvents(after[i], before[i]); d != "" {
			t.Errorf("read #%d changed after re-appending the range:\n%s", i, d)
		}
	}
}

// snapshotReads returns the results of many reads, to compare before and
// after something that must not change them.
func snapshotReads(h *harness, sources []string) [][]eventcenter.Event {
	h.t.Helper()
	all := h.replay(eventcenter.ReplayQuery{Sources: sources, From: at(-1000), To: at(1000)})
	out := [][]eventcenter.Event{all}
	type sk struct{ s, k string }
	seen := map[sk]bool{}
	for _, e := range all {
		if seen[sk{e.Source, e.Key}] {
			continue
		}
		seen[sk{e.Source, e.Key}] = true
		out = append(out, h.history(eventcenter.HistoryQuery{Source: e.Source, Key: e.Key, From: at(-1000), To: at(1000)}))
		for sec := -1; sec < 30; sec++ {
			got, err := h.s.AsOf(h.ctx, eventcenter.AsOf{Source: e.Source, Key: e.Key, Time: at(sec)})
			if err != nil {
				got = eventcenter.Event{Key: err.Error()}
			}
			out = append(out, []eventcenter.Event{got})
		}
	}
	return out
}

// testKnownAt: with KnownAt, reads ignore events stored after it, including a
// correction stored later for an earlier event time.
func testKnownAt(t *testing.T, h *harness) {
	ins := h.append(ev(srcOrders, "o1", at(10), pos(0, 1), eventcenter.OpInsert, row("v", "live")))[0]
	upd := h.append(ev(srcOrders, "o1", at(30), pos(0, 3), eventcenter.OpUpdate, row("v", "later")))[0]
	// Stored third, but its event time is between the two.
	fix := h.append(ev(srcOrders, "o1", at(20), pos(9, 0), eventcenter.OpCorrection, row("v", "corrected")))[0]
	// A late delete, between the correction and the update.
	del := h.append(ev(srcOrders, "o1", at(25), pos(9, 1), eventcenter.OpDelete, nil))[0]
	s1, s2, s3, s4 := ins.StoredAt, upd.StoredAt, fix.StoredAt, del.StoredAt

	q := func(sec int, known time.Time) eventcenter.AsOf {
		return eventcenter.AsOf{Source: srcOrders, Key: "o1", Time: at(sec), KnownAt: known}
	}
	for _, c := range []struct {
		name string
		q    eventcenter.AsOf
		want *eventcenter.Event
	}{
		{"known before anything was stored", q(40, s1.Add(-time.Nanosecond)), nil},
		{"known exactly when stored (inclusive)", q(40, s1), &ins},
		{"live view hides the later correction", q(22, s2), &ins},
		{"live view just before the correction", q(22, s3.Add(-time.Nanosecond)), &ins},
		{"known once the correction is stored", q(22, s3), &fix},
		{"corrected truth", q(22, time.Time{}), &fix},
		{"late delete hidden", q(27, s3), &fix},
		{"late delete known", q(27, s4), nil},
		{"late delete, truth", q(27, time.Time{}), nil},
		{"after the update, known then", q(30, s2), &upd},
		{"after the update, truth", q(30, time.Time{}), &upd},
		{"known at the far future", q(30, farFuture), &upd},
		{"known at in another zone", q(22, s3.In(time.FixedZone("Z", 5*3600))), &fix},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := *h
			h.t = t
			h.wantAsOf(c.q, c.want)
		})
	}

	hq := func(known time.Time) eventcenter.HistoryQuery {
		return eventcenter.HistoryQuery{Source: srcOrders, Key: "o1", From: at(0), To: at(100), KnownAt: known}
	}
	h.wantHistory(hq(s1.Add(-1)))
	h.wantHistory(hq(s2), ins, upd)
	h.wantHistory(hq(s3), ins, fix, upd)
	h.wantHistory(hq(time.Time{}), ins, fix, del, upd)

	rq := func(known time.Time) eventcenter.ReplayQuery {
		return eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: at(0), To: at(100), KnownAt: known}
	}
	h.wantReplay(rq(s2), ins, upd)
	h.wantReplay(rq(s4), ins, fix, del, upd)
	h.wantReplay(rq(time.Time{}), ins, fix, del, upd)
}

// testHistory: History is the half-open range [From, To), oldest first.
func testHistory(t *testing.T, h *harness) {
	s := h.append(
		ev(srcOrders, "o1", at(3), pos(0, 30), eventcenter.OpUpdate, row("v", int64(3))),
		ev(srcOrders, "o1", at(1), pos(0, 10), eventcenter.OpInsert, row("v", int64(1))),
		ev(srcOrders, "o1", at(2), pos(0, 21), eventcenter.OpUpdate, row("v", int64(22))),
		ev(srcOrders, "o1", at(2), pos(0, 20), eventcenter.OpUpdate, row("v", int64(21))),
		ev(srcOrders, "o1", at(4), pos(0, 40), eventcenter.OpDelete, nil),
		ev(srcOrders, "o10", at(2), pos(0, 25), eventcenter.OpInsert, row("v", int64(0))),
		ev(srcOrders, "o", at(2), pos(0, 26), eventcenter.OpInsert, row("v", int64(0))),
	)
	e1, e3, e22, e21, e4 := s[1], s[0], s[2], s[3], s[4]
	late := h.append(ev(srcOrders, "o1", at(2), pos(0, 22), eventcenter.OpCorrection, row("v", int64(23))))[0]
	hq := func(from, to time.Time) eventcenter.HistoryQuery {
		return eventcenter.HistoryQuery{Source: srcOrders, Key: "o1", From: from, To: to}
	}
	for _, c := range []struct {
		name string
		q    eventcenter.HistoryQuery
		want []eventcenter.Event
	}{
		{"everything", hq(at(0), at(5)), []eventcenter.Event{e1, e21, e22, late, e3, e4}},
		{"from inclusive, to exclusive", hq(at(2), at(4)), []eventcenter.Event{e21, e22, late, e3}},
		{"one instant", hq(at(2), at(2).Add(time.Nanosecond)), []eventcenter.Event{e21, e22, late}},
		{"empty range", hq(at(2), at(2)), nil},
		{"before everything", hq(at(-5), at(1)), nil},
		{"after everything", hq(at(4).Add(time.Nanosecond), at(9)), nil},
		{"last nanosecond", hq(at(3).Add(-time.Nanosecond), at(4).Add(time.Nanosecond)), []eventcenter.Event{e3, e4}},
		{"wide range", hq(farPast, farFuture), []eventcenter.Event{e1, e21, e22, late, e3, e4}},
		{"known at", eventcenter.HistoryQuery{Source: srcOrders, Key: "o1", From: at(0), To: at(5), KnownAt: late.StoredAt.Add(-1)}, []eventcenter.Event{e1, e21, e22, e3, e4}},
		{"unknown key", eventcenter.HistoryQuery{Source: srcOrders, Key: "o2", From: at(0), To: at(5)}, nil},
		{"key that is a prefix", eventcenter.HistoryQuery{Source: srcOrders, Key: "o", From: at(0), To: at(5)}, []eventcenter.Event{s[6]}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := *h
			h.t = t
			h.wantHistory(c.q, c.want...)
		})
	}
}

// testRowTypes: every row value type survives storage exactly.
func testRowTypes(t *testing.T, h *harness) {
	zone := time.FixedZone("UTC-3", -3*3600)
	in := eventcenter.Row{
		"nil":      nil,
		"true":     true,
		"false":    false,
		"int64":    int64(-42),
		"minint":   int64(math.MinInt64),
		"maxint":   int64(math.MaxInt64),
		"int":      7,
		"zero":     0,
		"float":    1.25,
		"negzero":  math.Copysign(0, -1),
		"maxfloat": -math.MaxFloat64,
		"tiny":     math.SmallestNonzeroFloat64,
		"string":   "héllo, 世界",
		"empty":    "",
		"nul":      "a\x00b",
		"invalid":  "\xff\xfe",
		"bytes":    []byte{0, 1, 0xff},
		"nobytes":  []byte{},
		"decimal":  eventcenter.Decimal("-1234.5000"),
		"bigdec":   eventcenter.Decimal("123456789012345678901234567890.000000001"),
		"time":     time.Date(2025, 12, 31, 23, 59, 59, 123456789, zone),
		"utc":      time.Date(2026, 1, 1, 0, 0, 0, 1, time.UTC),
		"old":      time.Date(1700, 6, 1, 0, 0, 0, 0, time.UTC),
		"":         "empty column name",
		"col\x00x": int64(1),
	}
	want := eventcenter.Row{}
	for k, v := range in {
		want[k] = v
	}
	want["int"], want["zero"], want["time"] = int64(7), int64(0), time.Date(2026, 1, 1, 2, 59, 59, 123456789, time.UTC)
	before := eventcenter.Row{"int": 1, "bytes": []byte("x"), "t": time.Date(2026, 1, 1, 0, 0, 0, 0, zone)}
	wantBefore := eventcenter.Row{"int": int64(1), "bytes": []byte("x"), "t": time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)}

	e := ev(srcOrders, "types", at(1), pos(0, 1), eventcenter.OpUpdate, in)
	e.Before = before
	stamp := h.append(e)[0].StoredAt
	empty := h.append(ev(srcOrders, "empty", at(1), pos(0, 2), eventcenter.OpInsert, eventcenter.Row{}))[0]

	check := func(how string, got eventcenter.Event) {
		t.Helper()
		if !sameRow(got.After, want) { // floats bit for bit: −0 must stay −0
			for k := range want {
				if g, ok := got.After[k]; !ok || !sameValue(g, want[k]) {
					t.Errorf("%s: After[%q] = %#v (%T), want %#v (%T)", how, k, got.After[k], got.After[k], want[k], want[k])
				}
			}
			for k := range got.After {
				if _, ok := want[k]; !ok {
					t.Errorf("%s: After has extra column %q", how, k)
				}
			}
		}
		if !sameRow(got.Before, wantBefore) {
			t.Errorf("%s: Before = %#v, want %#v", how, got.Before, wantBefore)
		}
		for _, tm := range []any{got.After["time"], got.After["utc"], got.Before["t"]} {
			if tm, ok := tm.(time.Time); ok && tm.Location() != time.UTC {
				t.Errorf("%s: time column in %v, want UTC", how, tm.Location())
			}
		}
		if got.Time.Location() != time.UTC || got.StoredAt.Location() != time.UTC {
			t.Errorf("%s: event time in %v and stored-at in %v, want UTC", how, got.Time.Location(), got.StoredAt.Location())
		}
		if !got.StoredAt.Equal(stamp) {
			t.Errorf("%s: StoredAt %s, want %s", how, fmtTime(got.StoredAt), fmtTime(stamp))
		}
	}
	got, err := h.s.AsOf(h.ctx, eventcenter.AsOf{Source: srcOrders, Key: "types", Time: at(1)})
	if err != nil {
		t.Fatalf("AsOf: %v", err)
	}
	check("AsOf", got)
	if hist := h.history(eventcenter.HistoryQuery{Source: srcOrders, Key: "types", From: at(0), To: at(2)}); len(hist) != 1 {
		t.Errorf("History: %d events, want 1", len(hist))
	} else {
		check("History", hist[0])
	}
	all := h.replay(eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: at(0), To: at(2)})
	if len(all) != 2 {
		t.Fatalf("Replay: %d events, want 2", len(all))
	}
	check("Replay", all[0])
	if all[1].After == nil || len(all[1].After) != 0 || all[1].Before != nil {
		t.Errorf("Replay: empty row came back as After %#v Before %#v, want an empty, non-nil After and a nil Before", all[1].After, all[1].Before)
	}
	h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "empty", Time: at(1)}, &empty)
}

// testKeysAndTimes: keys are any bytes, sources and keys at their size
// limits, event times at the ends of the allowed range.
func testKeysAndTimes(t *testing.T, h *harness) {
	longSource := strings.Repeat("s", eventcenter.MaxSourceLen)
	longKey := strings.Repeat("\xff", eventcenter.MaxKeyLen)
	early := time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)
	late := time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
	keys := []string{"\x00", "\x00\x00", "\xff", "a\x00", "a", "a b", "é", longKey}
	var batch []eventcenter.Event
	for i, k := range keys {
		// one time and one position: only the key tells them apart
		batch = append(batch, ev(srcOrders, k, at(1), pos(0, 0), eventcenter.OpInsert, row("i", int64(i))))
	}
	batch = append(batch,
		ev(longSource, longKey, at(1), pos(0, 0), eventcenter.OpInsert, row("long", true)),
		ev(srcUsers, "early", early, pos(0, 0), eventcenter.OpInsert, row("when", "early")),
		ev(srcUsers, "late", late, pos(0, 0), eventcenter.OpInsert, row("when", "late")),
		ev(srcUsers, "negative", time.Unix(-1, 0), pos(0, 0), eventcenter.OpInsert, row("when", "1969")),
	)
	s := h.append(batch...)
	for i, k := range keys {
		h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: k, Time: at(1)}, &s[i])
	}
	n := len(keys)
	h.wantAsOf(eventcenter.AsOf{Source: longSource, Key: longKey, Time: at(1)}, &s[n])
	h.wantAsOf(eventcenter.AsOf{Source: srcUsers, Key: "early", Time: early}, &s[n+1])
	h.wantAsOf(eventcenter.AsOf{Source: srcUsers, Key: "early", Time: early.Add(-1)}, nil)
	h.wantAsOf(eventcenter.AsOf{Source: srcUsers, Key: "late", Time: late}, &s[n+2])
	h.wantAsOf(eventcenter.AsOf{Source: srcUsers, Key: "late", Time: late.Add(-1)}, nil)
	h.wantAsOf(eventcenter.AsOf{Source: srcUsers, Key: "negative", Time: time.Unix(0, 0)}, &s[n+3])
	h.wantReplay(eventcenter.ReplayQuery{Sources: []string{srcUsers}, From: early, To: late.Add(1)}, s[n+1], s[n+3], s[n+2])
	h.wantReplay(eventcenter.ReplayQuery{Sources: []string{srcUsers}, From: farPast, To: farFuture}, s[n+1], s[n+3], s[n+2])
	h.wantHistory(eventcenter.HistoryQuery{Source: srcUsers, Key: "late", From: at(0), To: farFuture}, s[n+2])
	// Replay orders the keys of one time and position by key, as bytes.
	want := append([]eventcenter.Event(nil), s[:n]...)
	slices.SortFunc(want, func(a, b eventcenter.Event) int { return eventcenter.Compare(&a, &b) })
	h.wantReplay(eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: at(0), To: at(2)}, want...)
}

// testLargestRows: an event whose After and Before rows are both at the size
// limit (eventcenter.CurrentSizeLimits) is stored and read back whole; for
// HBase, its body fits a cell under the default cell limit.
func testLargestRows(t *testing.T, h *harness) {
	limits := eventcenter.CurrentSizeLimits()
	full := eventcenter.Row{}
	for i := 0; full.Size() < limits.Row; i++ {
		col := fmt.Sprint("c", i)
		full[col] = ""
		if full.Size() > limits.Row { // not even an empty column fits
			delete(full, col)
			break
		}
		n := min(limits.Value, limits.Row-full.Size())
		for full[col] = strings.Repeat("v", n); full.Size() > limits.Row; full[col] = strings.Repeat("v", n) {
			n-- // the length prefix grew
		}
	}
	if err := full.Validate(); err != nil || full.Size() < limits.Row-8 {
		t.Fatalf("a row of %d bytes for a limit of %d: %v", full.Size(), limits.Row, err)
	}
	e := ev(srcOrders, "largest", at(1), pos(0, 1), eventcenter.OpUpdate, full)
	e.Before = full
	s := h.append(e)
	h.wantAsOf(eventcenter.AsOf{Source: srcOrders, Key: "largest", Time: at(1)}, &s[0])
	h.wantReplay(eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: at(0), To: at(2)}, s[0])
}

// testLargestIndexedValue: an event whose indexed column holds a value of the
// largest size (eventcenter.CurrentSizeLimits().Value) is stored and found by
// Lookup, before and after the index is declared; a backend whose index
// cannot hold such a value must refuse the event as invalid (a dead letter),
// never fail in a way a writer retries forever.
func testLargestIndexedValue(t *testing.T, h *harness) {
	big := strings.Repeat("u", eventcenter.CurrentSizeLimits().Value)
	h.declare(eventcenter.Index{Source: srcOrders, Name: "user", Column: "user"})
	e := ev(srcOrders, "big", at(1), pos(0, 1), eventcenter.OpInsert, row("user", big))
	s := h.append(e)
	h.wantLookup(eventcenter.LookupQuery{Source: srcOrders, Index: "user", Value: big, Time: at(2)}, s[0])
	h.declare(eventcenter.Index{Source: srcOrders, Name: "user2", Column: "user"}) // indexes what is stored
	h.wantLookup(eventcenter.LookupQuery{Source: srcOrders, Index: "user2", Value: big, Time: at(2)}, s[0])
	other := big[:len(big)-1] + "v" // the same but for its last byte
	h.wantLookup(eventcenter.LookupQuery{Source: srcOrders, Index: "user", Value: other, Time: at(2)})
}
