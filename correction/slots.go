package correction

import (
	"context"
	"slices"
	"sync"
)

// slots is a counting semaphore that serves the waiters who ask first
// before the others: a chunk that has read MySQL compares, and gives its
// buffers back, before another chunk starts a read. (A FIFO semaphore
// queued each comparison behind every read waiting, so every chunk in
// flight read before any compared, each into buffers of its own.)
type slots struct {
	mu      sync.Mutex
	free    int
	waiting [2][]chan struct{} // [first, then], each in arrival order
}

func newSlots(n int) *slots { return &slots{free: n} }

// take waits for a slot, ahead of every waiter who asks !first if first.
func (s *slots) take(ctx context.Context, first bool) error {
	s.mu.Lock()
	if s.free > 0 { // then no one waits: give hands a slot to a waiter first
		s.free--
		s.mu.Unlock()
		return nil
	}
	q := 1
	if first {
		q = 0
	}
	ready := make(chan struct{})
	s.waiting[q] = append(s.waiting[q], ready)
	s.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		select {
		case <-ready: // handed over meanwhile: pass it on
			s.giveLocked()
		default:
			s.waiting[q] = slices.DeleteFunc(s.waiting[q], func(c chan struct{}) bool { return c == ready })
		}
		return ctx.Err()
	}
}

// give returns a slot taken by take.
func (s *slots) give() {
	s.mu.Lock()
	s.giveLocked()
	s.mu.Unlock()
}

func (s *slots) giveLocked() {
	for q := range s.waiting {
		if len(s.waiting[q]) > 0 {
			close(s.waiting[q][0])
			s.waiting[q] = s.waiting[q][1:]
			return
		}
	}
	s.free++
}
