package tiered_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/tiered"
)

// TestColdRetention: a source's cold retention drops whole segments (a
// slice that straddles the horizon stays whole), and reads that would need
// what is dropped fail with a *BeyondHorizonError naming the source's cold
// horizon; other sources keep everything.
func TestColdRetention(t *testing.T) {
	ctx := t.Context()
	stamp := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return stamp }
	s, err := tiered.New(tiered.Config{Hot: openEmbedded(t, now), Cold: tiered.Dir(t.TempDir()), Now: now, HotWindow: time.Hour,
		EvictGrace: tiered.EvictGraceNone, ColdRetention: map[string]time.Duration{"short": 5 * 24 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	day := func(d int, h int) time.Time { return time.Date(2026, 3, d, h, 0, 0, 0, time.UTC) }
	var evs []eventcenter.Event
	for _, src := range []string{"short", "long"} {
		for d := 1; d <= 8; d++ {
			evs = append(evs, eventcenter.Event{Source: src, Key: fmt.Sprint("k", d), Time: day(d, 12), Op: eventcenter.OpInsert,
				Pos: eventcenter.Position{Offset: uint64(d)}, After: eventcenter.Row{"d": int64(d)}})
		}
	}
	if err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	stamp = stamp.Add(2 * time.Hour) // 2026-03-10T02:00: the horizon of "short" is 03-05T02:00
	if _, err := s.Tier(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := s.Manifest(ctx, "short")
	if err != nil {
		t.Fatal(err)
	}
	// Days 1 to 4 are dropped; day 5 (12:00) straddles nothing: its slice is after the horizon.
	if want := day(4, 12).Add(time.Nanosecond); !m.DroppedBefore.Equal(want) || len(m.Segments) != 4 {
		t.Fatalf("manifest of short: dropped before %v with %d segments, want %v and 4", m.DroppedBefore, len(m.Segments), want)
	}
	beyond := func(what string, err error) {
		t.Helper()
		var be *eventcenter.BeyondHorizonError
		if !errors.As(err, &be) || !be.Horizon.Equal(m.DroppedBefore) {
			t.Errorf("%s: %v, want a *BeyondHorizonError at %v", what, err, m.DroppedBefore)
		}
	}
	_, err = s.AsOf(ctx, eventcenter.AsOf{Source: "short", Key: "k2", Time: stamp})
	beyond("AsOf of a key last written on a dropped day", err)
	_, err = s.AsOf(ctx, eventcenter.AsOf{Source: "short", Key: "k6", Time: day(3, 0)})
	beyond("AsOf at a dropped time", err)
	_, err = s.History(ctx, eventcenter.HistoryQuery{Source: "short", Key: "k6", From: day(1, 0), To: stamp})
	beyond("History from a dropped time", err)
	for _, err := range s.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{"long", "short"}, From: day(1, 0), To: stamp}) {
		beyond("Replay from a dropped time", err)
		break
	}
	if e, err := s.AsOf(ctx, eventcenter.AsOf{Source: "short", Key: "k6", Time: stamp}); err != nil || e.After["d"] != int64(6) {
		t.Errorf("AsOf of a kept key: %+v %v", e, err)
	}
	var n int
	for _, err := range s.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{"short"}, From: m.DroppedBefore, To: stamp}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 4 {
		t.Errorf("replay of short from its horizon: %d events, want 4", n)
	}
	if e, err := s.AsOf(ctx, eventcenter.AsOf{Source: "long", Key: "k1", Time: stamp}); err != nil || e.After["d"] != int64(1) {
		t.Errorf("AsOf of a source kept forever: %+v %v", e, err)
	}

	// A late event behind the horizon leaves hot at the next tiering, uncopied.
	late := eventcenter.Event{Source: "short", Key: "k1", Time: day(2, 0), Op: eventcenter.OpUpdate, Pos: eventcenter.Position{Log: 9}, After: eventcenter.Row{"d": int64(-1)}}
	if err := s.Append(ctx, []eventcenter.Event{late}); err != nil {
		t.Fatal(err)
	}
	stamp = stamp.Add(2 * time.Hour)
	if rep, err := s.Tier(ctx); err != nil || rep.Events != 1 || rep.Segments != 0 {
		t.Fatalf("Tier of a late event behind the horizon: %+v %v, want it evicted with no segment written", rep, err)
	}
	if n, _, err := s.Backlog(ctx, "short"); err != nil || n != 0 {
		t.Errorf("backlog %d %v", n, err)
	}
}
