package embedded

import (
	"fmt"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// TestCompactTimes: after Evict, a scan of the source's time rows steps
// over a tombstone and a row per evicted event; after CompactTimes over
// their times, over the remaining rows only, and a replay returns those.
//
// The events are flushed before they are evicted, as tiering does (see
// CompactTimes).
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
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	gone, kept := evs[:900], evs[900:]
	if err := s.Evict(ctx, gone); err != nil {
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
