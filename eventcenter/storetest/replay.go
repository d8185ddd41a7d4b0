package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

const srcPay = "kafka.payments"

// replayData appends events over three sources with many ties (same time;
// same time and position; same time, position and source) and returns them
// stamped, in Compare order.
func replayData(h *harness) []eventcenter.Event {
	h.t.Helper()
	var all []eventcenter.Event
	keys := []string{"b", "aa", "a", "ab", "ba", "\x00", "zz"}
	sources := []string{srcUsers, srcPay, srcOrders}
	for round := range 3 {
		var batch []eventcenter.Event
		for i := range 60 {
			src := sources[(i+round)%len(sources)]
			key := keys[(i*5+round)%len(keys)]
			sec := (i * 7 % 10) - 2                                    // -2 … 7, many equal
			p := pos(uint64(i%2), uint64((i/3)%3))                     // few positions
			tm := at(sec).Add(time.Duration(round) * time.Millisecond) // rounds interleave
			op := eventcenter.OpUpdate
			after := row("i", int64(i), "round", int64(round))
			if i%9 == 4 {
				op, after = eventcenter.OpDelete, nil
			}
			batch = append(batch, ev(src, key, tm, p, op, after))
		}
		for _, e := range h.append(batch...) {
			if !slices.ContainsFunc(all, func(o eventcenter.Event) bool { return o.ID() == e.ID() }) {
				all = append(all, e)
			}
		}
	}
	// Full ties but the key, in two sources: keys order as bytes, not by length.
	var ties []eventcenter.Event
	for _, src := range []string{srcPay, srcOrders} {
		for _, k := range []string{"bb", "b", "a\xff", "ab", "a", "\xff"} {
			ties = append(ties, ev(src, k, at(3).Add(500*time.Millisecond), pos(0, 0), eventcenter.OpSnapshot, row("k", k)))
		}
	}
	all = append(all, h.append(ties...)...)
	slices.SortFunc(all, func(a, b eventcenter.Event) int { return eventcenter.Compare(&a, &b) })
	return all
}

func filter(evs []eventcenter.Event, keep func(e eventcenter.Event) bool) []eventcenter.Event {
	var out []eventcenter.Event
	for _, e := range evs {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// testReplay: replay merges sources in Compare order, each event once, in
// [From, To), with KnownAt.
func testReplay(t *testing.T, h *harness) {
	all := replayData(h)
	late := h.append(
		ev(srcOrders, "a", at(0), pos(0, 0), eventcenter.OpCorrection, row("late", true)),
		ev(srcPay, "a", at(0), pos(0, 0), eventcenter.OpCorrection, nil),
	)
	known := late[0].StoredAt.Add(-time.Nanosecond)
	all = append(all, late...)
	slices.SortFunc(all, func(a, b eventcenter.Event) int { return eventcenter.Compare(&a, &b) })

	from, to := at(-10), at(10)
	in := func(sources ...string) func(eventcenter.Event) bool {
		return func(e eventcenter.Event) bool { return slices.Contains(sources, e.Source) }
	}
	for _, c := range []struct {
		name string
		q    eventcenter.ReplayQuery
		keep func(eventcenter.Event) bool
	}{
		{"one source", eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: from, To: to}, in(srcOrders)},
		{"two sources", eventcenter.ReplayQuery{Sources: []string{srcPay, srcOrders}, From: from, To: to}, in(srcOrders, srcPay)},
		{"all sources", eventcenter.ReplayQuery{Sources: []string{srcUsers, srcOrders, srcPay}, From: from, To: to}, in(srcOrders, srcPay, srcUsers)},
		{"a source twice", eventcenter.ReplayQuery{Sources: []string{srcPay, srcOrders, srcPay}, From: from, To: to}, in(srcOrders, srcPay)},
		{"unknown source too", eventcenter.ReplayQuery{Sources: []string{"nothing.here", srcPay}, From: from, To: to}, in(srcPay)},
		{"half-open", eventcenter.ReplayQuery{Sources: []string{srcUsers, srcOrders, srcPay}, From: at(0), To: at(3)}, func(e eventcenter.Event) bool {
			return !e.Time.Before(at(0)) && e.Time.Before(at(3))
		}},
		{"one nanosecond", eventcenter.ReplayQuery{Sources: []string{srcUsers, srcOrders, srcPay}, From: at(1), To: at(1).Add(1)}, func(e eventcenter.Event) bool {
			return e.Time.Equal(at(1))
		}},
		{"empty range", eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: at(1), To: at(1)}, func(eventcenter.Event) bool { return false }},
		{"before everything", eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: at(-100), To: at(-2)}, func(eventcenter.Event) bool { return false }},
		{"wide", eventcenter.ReplayQuery{Sources: []string{srcOrders}, From: farPast, To: farFuture}, in(srcOrders)},
		{"known at", eventcenter.ReplayQuery{Sources: []string{srcUsers, srcOrders, srcPay}, From: from, To: to, KnownAt: known}, func(e eventcenter.Event) bool {
			return !e.StoredAt.After(known)
		}},
		{"known at, one source", eventcenter.ReplayQuery{Sources: []string{srcPay}, From: from, To: to, KnownAt: all[0].StoredAt}, func(e eventcenter.Event) bool {
			return e.Source == srcPay && !e.StoredAt.After(all[0].StoredAt)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := *h
			h.t = t
			h.wantReplay(c.q, filter(all, c.keep)...)
		})
	}
}

