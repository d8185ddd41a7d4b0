package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

func (h *harness) advance(source string, part int32, t time.Time) error {
	return h.s.AdvanceWatermark(h.ctx, source, part, t)
}

func (h *harness) wantMarks(source string, want time.Time, parts map[int32]time.Time) {
	h.t.Helper()
	got, err := h.s.Watermark(h.ctx, source)
	if err != nil {
		h.t.Fatalf("Watermark(%s): %v", source, err)
	}
	if !got.Equal(want) || got.IsZero() != want.IsZero() {
		h.t.Errorf("Watermark(%s) = %s, want %s", source, fmtTime(got), fmtTime(want))
	}
	gotParts, err := h.s.PartitionWatermarks(h.ctx, source)
	if err != nil {
		h.t.Fatalf("PartitionWatermarks(%s): %v", source, err)
	}
	ok := len(gotParts) == len(parts)
	for p, w := range parts {
		if g, has := gotParts[p]; !has || !g.Equal(w) {
			ok = false
		}
	}
	if !ok {
		h.t.Errorf("PartitionWatermarks(%s) = %v, want %v", source, gotParts, parts)
	}
}

// testWatermarks: per partition, forward only; a source's is the minimum.
func testWatermarks(t *testing.T, h *harness) {
	h.wantMarks(srcPay, time.Time{}, nil)
	w := func(sec int) time.Time { return at(sec) }
	must := func(part int32, tm time.Time) {
		t.Helper()
		if err := h.advance(srcPay, part, tm); err != nil {
			t.Fatalf("AdvanceWatermark(%d, %s): %v", part, fmtTime(tm), err)
		}
	}
	must(0, w(10))
	h.wantMarks(srcPay, w(10), map[int32]time.Time{0: w(10)})
	must(1, w(5))
	h.wantMarks(srcPay, w(5), map[int32]time.Time{0: w(10), 1: w(5)})
	must(1, w(20))
	h.wantMarks(srcPay, w(10), map[int32]time.Time{0: w(10), 1: w(20)})
	must(7, w(12).In(time.FixedZone("W", 3600)))
	h.wantMarks(srcPay, w(10), map[int32]time.Time{0: w(10), 1: w(20), 7: w(12)})

	// Equal is a no-op (also the same instant in another zone).
	must(0, w(10))
	must(0, w(10).In(time.FixedZone("V", -3600)))
	h.wantMarks(srcPay, w(10), map[int32]time.Time{0: w(10), 1: w(20), 7: w(12)})

	// Backwards is refused and changes nothing.
	for _, back := range []time.Time{w(10).Add(-time.Nanosecond), w(0), w(-1000)} {
		if err := h.advance(srcPay, 0, back); !errors.Is(err, eventcenter.ErrWatermarkRegression) {
			t.Errorf("AdvanceWatermark backwards to %s: error %v, want ErrWatermarkRegression", fmtTime(back), err)
		}
	}
	h.wantMarks(srcPay, w(10), map[int32]time.Time{0: w(10), 1: w(20), 7: w(12)})

	must(0, w(30))
	h.wantMarks(srcPay, w(12), map[int32]time.Time{0: w(30), 1: w(20), 7: w(12)})

	// Sources are apart; a source with similar name is another source.
	h.wantMarks(srcPay+"x", time.Time{}, nil)
	h.wantMarks("kafka.pay", time.Time{}, nil)
	if err := h.advance(srcOrders, 0, w(1)); err != nil {
		t.Fatal(err)
	}
	h.wantMarks(srcOrders, w(1), map[int32]time.Time{0: w(1)})
	h.wantMarks(srcPay, w(12), map[int32]time.Time{0: w(30), 1: w(20), 7: w(12)})

	// The map returned is the caller's.
	parts, err := h.s.PartitionWatermarks(h.ctx, srcPay)
	if err != nil {
		t.Fatal(err)
	}
	parts[0] = w(-5)
	delete(parts, 1)
	h.wantMarks(srcPay, w(12), map[int32]time.Time{0: w(30), 1: w(20), 7: w(12)})
}

