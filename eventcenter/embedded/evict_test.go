package embedded

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// raws returns events as Evict takes them: identity and After as stored.
func raws(events []eventcenter.Event) []eventcenter.RawEvent {
	out := make([]eventcenter.RawEvent, len(events))
	for i, e := range events {
		out[i] = eventcenter.RawEvent{Source: e.Source, Key: e.Key, Time: e.Time, Pos: e.Pos}
		if e.After != nil {
			out[i].After = codec.AppendRow(nil, e.After)
		}
	}
	return out
}

// TestCompactTimes: after Evict, a scan of the source's time rows steps
// over a tombstone and a row per evicted event; after CompactTimes over
// their times, over the remaining rows only, and a replay returns those.
//
// The events and their eviction share the memtable's life: nothing is
// flushed in between (Evict's tables of deletions never enter it).
func TestCompactTimes(t *testing.T) {
	ctx := t.Context()
	s, err := Open(Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	evs := make([]eventcenter.Event, 1000)
	for i := range evs {
		evs[i] = eventcenter.Event{Source: "compact", Key: fmt.Sprintf("k%03d", i%50), Time: t0.Add(time.Duration(i) * time.Second),
			Pos: eventcenter.Position{Log: 1, Offset: uint64(i)}, Op: eventcenter.OpUpdate, After: eventcenter.Row{"n": int64(i)}}
	}
	if err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	gone, kept := evs[:900], evs[900:]
	if err := s.Evict(ctx, raws(gone)); err != nil {
		t.Fatal(err)
	}
	points := func() uint64 {
		it, err := s.db.NewIter(timeIterOptions("compact", eventcenter.AllTime.From, eventcenter.AllTime.To))
		if err != nil {
			t.Fatal(err)
		}
		for it.First(); it.Valid(); it.Next() {
		}
		st := it.Stats()
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
		return st.InternalStats.PointCount
	}
	if n := points(); n < 2*uint64(len(gone)) {
		t.Fatalf("before the compaction a scan steps over %d points, want at least %d", n, 2*len(gone))
	}
	if err := s.CompactTimes(ctx, "compact", gone[0].Time, gone[len(gone)-1].Time.Add(time.Nanosecond)); err != nil {
		t.Fatal(err)
	}
	if n := points(); n != uint64(len(kept)) {
		t.Fatalf("after the compaction a scan steps over %d points, want %d", n, len(kept))
	}
	var got []eventcenter.Event
	for e, err := range s.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{"compact"}, From: eventcenter.AllTime.From, To: eventcenter.AllTime.To}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	if len(got) != len(kept) || got[0].Pos != kept[0].Pos || got[len(got)-1].Pos != kept[len(kept)-1].Pos {
		t.Fatalf("replayed %d events, want %d (offsets %d..%d)", len(got), len(kept), kept[0].Pos.Offset, kept[len(kept)-1].Pos.Offset)
	}
}