// testReplayChunks: chunks cut by SplitRange, replayed one after the other,
// are one full replay.
func testReplayChunks(t *testing.T, h *harness) {
	all := replayData(h)
	sources := []string{srcOrders, srcPay, srcUsers}
	from, to := at(-2), at(8).Add(2*time.Millisecond)
	for _, size := range []time.Duration{999_999_999, time.Second, 1001 * time.Millisecond, 1500 * time.Millisecond, 7 * time.Second, time.Hour} {
		for _, known := range []time.Time{{}, all[0].StoredAt} {
			chunks, err := eventcenter.SplitRange(from, to, size)
			if err != nil {
				t.Fatal(err)
			}
			var got []eventcenter.Event
			for _, c := range chunks {
				got = append(got, h.replay(eventcenter.ReplayQuery{Sources: sources, From: c.From, To: c.To, KnownAt: known})...)
			}
			want := h.replay(eventcenter.ReplayQuery{Sources: sources, From: from, To: to, KnownAt: known})
			if d := diffEvents(got, want); d != "" {
				t.Errorf("%d chunks of %v (known at %s) differ from one replay:\n%s", len(chunks), size, fmtTime(known), d)
			}
			if known.IsZero() {
				if d := diffEvents(want, all); d != "" {
					t.Errorf("replay of everything:\n%s", d)
				}
			}
		}
	}
}

// testReplayStops: breaking out of a replay releases it; a cancelled
// context ends a replay with the context's error.
func testReplayStops(t *testing.T, h *harness) {
	all := replayData(h)
	sources := []string{srcOrders, srcPay, srcUsers}
	q := eventcenter.ReplayQuery{Sources: sources, From: at(-10), To: at(10)}

	for _, n := range []int{1, 2, 50} {
		var got []eventcenter.Event
		for e, err := range h.s.Replay(h.ctx, q) {
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			if got = append(got, e); len(got) == n {
				break
			}
		}
		if d := diffEvents(got, all[:n]); d != "" {
			t.Errorf("first %d events:\n%s", n, d)
		}
	}
	// Single source too (a backend may not merge then).
	for range h.s.Replay(h.ctx, eventcenter.ReplayQuery{Sources: sources[:1], From: q.From, To: q.To}) {
		break
	}
	// The store is still usable, and Close (at cleanup) finds no leaked reader.
	h.wantReplay(q, all...)

	// A context cancelled before the replay starts.
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	got, err := collect(h.s.Replay(ctx, q))
	if !errors.Is(err, context.Canceled) || len(got) != 0 {
		t.Errorf("Replay with a cancelled context: %d events, error %v; want none and context.Canceled", len(got), err)
	}

	// A context cancelled during a long replay ends it with the context's
	// error before the end.
	const n = 5000
	batch := make([]eventcenter.Event, 0, 1000)
	for i := range n {
		batch = append(batch, ev("bulk.source", fmt.Sprintf("k%05d", i), at(i%100), pos(0, uint64(i)), eventcenter.OpInsert, row("i", int64(i))))
		if len(batch) == cap(batch) {
			h.append(batch...)
			batch = batch[:0]
		}
	}
	for _, srcs := range [][]string{{"bulk.source"}, {"bulk.source", srcOrders}} {
		count, err := cancelAfterFirst(h.ctx, func(ctx context.Context) iter.Seq2[eventcenter.Event, error] {
			return h.s.Replay(ctx, eventcenter.ReplayQuery{Sources: srcs, From: at(0), To: at(100)})
		})
		if !errors.Is(err, context.Canceled) || count >= n {
			t.Errorf("Replay(%q) cancelled after its first event: %d events then error %v; want fewer than %d and context.Canceled", srcs, count, err, n)
		}
	}
}

