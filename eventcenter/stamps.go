package eventcenter

import (
	"context"
	"sync"
	"time"
)

// Stamps hands out the StoredAt stamps of a store's appends and settles
// reads "as known at" so that they are repeatable (see [Reader]). A backend
// keeps one per open store; it is safe for concurrent use.
//
// The hazard it closes: an append is stamped before its writes are visible,
// so without it a read at KnownAt K could miss an append stamped at or
// before K that becomes visible a moment later, and the same read would
// then answer differently. Stamps tracks the appends stamped and not yet
// published; Settle makes a read wait for those stamped at or before its K,
// and makes every later stamp fall after K.
type Stamps struct {
	now func() time.Time

	mu      sync.Mutex
	last    time.Time             // the latest stamp handed out: stamps never go back
	settled time.Time             // the latest KnownAt settled: later stamps fall after it
	open    map[*pending]struct{} // stamped, not yet published
}

type pending struct {
	at   time.Time
	done chan struct{}
}

// NewStamps returns stamps read from now (a store's Config.Now).
func NewStamps(now func() time.Time) *Stamps {
	return &Stamps{now: now, open: map[*pending]struct{}{}}
}

// Now returns the stamp clock's present: now(), or the latest stamp if that
// is later (the clock stepped back, or stamps were pushed past a settled
// KnownAt).
func (s *Stamps) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.present()
}

func (s *Stamps) present() time.Time {
	if t := s.now(); t.After(s.last) {
		return t
	}
	return s.last
}

// Stamp returns the StoredAt of an append about to write, and publish, which
// the append must call once, when its writes are visible to reads or it has
// given up on them (failed: whatever it wrote is visible by then). A stamp
// is never before the previous one, and always after every KnownAt that
// Settle has returned: at worst a nanosecond after it.
func (s *Stamps) Stamp() (time.Time, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.present()
	if !t.After(s.settled) {
		t = s.settled.Add(time.Nanosecond)
	}
	s.last = t
	p := &pending{at: t, done: make(chan struct{})}
	s.open[p] = struct{}{}
	var once sync.Once
	return t, func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.open, p)
			s.mu.Unlock()
			close(p.done)
		})
	}
}

// Settle prepares a read as known at k and returns the KnownAt to read at:
// k, or the stamp clock's present if k is later (what is not stamped yet
// cannot be fixed; such a read sees what is stored now). It returns once
// every append stamped at or before that time is published, and every
// stamp handed out afterwards is after it; so what a read at the returned
// time sees can no longer change. A zero k (no KnownAt) returns at once.
// It fails only when ctx ends first.
func (s *Stamps) Settle(ctx context.Context, k time.Time) (time.Time, error) {
	if k.IsZero() {
		return k, nil
	}
	s.mu.Lock()
	if p := s.present(); k.After(p) {
		k = p
	}
	if k.After(s.settled) {
		s.settled = k
	}
	var wait []chan struct{}
	for p := range s.open {
		if !p.at.After(k) {
			wait = append(wait, p.done)
		}
	}
	s.mu.Unlock()
	for _, ch := range wait {
		select {
		case <-ch:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
	return k, nil
}
