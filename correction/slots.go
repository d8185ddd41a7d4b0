package correction

import (
	"context"
	"slices"
	"sync"
)

// slots is a weighted semaphore that serves the waiters who ask first
// before the others: a chunk that has read MySQL compares, and gives its
// buffers back, before another chunk starts a read. (A FIFO semaphore
// queued each comparison behind every read waiting, so every chunk in
// flight read before any compared, each into buffers of its own.) Within
// a queue waiters are served in arrival order, a heavy one holding those
// behind it until enough is free, so none starves.
type slots struct {
	mu      sync.Mutex
	size    int // what all the slots weigh
	free    int
	waiting [2][]*waiter // [first, then], each in arrival order
}

type waiter struct {
	n     int
	ready chan struct{}
}

func newSlots(n int) *slots { return &slots{size: n, free: n} }

// take waits for a slot, ahead of every waiter who asks !first if first.
func (s *slots) take(ctx context.Context, first bool) error {
	_, err := s.takeN(ctx, first, 1)
	return err
}

// give returns a slot taken by take.
func (s *slots) give() { s.giveN(1) }

// takeN waits for n slots (all of them if n is more), ahead of every
// waiter who asks !first if first, and returns how many it took: give
// back that many with giveN.
func (s *slots) takeN(ctx context.Context, first bool, n int) (int, error) {
	n = min(max(n, 1), s.size)
	s.mu.Lock()
	ahead := len(s.waiting[0]) // the waiters served before this one
	if !first {
		ahead += len(s.waiting[1])
	}
	if ahead == 0 && s.free >= n {
		s.free -= n
		s.mu.Unlock()
		return n, nil
	}
	q := 1
	if first {
		q = 0
	}
	w := &waiter{n: n, ready: make(chan struct{})}
	s.waiting[q] = append(s.waiting[q], w)
	s.mu.Unlock()
	select {
	case <-w.ready:
		return n, nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		select {
		case <-w.ready: // handed over meanwhile: pass it on
			s.free += n
		default:
			s.waiting[q] = slices.DeleteFunc(s.waiting[q], func(o *waiter) bool { return o == w })
		}
		s.wakeLocked() // a lighter waiter behind it may fit now
		return 0, ctx.Err()
	}
}

// giveN returns n slots taken by takeN.
func (s *slots) giveN(n int) {
	s.mu.Lock()
	s.free += n
	s.wakeLocked()
	s.mu.Unlock()
}

// wakeLocked hands free slots to the waiters at the heads of the queues,
// the first queue's before the other's, while they fit.
func (s *slots) wakeLocked() {
	for q := range s.waiting {
		for len(s.waiting[q]) > 0 {
			w := s.waiting[q][0]
			if w.n > s.free {
				return // the others wait behind it
			}
			s.free -= w.n
			close(w.ready)
			s.waiting[q] = s.waiting[q][1:]
		}
	}
}
