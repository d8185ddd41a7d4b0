package storetest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// testScanStates: a StateScanner's parts together list every key of a
// source once, each in its part (codec.Salt modulo parts), with the event
// AsOf finds at that time — a delete too, and a correction stored late;
// an early break leaks nothing (the harness closes the store) and bad
// parts fail. A store that is no StateScanner skips.
func testScanStates(t *testing.T, h *harness) {
	sc, ok := h.s.(eventcenter.StateScanner)
	if !ok {
		t.Skip("not an eventcenter.StateScanner")
	}
	all := replayData(h)
	// Keys enough that a salt holds several, with up to 30 versions, which
	// a scan steps or seeks past, some of them after the times asked.
	var many []eventcenter.Event
	for k := range 600 {
		for i := range 1 + k%30 {
			many = append(many, ev(srcOrders, fmt.Sprintf("n%03d", k), at(-5).Add(time.Duration(i*k%29)*500*time.Millisecond), pos(0, uint64(i)), eventcenter.OpUpdate, row("v", int64(i))))
		}
	}
	all = append(all, h.append(many...)...)
	all = append(all, h.append(ev(srcOrders, "a", at(0), pos(0, 0), eventcenter.OpCorrection, row("late", true)))...)

	for _, src := range []string{srcOrders, srcPay, srcUsers, "nothing.here"} {
		for _, tm := range []time.Time{farPast, at(-3), at(0), at(2).Add(1), at(3).Add(500 * time.Millisecond), at(4), farFuture} {
			var want []eventcenter.Event
			for _, e := range all {
				if e.Source != src || e.Time.After(tm) {
					continue
				}
				i := slices.IndexFunc(want, func(w eventcenter.Event) bool { return w.Key == e.Key })
				switch {
				case i < 0:
					want = append(want, e)
				case eventcenter.Compare(&e, &want[i]) > 0:
					want[i] = e
				}
			}
			slices.SortFunc(want, byKey)
			for _, parts := range []int{1, 3, 256} {
				var got []eventcenter.Event
				for part := range parts {
					for raw, err := range sc.ScanStates(h.ctx, src, tm, part, parts) {
						if err != nil {
							t.Fatalf("ScanStates(%s, %s, part %d of %d): %v", src, fmtTime(tm), part, parts, err)
						}
						if p := int(codec.Salt(src, raw.Key)) % parts; p != part {
							t.Errorf("ScanStates(%s, part %d of %d): key %q belongs to part %d", src, part, parts, raw.Key, p)
						}
						got = append(got, rawEvent(t, "ScanStates", raw))
					}
				}
				slices.SortFunc(got, byKey)
				if d := diffEvents(got, want); d != "" {
					t.Errorf("ScanStates(%s, %s) in %d parts:\n%s", src, fmtTime(tm), parts, d)
				}
			}
		}
	}

	n := 0
	for _, err := range sc.ScanStates(h.ctx, srcOrders, farFuture, 0, 1) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 2 {
			break
		}
	}
	// A context cancelled during a scan ends it with the context's error
	// before the end (the source has 600 keys and more).
	count, err := cancelAfterFirst(h.ctx, func(ctx context.Context) iter.Seq2[eventcenter.RawEvent, error] {
		return sc.ScanStates(ctx, srcOrders, farFuture, 0, 1)
	})
	if !errors.Is(err, context.Canceled) || count >= 600 {
		t.Errorf("ScanStates cancelled after its first state: %d states then error %v; want fewer than 600 and context.Canceled", count, err)
	}

	for _, c := range []struct {
		part, parts int
		at          time.Time
	}{{0, 0, at(0)}, {1, 1, at(0)}, {-1, 2, at(0)}, {0, 257, at(0)}, {0, 1, time.Time{}}} {
		var err error
		for _, err = range sc.ScanStates(h.ctx, srcOrders, c.at, c.part, c.parts) {
			break
		}
		if !errors.Is(err, eventcenter.ErrInvalidQuery) {
			t.Errorf("ScanStates(part %d of %d at %s): %v, want ErrInvalidQuery", c.part, c.parts, fmtTime(c.at), err)
		}
	}

	// Close during a scan: its next step fails with ErrClosed.
	count, err = 0, nil
	for _, e := range sc.ScanStates(h.ctx, srcOrders, farFuture, 0, 1) {
		if e != nil {
			err = e
			break
		}
		if count++; count == 1 {
			if cerr := h.s.Close(); cerr != nil {
				t.Fatal(cerr)
			}
		}
	}
	if !errors.Is(err, eventcenter.ErrClosed) {
		t.Errorf("ScanStates with the store closed after its first state: %d states then error %v; want ErrClosed", count, err)
	}
}

func byKey(a, b eventcenter.Event) int { return strings.Compare(a.Key, b.Key) }