// testWaitWatermark: a wait returns once the source's watermark (the
// minimum) reaches its time, and times out with both errors.
func testWaitWatermark(t *testing.T, h *harness) {
	target := at(100)
	// Already there.
	if err := h.advance(srcPay, 0, target); err != nil {
		t.Fatal(err)
	}
	if err := h.s.WaitWatermark(h.ctx, srcPay, target); err != nil {
		t.Errorf("WaitWatermark of a reached time: %v", err)
	}
	if err := h.s.WaitWatermark(h.ctx, srcPay, at(1)); err != nil {
		t.Errorf("WaitWatermark of a passed time: %v", err)
	}

	// Advanced from another goroutine, past the target by steps.
	if err := h.advance(srcOrders, 0, at(0)); err != nil {
		t.Fatal(err)
	}
	if err := h.advance(srcOrders, 1, at(0)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.s.WaitWatermark(ctx, srcOrders, target) }()
	notYet := func(what string) {
		t.Helper()
		select {
		case err := <-done:
			t.Fatalf("WaitWatermark returned %v %s", err, what)
		case <-time.After(50 * time.Millisecond):
		}
	}
	notYet("before any advance")
	if err := h.advance(srcOrders, 0, at(200)); err != nil { // one partition past it
		t.Fatal(err)
	}
	notYet("when only one partition passed the time")
	if err := h.advance(srcOrders, 1, target.Add(-time.Nanosecond)); err != nil {
		t.Fatal(err)
	}
	notYet("one nanosecond before the time")
	if err := h.advance(srcOrders, 1, target); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("WaitWatermark: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitWatermark did not return 10s after the watermark reached its time")
	}

	// A source nobody advances: the wait times out with both errors.
	for _, src := range []string{srcPay, "kafka.silent"} {
		ctx, cancel := context.WithTimeout(h.ctx, 50*time.Millisecond)
		start := time.Now()
		err := h.s.WaitWatermark(ctx, src, at(1000))
		cancel()
		if !errors.Is(err, eventcenter.ErrWatermarkTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WaitWatermark(%s) timing out: error %v, want one matching ErrWatermarkTimeout and context.DeadlineExceeded", src, err)
		}
		if d := time.Since(start); d < 40*time.Millisecond || d > 10*time.Second {
			t.Errorf("WaitWatermark(%s) timing out after %v, want about 50ms", src, d)
		}
	}
	ctx, cancel = context.WithCancel(h.ctx)
	cancel()
	if err := h.s.WaitWatermark(ctx, "kafka.silent", at(1)); !errors.Is(err, eventcenter.ErrWatermarkTimeout) || !errors.Is(err, context.Canceled) {
		t.Errorf("WaitWatermark with a cancelled context: error %v, want one matching ErrWatermarkTimeout and context.Canceled", err)
	}
}

func (h *harness) register(source string, parts ...int32) {
	h.t.Helper()
	if err := h.s.RegisterPartitions(h.ctx, source, parts); err != nil {
		h.t.Fatalf("RegisterPartitions(%s, %v): %v", source, parts, err)
	}
}

