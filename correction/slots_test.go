package correction

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestSlotsServeFirstWaitersFirst: with every slot taken, a waiter asking
// first gets the next slot given back even though others asked before it;
// a cancelled waiter leaves no slot behind; and the count never exceeds n.
func TestSlotsServeFirstWaitersFirst(t *testing.T) {
	ctx := context.Background()
	s := newSlots(1)
	if err := s.take(ctx, false); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	wait := func(name string, first bool) {
		wg.Go(func() {
			if err := s.take(ctx, first); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			s.give()
		})
	}
	queued := func(q, n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			s.mu.Lock()
			got := len(s.waiting[q])
			s.mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("queue %d holds %d waiters, want %d", q, got, n)
			}
		}
	}
	wait("read 1", false)
	queued(1, 1)
	wait("read 2", false)
	queued(1, 2)
	cctx, cancel := context.WithCancel(ctx)
	cancelled := make(chan error)
	go func() { cancelled <- s.take(cctx, true) }()
	queued(0, 1)
	cancel()
	if err := <-cancelled; err != context.Canceled {
		t.Fatalf("cancelled take: %v", err)
	}
	queued(0, 0)
	wait("compare", true)
	queued(0, 1)
	s.give()
	wg.Wait()
	if want := []string{"compare", "read 1", "read 2"}; !slices.Equal(order, want) {
		t.Fatalf("served %v, want %v", order, want)
	}
	if s.free != 1 {
		t.Fatalf("%d slots free after all gave back, want 1", s.free)
	}
}

// TestSlotsWeighted: a waiter for more than is free holds the lighter
// waiters that came after it (none starves), even where they would fit;
// cancelling it lets them through; a take of more than all the slots
// takes them all; and every slot comes back.
func TestSlotsWeighted(t *testing.T) {
	ctx := context.Background()
	s := newSlots(10)
	got := func(n int, err error) int {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := got(s.takeN(ctx, false, 6)); n != 6 {
		t.Fatalf("took %d, want 6", n)
	}
	type taken struct {
		n   int
		err error
	}
	async := func(ctx context.Context, n int) chan taken {
		c := make(chan taken, 1)
		go func() { n, err := s.takeN(ctx, false, n); c <- taken{n, err} }()
		return c
	}
	waiting := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			s.mu.Lock()
			w := len(s.waiting[1])
			s.mu.Unlock()
			if w == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d waiters, want %d", w, n)
			}
		}
	}
	hctx, cancel := context.WithCancel(ctx)
	heavy := async(hctx, 6)
	waiting(1)
	light := async(ctx, 2)
	waiting(2)
	select {
	case r := <-light:
		t.Fatalf("a light waiter went past the heavy one ahead of it: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if r := <-heavy; r.err != context.Canceled || r.n != 0 {
		t.Fatalf("cancelled heavy waiter: %+v", r)
	}
	if r := <-light; r.err != nil || r.n != 2 {
		t.Fatalf("light waiter after the heavy one left: %+v", r)
	}
	s.giveN(2)

	whole := async(ctx, 25) // more than all: takes all, once all are free
	waiting(1)
	s.giveN(6)
	if r := <-whole; r.err != nil || r.n != 10 {
		t.Fatalf("take of 25 of 10 slots: %+v, want all 10", r)
	}
	s.giveN(10)
	if s.free != 10 || len(s.waiting[0])+len(s.waiting[1]) != 0 {
		t.Fatalf("%d free, %d waiting after all gave back; want 10, 0", s.free, len(s.waiting[0])+len(s.waiting[1]))
	}
}
