package embedded

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// TestReusedIteratorsSeeWrites: a read after a write sees it although the
// read before the write left an iterator to reuse; after an eviction too.
// A write closes the idle iterators.
func TestReusedIteratorsSeeWrites(t *testing.T) {
	ctx := t.Context()
	s, err := Open(Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(i int) eventcenter.Event {
		return eventcenter.Event{Source: "s", Key: "k", Time: t0.Add(time.Duration(i) * time.Minute), Pos: eventcenter.Position{Log: 1, Offset: uint64(i)},
			Op: eventcenter.OpUpdate, After: eventcenter.Row{"v": int64(i)}}
	}
	latest := func() int64 {
		t.Helper()
		e, err := s.AsOf(ctx, eventcenter.AsOf{Source: "s", Key: "k", Time: eventcenter.MaxTime})
		if err != nil {
			t.Fatal(err)
		}
		return e.After["v"].(int64)
	}
	for i := 1; i <= 3; i++ {
		if err := s.Append(ctx, []eventcenter.Event{ev(i)}); err != nil {
			t.Fatal(err)
		}
		if n := len(s.iters.free); n != 0 {
			t.Fatalf("%d idle iterators after a write: they pin what it replaced", n)
		}
		for range 3 { // the first read makes an iterator, the others reuse it
			if got := latest(); got != int64(i) {
				t.Fatalf("after appending %d: read %d", i, got)
			}
		}
		if len(s.iters.free) == 0 {
			t.Fatal("no iterator kept for reuse")
		}
	}
	var last eventcenter.RawEvent
	for e, err := range s.ReplayRaw(ctx, "s", eventcenter.MinTime, eventcenter.MaxTime, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		last = e
	}
	if err := s.Evict(ctx, []eventcenter.RawEvent{last}); err != nil {
		t.Fatal(err)
	}
	if got := latest(); got != 2 {
		t.Fatalf("after evicting 3: read %d, want 2", got)
	}
}

// TestReusedIteratorsUnderWrites: readers racing an appender never read a
// value older than one whose Append returned before their read began.
func TestReusedIteratorsUnderWrites(t *testing.T) {
	ctx := context.Background()
	s, err := Open(Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var published atomic.Int64
	const writes = 300
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; i <= writes; i++ {
			e := eventcenter.Event{Source: "s", Key: "k", Time: t0.Add(time.Duration(i) * time.Second), Pos: eventcenter.Position{Log: 1, Offset: uint64(i)},
				Op: eventcenter.OpUpdate, After: eventcenter.Row{"v": int64(i)}}
			if err := s.Append(ctx, []eventcenter.Event{e}); err != nil {
				t.Error(err)
				return
			}
			published.Store(int64(i))
		}
	})
	for range 4 {
		wg.Go(func() {
			for published.Load() < writes {
				floor := published.Load()
				e, err := s.AsOf(ctx, eventcenter.AsOf{Source: "s", Key: "k", Time: eventcenter.MaxTime})
				if floor == 0 && err != nil {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if v := e.After["v"].(int64); v < floor {
					t.Errorf("read %d after %d was appended", v, floor)
					return
				}
			}
		})
	}
	wg.Wait()
}