// rawEvent decodes a RawEvent's rows, failing t unless each is the bytes
// AppendRow writes for it.
func rawEvent(t testing.TB, what string, raw eventcenter.RawEvent) eventcenter.Event {
	t.Helper()
	e := eventcenter.Event{Source: raw.Source, Key: raw.Key, Time: raw.Time, Pos: raw.Pos, Op: raw.Op, StoredAt: raw.StoredAt}
	for _, r := range []struct {
		enc []byte
		row *eventcenter.Row
	}{{raw.After, &e.After}, {raw.Before, &e.Before}} {
		if r.enc == nil {
			continue
		}
		var rest []byte
		var err error
		if *r.row, rest, err = codec.ReadRow(r.enc); err != nil || len(rest) != 0 {
			t.Fatalf("%s: event %s: a row of %d bytes decodes with %d left over: %v", what, e.ID(), len(r.enc), len(rest), err)
		}
		if canon := codec.AppendRow(nil, *r.row); !bytes.Equal(canon, r.enc) {
			t.Fatalf("%s: event %s: row bytes %x, AppendRow writes %x", what, e.ID(), r.enc, canon)
		}
	}
	return e
}

// testReplayRaw: codec.ReplayRaw (the store's own ReplayRaw where it has
// one) yields one source's events as Replay does, each row the bytes
// AppendRow writes for it; an early break leaks nothing (the harness closes
// the store), and an invalid range fails.
func testReplayRaw(t *testing.T, h *harness) {
	all := replayData(h)
	late := h.append(ev(srcOrders, "a", at(0), pos(0, 0), eventcenter.OpCorrection, row("late", true)))
	all = append(all, late...)
	slices.SortFunc(all, func(a, b eventcenter.Event) int { return eventcenter.Compare(&a, &b) })
	known := late[0].StoredAt.Add(-time.Nanosecond)
	for _, src := range []string{srcOrders, srcPay, srcUsers, "nothing.here"} {
		for _, c := range []struct {
			from, to, known time.Time
		}{
			{at(-10), at(10), time.Time{}},
			{farPast, farFuture, time.Time{}},
			{at(0), at(3), time.Time{}},
			{at(1), at(1).Add(1), time.Time{}},
			{at(-10), at(10), known},
			{at(-10), at(10), all[0].StoredAt},
		} {
			want := filter(all, func(e eventcenter.Event) bool {
				return e.Source == src && !e.Time.Before(c.from) && e.Time.Before(c.to) && (c.known.IsZero() || !e.StoredAt.After(c.known))
			})
			var got []eventcenter.Event
			for raw, err := range codec.ReplayRaw(h.ctx, h.s, src, c.from, c.to, c.known) {
				if err != nil {
					t.Fatalf("ReplayRaw(%s, %s, %s, known at %s): %v", src, fmtTime(c.from), fmtTime(c.to), fmtTime(c.known), err)
				}
				e := rawEvent(t, "ReplayRaw", raw)
				got = append(got, e)
			}
			if d := diffEvents(got, want); d != "" {
				t.Errorf("ReplayRaw(%s, %s, %s, known at %s):\n%s", src, fmtTime(c.from), fmtTime(c.to), fmtTime(c.known), d)
			}
		}
	}
	n := 0
	for _, err := range codec.ReplayRaw(h.ctx, h.s, srcOrders, farPast, farFuture, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 2 {
			break
		}
	}
	var invalid error
	for _, err := range codec.ReplayRaw(h.ctx, h.s, srcOrders, at(3), at(1), time.Time{}) {
		invalid = err
		break
	}
	if !errors.Is(invalid, eventcenter.ErrInvalidQuery) {
		t.Errorf("ReplayRaw over [at(3), at(1)): %v, want ErrInvalidQuery", invalid)
	}
}
