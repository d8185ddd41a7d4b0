package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
)

// TestAsOfBatchAnswersAsAsOf checks AsOfBatch against one AsOf per read
// over keys with several changes at shared times, deletes, appends at
// several stored-at times (KnownAt), unknown keys and invalid reads, in a
// shuffled order, with and without a retention horizon, the batch read on
// one goroutine and in parts on several.
func TestAsOfBatchAnswersAsAsOf(t *testing.T) {
	for _, c := range []struct {
		retention time.Duration
		part      int // the fewest reads of a part (embedded.SetMinBatchPart)
	}{{0, 1 << 20}, {20 * time.Hour, 1 << 20}, {0, 60}, {20 * time.Hour, 60}} {
		t.Run(fmt.Sprintf("retention=%v/part=%d", c.retention, c.part), func(t *testing.T) {
			defer embedded.SetMinBatchPart(c.part)()
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4)) // up to 4 parts of 60+ reads, whatever the machine
			retention := c.retention
			ctx := context.Background()
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			clock := t0
			s, err := embedded.Open(embedded.Config{InMemory: true, Retention: retention, Now: func() time.Time { return clock }})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			rng := rand.New(rand.NewPCG(3, 4))
			var stored []time.Time
			for batch := range 6 {
				clock = t0.Add(time.Duration(batch+1) * 4 * time.Hour)
				stored = append(stored, clock)
				var evs []eventcenter.Event
				for i := range 60 {
					e := eventcenter.Event{Source: "t.src", Key: fmt.Sprintf("k%02d", rng.IntN(12)),
						Time: t0.Add(time.Duration(rng.IntN(20)) * time.Hour), Pos: eventcenter.Position{Log: 1, Offset: uint64(batch*100 + i)},
						Op: eventcenter.OpUpdate, After: eventcenter.Row{"v": int64(batch*100 + i)}}
					if rng.IntN(6) == 0 {
						e.Op, e.After = eventcenter.OpDelete, nil
					}
					evs = append(evs, e)
				}
				if err := s.Append(ctx, evs); err != nil {
					t.Fatal(err)
				}
			}
			clock = t0.Add(26 * time.Hour) // a horizon of 6h with retention
			var qs []eventcenter.AsOf
			for range 500 {
				q := eventcenter.AsOf{Source: "t.src", Key: fmt.Sprintf("k%02d", rng.IntN(14)), Time: t0.Add(time.Duration(rng.IntN(24*60)-60) * time.Minute)}
				if rng.IntN(3) == 0 {
					q.KnownAt = stored[rng.IntN(len(stored))]
				}
				qs = append(qs, q)
			}
			qs = append(qs, eventcenter.AsOf{Source: "t.src", Time: t0}, eventcenter.AsOf{Source: "t.src", Key: "k01"})
			out := make([]eventcenter.AsOfResult, len(qs))
			if err := s.AsOfBatch(ctx, qs, out); err != nil {
				t.Fatal(err)
			}
			found := 0
			for i, q := range qs {
				e, err := s.AsOf(ctx, q)
				if !reflect.DeepEqual(out[i].Event, e) || !sameError(out[i].Err, err) {
					t.Fatalf("read %d %+v: batch %+v, %v; AsOf %+v, %v", i, q, out[i].Event, out[i].Err, e, err)
				}
				if err == nil {
					found++
				}
			}
			if found < 100 || found == len(qs) {
				t.Fatalf("%d of %d reads found: a weak test", found, len(qs))
			}
		})
	}
}

func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	for _, target := range []error{eventcenter.ErrNotFound, eventcenter.ErrInvalidQuery, eventcenter.ErrBeyondHorizon} {
		if errors.Is(a, target) != errors.Is(b, target) {
			return false
		}
	}
	return true
}

// TestAsOfBatchFailsAsAPartFails: a read that fails (a stored row that does
// not decode) fails the batch, whether the batch is read on one goroutine
// or in parts; a batch without that read does not fail.
func TestAsOfBatchFailsAsAPartFails(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := embedded.Open(embedded.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var evs []eventcenter.Event
	for k := range 40 {
		for c := range 3 {
			evs = append(evs, eventcenter.Event{Source: "t.src", Key: fmt.Sprintf("k%02d", k), Time: t0.Add(time.Duration(c) * time.Hour),
				Pos: eventcenter.Position{Log: 1, Offset: uint64(k*3 + c)}, Op: eventcenter.OpUpdate, After: eventcenter.Row{"v": int64(c)}})
		}
	}
	if err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := embedded.Corrupt(s, "t.src", "k07"); err != nil {
		t.Fatal(err)
	}
	var all, clean []eventcenter.AsOf
	for i := range 800 {
		q := eventcenter.AsOf{Source: "t.src", Key: fmt.Sprintf("k%02d", i%40), Time: t0.Add(time.Duration(i%5) * time.Hour)}
		all = append(all, q)
		if q.Key != "k07" {
			clean = append(clean, q)
		}
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	for _, part := range []int{1 << 20, 60} {
		undo := embedded.SetMinBatchPart(part)
		err := s.AsOfBatch(ctx, all, make([]eventcenter.AsOfResult, len(all)))
		if !errors.Is(err, codec.ErrCorrupt) {
			t.Errorf("part %d: a batch reading a corrupt row: %v, want codec.ErrCorrupt", part, err)
		}
		if err := s.AsOfBatch(ctx, clean, make([]eventcenter.AsOfResult, len(clean))); err != nil {
			t.Errorf("part %d: a batch of sound rows: %v", part, err)
		}
		undo()
	}
}
