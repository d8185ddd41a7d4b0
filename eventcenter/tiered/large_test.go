package tiered_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/tiered"
)

// TestTierLarge: a run moving more events than one eviction call takes
// (64Ki) and more than a block of rows (4,096), over several slices, with
// an index; then late events folded into the same slices. Every event is
// read exactly once afterwards, hot holds none, lookups answer from cold.
func TestTierLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 70,000 events")
	}
	ctx := t.Context()
	stamp := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return stamp }
	s, err := tiered.New(tiered.Config{Hot: openEmbedded(t, now), Cold: tiered.Dir(t.TempDir()), Now: now, HotWindow: time.Hour,
		EvictGrace: tiered.EvictGraceNone})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const src, n, keys = "large.orders", 70_000, 5_000
	if err := s.DeclareIndex(ctx, eventcenter.Index{Source: src, Name: "user", Column: "user"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	event := func(i int, log uint64) eventcenter.Event {
		return eventcenter.Event{Source: src, Key: fmt.Sprintf("o%05d", i%keys), Time: t0.Add(time.Duration(i) * 4 * time.Second),
			Pos: eventcenter.Position{Log: log, Offset: uint64(i)}, Op: eventcenter.OpUpdate,
			After: eventcenter.Row{"user": fmt.Sprintf("u%d", i%keys%7), "n": int64(i)}}
	}
	var evs []eventcenter.Event
	for i := range n {
		evs = append(evs, event(i, 1))
	}
	for i := 0; i < len(evs); i += 10_000 {
		if err := s.Append(ctx, evs[i:min(i+10_000, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	stamp = stamp.Add(2 * time.Hour)
	rep, err := s.Tier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != n || rep.Segments < 4 {
		t.Fatalf("tiered %+v, want %d events in at least 4 segments (4 days)", rep, n)
	}
	// Late events in the same days, then a second run folds them in.
	var late []eventcenter.Event
	for i := 0; i < n; i += 70 {
		late = append(late, event(i, 2))
	}
	if err := s.Append(ctx, late); err != nil {
		t.Fatal(err)
	}
	stamp = stamp.Add(2 * time.Hour)
	if rep, err := s.Tier(ctx); err != nil || rep.Events != len(late) {
		t.Fatalf("second run %+v %v, want %d events", rep, err, len(late))
	}
	if backlog, _, err := s.Backlog(ctx, src); err != nil || backlog != 0 {
		t.Fatalf("hot still holds %d events (%v)", backlog, err)
	}
	seen := map[eventcenter.ID]bool{}
	var prev eventcenter.Event
	for e, err := range s.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{src}, From: eventcenter.AllTime.From, To: eventcenter.AllTime.To}) {
		if err != nil {
			t.Fatal(err)
		}
		if seen[e.ID()] {
			t.Fatalf("event %s replayed twice", e.ID())
		}
		if len(seen) > 0 && eventcenter.Compare(&prev, &e) >= 0 {
			t.Fatalf("replay out of order: %s after %s", e.ID(), prev.ID())
		}
		seen[e.ID()], prev = true, e
	}
	if len(seen) != n+len(late) {
		t.Fatalf("replayed %d events, want %d", len(seen), n+len(late))
	}
	got, err := s.Lookup(ctx, eventcenter.LookupQuery{Source: src, Index: "user", Value: "u3", Time: stamp})
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for k := range keys {
		if k%7 == 3 {
			want++
		}
	}
	if len(got) != want {
		t.Fatalf("lookup of u3 from cold: %d keys, want %d", len(got), want)
	}
}
