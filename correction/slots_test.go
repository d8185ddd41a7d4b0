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
