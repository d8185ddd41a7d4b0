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
	queued := func(q, n int) { t.Helper(); waitQueued(t, s, q, n) }
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
// a first waiter that does not fit holds the others too; cancelling a
// waiter lets those behind it through; a take of more than all the slots
// takes them all; and every slot comes back.
func TestSlotsWeighted(t *testing.T) {
	ctx := context.Background()
	s := newSlots(10)
	if n, err := s.takeN(ctx, false, 6); err != nil || n != 6 {
		t.Fatalf("took %d, %v; want 6", n, err)
	}
	type taken struct {
		n   int
		err error
	}
	async := func(ctx context.Context, first bool, n int) chan taken {
		c := make(chan taken, 1)
		go func() { n, err := s.takeN(ctx, first, n); c <- taken{n, err} }()
		return c
	}
	waiting := func(q, n int) { t.Helper(); waitQueued(t, s, q, n) }
	served := func(c chan taken, want int) {
		t.Helper()
		select {
		case r := <-c:
			if r.err != nil || r.n != want {
				t.Fatalf("took %d, %v; want %d", r.n, r.err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("a take of %d was not served", want)
		}
	}
	notServed := func(c chan taken, why string) {
		t.Helper()
		select {
		case r := <-c:
			t.Fatalf("%s: %+v", why, r)
		case <-time.After(50 * time.Millisecond):
		}
	}

	hctx, cancel := context.WithCancel(ctx)
	heavy := async(hctx, false, 6)
	waiting(1, 1)
	light := async(ctx, false, 2)
	waiting(1, 2)
	notServed(light, "a light waiter went past the heavy one ahead of it")
	cancel()
	if r := <-heavy; r.err != context.Canceled || r.n != 0 {
		t.Fatalf("cancelled heavy waiter: %+v", r)
	}
	served(light, 2) // 2 free of 10 now

	// A first waiter that does not fit holds a later waiter that would.
	bigFirst := async(ctx, true, 5)
	waiting(0, 1)
	small := async(ctx, false, 1)
	waiting(1, 1)
	s.giveN(1) // 3 free: the first waiter's 5 do not fit, the small one's 1 would
	notServed(small, "a waiter went past a first waiter ahead of it")
	s.giveN(7) // 10 free
	served(bigFirst, 5)
	served(small, 1)
	s.giveN(5 + 1)

	if n, err := s.takeN(ctx, false, 6); err != nil || n != 6 {
		t.Fatalf("took %d, %v; want 6", n, err)
	}
	whole := async(ctx, false, 25) // more than all: takes all, once all are free
	waiting(1, 1)
	s.giveN(6)
	served(whole, 10)
	s.giveN(10)
	if s.free != 10 || len(s.waiting[0])+len(s.waiting[1]) != 0 {
		t.Fatalf("%d free, %d waiting after all gave back; want 10, 0", s.free, len(s.waiting[0])+len(s.waiting[1]))
	}
}

// TestSlotsCancelAsHandedOver: a waiter cancelled as its slots are handed
// to it (both at once, many times over, so that both orders happen) gives
// them back: no slot is lost.
func TestSlotsCancelAsHandedOver(t *testing.T) {
	s := newSlots(4)
	for range 500 {
		if _, err := s.takeN(context.Background(), false, 4); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan int, 1)
		go func() { n, _ := s.takeN(ctx, false, 3); got <- n }()
		waitQueued(t, s, 1, 1)
		cancel() // the waiter wakes to it, and meanwhile, mostly, gets the slots:
		s.giveN(4)
		s.giveN(<-got) // 3 if it was served before it saw the cancel, else 0
		s.mu.Lock()
		free := s.free
		s.mu.Unlock()
		if free != 4 {
			t.Fatalf("%d of 4 slots free after every take gave back", free)
		}
	}
}

// waitQueued waits until queue q of s holds n waiters, failing t after 5 s.
func waitQueued(t *testing.T, s *slots, q, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Microsecond) {
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