// TestEvict: evicted events leave every read (as-of, history, index
// lookups, replay) and the indexes, the others stay; evicting again, or
// identities never stored, changes nothing; an event appended again after
// its eviction is kept; no table Evict wrote is left in the folder.
func TestEvict(t *testing.T) {
	for _, inMemory := range []bool{true, false} {
		t.Run(fmt.Sprintf("InMemory=%v", inMemory), func(t *testing.T) {
			ctx := t.Context()
			dir := t.TempDir()
			s, err := Open(Config{InMemory: inMemory, Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			const src = "evict.orders"
			if err := s.DeclareIndex(ctx, eventcenter.Index{Source: src, Name: "user", Column: "user"}); err != nil {
				t.Fatal(err)
			}
			indexRows := func() int {
				it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tabIndex}, UpperBound: []byte{tabIndex + 1}})
				if err != nil {
					t.Fatal(err)
				}
				defer it.Close()
				n := 0
				for it.First(); it.Valid(); it.Next() {
					n++
				}
				return n
			}
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			evs := make([]eventcenter.Event, 300)
			for i := range evs {
				evs[i] = eventcenter.Event{Source: src, Key: fmt.Sprintf("o%02d", i%30), Time: t0.Add(time.Duration(i) * time.Second),
					Pos: eventcenter.Position{Log: 1, Offset: uint64(i)}, Op: eventcenter.OpUpdate,
					After: eventcenter.Row{"user": fmt.Sprintf("u%d", i%3), "shop": fmt.Sprintf("s%d", i%7), "n": int64(i)}}
			}
			if err := s.Append(ctx, evs); err != nil {
				t.Fatal(err)
			}
			// The first 200 go, as tiering passes them (identity and the
			// After row as stored); a never-stored identity rides along.
			// An index declared after they were read covers them too.
			gone := append(raws(evs[:200]), eventcenter.RawEvent{Source: src, Key: "never", Time: t0, Pos: eventcenter.Position{Log: 9}})
			if err := s.DeclareIndex(ctx, eventcenter.Index{Source: src, Name: "shop", Column: "shop"}); err != nil {
				t.Fatal(err)
			}
			if n := indexRows(); n != 2*len(evs) {
				t.Fatalf("%d index rows before the eviction, want %d", n, 2*len(evs))
			}
			for range 2 {
				if err := s.Evict(ctx, gone); err != nil {
					t.Fatal(err)
				}
			}
			kept := evs[200:]
			if n := indexRows(); n != 2*len(kept) {
				t.Fatalf("%d index rows after the eviction, want %d (those of the kept events)", n, 2*len(kept))
			}
			var replayed int
			for e, err := range s.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{src}, From: eventcenter.AllTime.From, To: eventcenter.AllTime.To}) {
				if err != nil {
					t.Fatal(err)
				}
				if e.Pos.Offset < 200 {
					t.Fatalf("replay returned evicted event %s", e.ID())
				}
				replayed++
			}
			if replayed != len(kept) {
				t.Fatalf("replayed %d events, want %d", replayed, len(kept))
			}
			// Before the first kept event, nothing is left of a key.
			if _, err := s.AsOf(ctx, eventcenter.AsOf{Source: src, Key: "o05", Time: t0.Add(199 * time.Second)}); !errors.Is(err, eventcenter.ErrNotFound) {
				t.Fatalf("as-of an evicted state: %v, want ErrNotFound", err)
			}
			h, err := s.History(ctx, eventcenter.HistoryQuery{Source: src, Key: "o05", From: eventcenter.AllTime.From, To: eventcenter.AllTime.To})
			// o05 held offsets 5, 35, …, 295; 215, 245, 275 are kept.
			if err != nil || len(h) != 3 {
				t.Fatalf("history of o05: %d events (%v), want the 3 kept", len(h), err)
			}
			for _, e := range h {
				if e.Pos.Offset < 200 {
					t.Fatalf("history returned evicted event %s", e.ID())
				}
			}
			// Every kept event's index row answers; no evicted one does.
			for _, u := range []string{"u0", "u1", "u2"} {
				for _, at := range []time.Time{t0.Add(150 * time.Second), t0.Add(299 * time.Second)} {
					got, err := s.Lookup(ctx, eventcenter.LookupQuery{Source: src, Index: "user", Value: u, Time: at})
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range got {
						if e.Pos.Offset < 200 {
							t.Fatalf("lookup %s at %v returned evicted event %s", u, at, e.ID())
						}
					}
					if want := 10; at.After(t0.Add(200*time.Second)) && len(got) != want {
						t.Fatalf("lookup %s at the end: %d keys, want %d", u, len(got), want)
					}
					if at.Before(t0.Add(200*time.Second)) && len(got) != 0 {
						t.Fatalf("lookup %s before the kept events: %d keys, want none", u, len(got))
					}
				}
			}
			// Appended again after its eviction: kept.
			if err := s.Append(ctx, evs[:1]); err != nil {
				t.Fatal(err)
			}
			if e, err := s.AsOf(ctx, eventcenter.AsOf{Source: src, Key: evs[0].Key, Time: evs[0].Time}); err != nil || e.Pos != evs[0].Pos {
				t.Fatalf("an event appended again after its eviction: %v, %v", e.ID(), err)
			}
			if !inMemory {
				names, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range names {
					if strings.HasPrefix(n.Name(), evictPrefix) {
						t.Fatalf("Evict left %s in the folder", n.Name())
					}
				}
			}
		})
	}
}