// testRegisterPartitions: a registered partition that never advanced holds
// its source's watermark at the floor (the zero time); registering is
// idempotent and never moves a partition back; only a partition registered
// for the first time moves the source's watermark back.
func testRegisterPartitions(t *testing.T, h *harness) {
	w := func(sec int) time.Time { return at(sec) }
	var zero time.Time
	must := func(part int32, tm time.Time) {
		t.Helper()
		if err := h.advance(srcPay, part, tm); err != nil {
			t.Fatalf("AdvanceWatermark(%d, %s): %v", part, fmtTime(tm), err)
		}
	}
	h.register(srcPay, 0, 1, 2)
	h.wantMarks(srcPay, zero, map[int32]time.Time{0: zero, 1: zero, 2: zero})

	// Two partitions advance, the third has never reported: the source
	// stays at the floor, and a wait for any time waits.
	must(0, w(10))
	must(1, w(20))
	h.wantMarks(srcPay, zero, map[int32]time.Time{0: w(10), 1: w(20), 2: zero})
	ctx, cancel := context.WithTimeout(h.ctx, 50*time.Millisecond)
	err := h.s.WaitWatermark(ctx, srcPay, w(-1000))
	cancel()
	if !errors.Is(err, eventcenter.ErrWatermarkTimeout) {
		t.Errorf("WaitWatermark with a partition at the floor: error %v, want ErrWatermarkTimeout", err)
	}

	// Registering again (all, some, none, duplicates) changes nothing.
	h.register(srcPay, 0, 1, 2)
	h.register(srcPay, 1, 1)
	h.register(srcPay)
	h.wantMarks(srcPay, zero, map[int32]time.Time{0: w(10), 1: w(20), 2: zero})

	// The lagging partition reports: a waiter wakes, the source moves.
	ctx, cancel = context.WithTimeout(h.ctx, 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.s.WaitWatermark(ctx, srcPay, w(10)) }()
	must(2, w(15))
	if err := <-done; err != nil {
		t.Errorf("WaitWatermark once every partition passed the time: %v", err)
	}
	h.wantMarks(srcPay, w(10), map[int32]time.Time{0: w(10), 1: w(20), 2: w(15)})
	h.register(srcPay, 2, 0)
	h.wantMarks(srcPay, w(10), map[int32]time.Time{0: w(10), 1: w(20), 2: w(15)})
	if err := h.advance(srcPay, 2, w(14)); !errors.Is(err, eventcenter.ErrWatermarkRegression) {
		t.Errorf("AdvanceWatermark backwards after registering again: error %v, want ErrWatermarkRegression", err)
	}

	// A partition registered for the first time (the topic grew): the
	// source is back at the floor until it advances, to any time.
	h.register(srcPay, 3)
	h.wantMarks(srcPay, zero, map[int32]time.Time{0: w(10), 1: w(20), 2: w(15), 3: zero})
	must(3, w(-1000))
	h.wantMarks(srcPay, w(-1000), map[int32]time.Time{0: w(10), 1: w(20), 2: w(15), 3: w(-1000)})

	// Sources are apart; an invalid source is refused.
	h.wantMarks(srcOrders, zero, nil)
	if err := h.s.RegisterPartitions(h.ctx, "", []int32{0}); !errors.Is(err, eventcenter.ErrInvalidQuery) {
		t.Errorf("RegisterPartitions of an empty source: error %v, want ErrInvalidQuery", err)
	}

	// Concurrent registrations never undo concurrent advances.
	parts := []int32{0, 1, 2, 3}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 4 {
		wg.Go(func() {
			for i := range 10 {
				if err := h.s.RegisterPartitions(h.ctx, srcOrders, parts); err != nil {
					errs <- fmt.Errorf("RegisterPartitions: %w", err)
					return
				}
				err := h.s.AdvanceWatermark(h.ctx, srcOrders, int32(g), w(i+1))
				if err != nil && !errors.Is(err, eventcenter.ErrWatermarkRegression) {
					errs <- fmt.Errorf("AdvanceWatermark: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	h.wantMarks(srcOrders, w(10), map[int32]time.Time{0: w(10), 1: w(10), 2: w(10), 3: w(10)})
}

// WatermarksAcrossStores checks that registrations and watermarks persist
// and that no store over the same data moves them back: neither a restart
// registering again, nor (when concurrent) another process registering
// while this one advances. Each call of open returns a new store over the
// same data; concurrent says whether two may be open at once (HBase: two
// processes), else each store is closed before the next is opened (the
// embedded store: a restart). The test closes the stores.
func WatermarksAcrossStores(t *testing.T, open func(t testing.TB) eventcenter.Store, concurrent bool) {
	ctx := t.Context()
	var zero time.Time
	check := func(s eventcenter.Store, when string, want time.Time, parts map[int32]time.Time) {
		t.Helper()
		h := &harness{t: t, ctx: ctx, s: s}
		h.wantMarks(srcPay, want, parts)
		if t.Failed() {
			t.Fatalf("(%s)", when)
		}
	}
	a := open(t)
	if concurrent {
		defer a.Close()
	}
	if err := a.RegisterPartitions(ctx, srcPay, []int32{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	for p, tm := range map[int32]time.Time{0: at(10), 1: at(20)} {
		if err := a.AdvanceWatermark(ctx, srcPay, p, tm); err != nil {
			t.Fatal(err)
		}
	}
	if !concurrent {
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	}
	b := open(t)
	defer b.Close()
	check(b, "another store", zero, map[int32]time.Time{0: at(10), 1: at(20), 2: zero})
	if err := b.RegisterPartitions(ctx, srcPay, []int32{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := b.AdvanceWatermark(ctx, srcPay, 2, at(15)); err != nil {
		t.Fatal(err)
	}
	check(b, "registered again by another store", at(10), map[int32]time.Time{0: at(10), 1: at(20), 2: at(15)})
	if !concurrent {
		return
	}
	check(a, "advanced by another store", at(10), map[int32]time.Time{0: at(10), 1: at(20), 2: at(15)})

	// One process registers partitions (an ingest instance starting, a
	// rebalance, a topic that grew) while the other advances them: no
	// registration undoes an advance. Each round races on new partitions.
	want := map[int32]time.Time{0: at(10), 1: at(20), 2: at(15)}
	for round := range 20 {
		parts := []int32{int32(3 + 2*round), int32(4 + 2*round)}
		tm := at(100 + round)
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		wg.Go(func() {
			if err := a.RegisterPartitions(ctx, srcPay, parts); err != nil {
				errs <- fmt.Errorf("RegisterPartitions: %w", err)
			}
		})
		wg.Go(func() {
			for _, p := range parts {
				if err := b.AdvanceWatermark(ctx, srcPay, p, tm); err != nil {
					errs <- fmt.Errorf("AdvanceWatermark(%d): %w", p, err)
				}
			}
		})
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for _, p := range parts {
			want[p] = tm
		}
	}
	check(a, "after the races", at(10), want)
}
