package hbase_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tsuna/gohbase"
	"github.com/tsuna/gohbase/hrpc"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/hbase"
	"github.com/tidemark-dev/tidemark/internal/testenv"
)

// TestTwoTablesOneFirstCopy: an event whose first Append wrote its time
// cell and failed before its events cell, then was appended again (and
// again, with another body), is replayed as the reads see it: the copy
// stored by the first Append that completed, and not as known before it.
func TestTwoTablesOneFirstCopy(t *testing.T) {
	s := open(t, testConfig(t))
	defer s.Close()
	ctx := t.Context()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ev := func(key string, status string) eventcenter.Event {
		return eventcenter.Event{Source: "mysql.loan.orders", Key: key, Time: base, Pos: eventcenter.Position{Log: 1, Offset: 7},
			Op: eventcenter.OpInsert, After: eventcenter.Row{"status": status}}
	}
	if err := s.AppendTimeOnly(ctx, []eventcenter.Event{ev("o-1", "open")}); err != nil {
		t.Fatal(err)
	}
	orphan := replayAll(t, s, time.Time{})
	if len(orphan) != 1 {
		t.Fatalf("after an append that failed between the tables: replay gave %d events, want the one the time table holds", len(orphan))
	}
	failedAt := orphan[0].StoredAt

	for _, status := range []string{"open", "closed"} { // the retry, then a re-append with another body
		if err := s.Append(ctx, []eventcenter.Event{ev("o-1", status), ev("o-2", status)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []time.Time{{}, failedAt, time.Now()} {
		got := replayAll(t, s, k)
		var want []eventcenter.Event
		for _, key := range []string{"o-1", "o-2"} {
			e, err := s.AsOf(ctx, eventcenter.AsOf{Source: "mysql.loan.orders", Key: key, Time: base, KnownAt: k})
			if errors.Is(err, eventcenter.ErrNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, e)
		}
		if k.Equal(failedAt) && len(want) != 0 {
			t.Errorf("as known when the failed append was stamped: AsOf found %d events, want none", len(want))
		}
		if len(got) != len(want) {
			t.Fatalf("known at %v: replay gave %v, AsOf %v", k, got, want)
		}
		for i := range got {
			if !got[i].StoredAt.Equal(want[i].StoredAt) || got[i].After["status"] != "open" || want[i].After["status"] != "open" {
				t.Errorf("known at %v: replay gave %+v, AsOf %+v; want the same, first, copy", k, got[i], want[i])
			}
		}
	}
}

func replayAll(t *testing.T, s *hbase.Store, knownAt time.Time) []eventcenter.Event {
	t.Helper()
	var out []eventcenter.Event
	q := eventcenter.ReplayQuery{Sources: []string{"mysql.loan.orders"}, From: eventcenter.MinTime, To: eventcenter.MaxTime, KnownAt: knownAt}
	for e, err := range s.Replay(t.Context(), q) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestOldLayoutRefused: a namespace laid out by an earlier version (its
// time table without bodies) is refused with ErrOldLayout, not misread.
func TestOldLayoutRefused(t *testing.T) {
	cfg := hbase.Config{ZooKeeper: testenv.HBaseZK(t), Namespace: newNamespace(), IndexRefresh: 20 * time.Millisecond}
	closeStore(t, open(t, cfg))
	c := gohbase.NewClient(cfg.ZooKeeper)
	defer c.Close()
	p, err := hrpc.NewPutStr(context.Background(), cfg.Namespace+":meta", "layout", map[string]map[string][]byte{"d": {"version": []byte("1")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(p); err != nil {
		t.Fatal(err)
	}
	s, err := hbase.Open(t.Context(), cfg)
	if err == nil {
		closeStore(t, s)
		t.Fatal("Open of a version 1 namespace: no error")
	}
	if !errors.Is(err, hbase.ErrOldLayout) {
		t.Errorf("Open of a version 1 namespace: %v, want ErrOldLayout", err)
	}
	t.Log(err)
}
