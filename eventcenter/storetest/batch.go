package storetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// testAsOfBatch: a store that implements eventcenter.BatchReader answers
// every read of a batch exactly as AsOf answers it alone: the same event,
// or the same error (not found, invalid, beyond the horizon). The batch
// mixes keys that share prefixes, a key with a long history, deletes,
// changes at one time in several positions, re-appended events (first copy
// wins), reads as known at many instants (between stamps, before any),
// unknown keys and sources, repeated and invalid reads, in a random order.
// With withHorizon the store keeps an hour and the clock is moved two
// hours on after the first append, so some reads are beyond its horizon.
func testAsOfBatch(t *testing.T, h *harness, withHorizon bool) {
	b, ok := h.s.(eventcenter.BatchReader)
	if !ok {
		t.Skipf("%T does not implement eventcenter.BatchReader", h.s)
	}
	if err := b.AsOfBatch(h.ctx, nil, nil); err != nil {
		t.Fatalf("AsOfBatch of no reads: %v", err)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	base := h.clock.Now() // event times are around the clock, for the horizon
	keys := []string{"a", "aa", "ab", "b", "\x00", "\xff\x00", "k1", "k10", "long"}
	readKeys := append(slices.Clone(keys), "zz", "a\x00") // and two never written
	minute := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	var stamps []time.Time
	var all []eventcenter.Event
	seq := uint64(0)
	var long2 []eventcenter.Event // read only by the reads of long2 below
	gen := func(source, key string, tm time.Time) eventcenter.Event {
		seq++
		e := ev(source, key, tm, pos(uint64(rng.IntN(2)), seq), eventcenter.OpUpdate, row("v", int64(seq), "k", key))
		if rng.IntN(6) == 0 {
			e.Op, e.After = eventcenter.OpDelete, nil
		}
		return e
	}
	for batch := range 6 {
		if batch == 1 && withHorizon {
			h.clock.Advance(2 * horizonRetention)
		}
		var evs []eventcenter.Event
		for range 40 {
			src := srcOrders
			if rng.IntN(5) == 0 {
				src = srcUsers
			}
			evs = append(evs, gen(src, pick(rng, keys[:len(keys)-1]), minute(rng.IntN(48)*5-60)))
		}
		if batch == 1 {
			for i := range 200 { // long histories, older than most reads
				evs = append(evs, gen(srcOrders, "long", minute(-30).Add(time.Duration(i)*time.Second)))
				long2 = append(long2, ev(srcOrders, "long2", minute(-30).Add(time.Duration(i)*time.Second), pos(0, 0), eventcenter.OpInsert, row("v", int64(i))))
			}
		}
		if batch == 4 {
			for range 15 { // re-appended with another body: the first copy wins
				e := pick(rng, all)
				e.Op, e.After = eventcenter.OpUpdate, row("v", int64(-1), "copy", "second")
				evs = append(evs, e)
			}
		}
		stored := h.append(append(evs, long2...)...)
		long2 = nil
		stamps = append(stamps, stored[0].StoredAt)
		all = append(all, evs...)
	}

	var qs []eventcenter.AsOf
	for range 1500 {
		q := eventcenter.AsOf{Source: srcOrders, Key: pick(rng, readKeys), Time: minute(rng.IntN(300) - 90)}
		switch n := rng.IntN(10); {
		case n < 3:
			e := pick(rng, all)
			q.Source, q.Key, q.Time = e.Source, e.Key, e.Time
		case n == 3:
			q.Source = srcUsers
		case n == 4:
			q.Source = "unknown.source"
		}
		switch n := rng.IntN(20); {
		case n < 6:
			q.KnownAt = pick(rng, stamps)
		case n < 9:
			q.KnownAt = pick(rng, stamps).Add(time.Duration(rng.IntN(3)-1) * time.Nanosecond)
		case n == 9:
			q.KnownAt = ClockStart.Add(-time.Nanosecond)
		case n == 10:
			q.KnownAt = h.clock.Now()
		}
		qs = append(qs, q)
		if rng.IntN(20) == 0 {
			qs = append(qs, q) // the same read twice
		}
	}
	// Reads of a long history that all see it: a scan over the key's rows
	// meets many that answer nothing between them.
	for _, i := range []int{199, 150, 60, 59, 10} {
		qs = append(qs, eventcenter.AsOf{Source: srcOrders, Key: "long2", Time: minute(-30).Add(time.Duration(i)*time.Second + time.Millisecond)})
	}
	qs = append(qs, eventcenter.AsOf{Source: srcOrders, Time: base}, eventcenter.AsOf{Key: "a", Time: base},
		eventcenter.AsOf{Source: srcOrders, Key: "a"})
	rng.Shuffle(len(qs), func(i, j int) { qs[i], qs[j] = qs[j], qs[i] })

	out := make([]eventcenter.AsOfResult, len(qs)+1)
	out[len(qs)] = eventcenter.AsOfResult{Err: fmt.Errorf("sentinel")}
	if err := b.AsOfBatch(h.ctx, qs, out); err != nil {
		t.Fatalf("AsOfBatch: %v", err)
	}
	if out[len(qs)].Err == nil || out[len(qs)].Err.Error() != "sentinel" {
		t.Errorf("AsOfBatch wrote past the reads: out[len(qs)] = %+v", out[len(qs)])
	}
	counts := map[string]int{}
	mismatches := 0
	for i, q := range qs {
		want, werr := h.s.AsOf(h.ctx, q)
		got := out[i]
		if !reflect.DeepEqual(got.Event, want) || fmt.Sprint(got.Err) != fmt.Sprint(werr) {
			if mismatches++; mismatches <= 10 {
				t.Errorf("read %d, %s:\n  batch %s, %v\n  AsOf  %s, %v", i, fmtAsOf(q), fmtEvent(got.Event), got.Err, fmtEvent(want), werr)
			}
			continue
		}
		switch {
		case werr == nil:
			counts["found"]++
		case errors.Is(werr, eventcenter.ErrNotFound):
			counts["not found"]++
		case errors.Is(werr, eventcenter.ErrBeyondHorizon):
			counts["beyond the horizon"]++
		case errors.Is(werr, eventcenter.ErrInvalidQuery):
			counts["invalid"]++
		default:
			t.Errorf("read %d, %s: AsOf failed: %v", i, fmtAsOf(q), werr)
		}
	}
	if mismatches > 0 {
		t.Fatalf("%d of %d reads of the batch differ from AsOf", mismatches, len(qs))
	}
	t.Logf("%d reads: %v", len(qs), counts)
	if counts["found"] < len(qs)/10 || counts["not found"] < 20 || counts["invalid"] != 3 ||
		(withHorizon && counts["beyond the horizon"] < len(qs)/10) {
		t.Errorf("the answers %v are too one-sided to test the batch", counts)
	}
}
