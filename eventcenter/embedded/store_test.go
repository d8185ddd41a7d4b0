package embedded_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/eventcenter/storetest"
)

func open(t testing.TB, cfg embedded.Config) eventcenter.Store {
	t.Helper()
	s, err := embedded.Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestStore(t *testing.T) {
	t.Run("InMemory", func(t *testing.T) {
		storetest.RunWith(t, func(t testing.TB, now func() time.Time) eventcenter.Store {
			return open(t, embedded.Config{InMemory: true, Now: now})
		}, storetest.Options{
			Retention: func(t testing.TB, now func() time.Time, retention time.Duration) eventcenter.Store {
				return open(t, embedded.Config{InMemory: true, Now: now, Retention: retention})
			},
		})
	})
	t.Run("OnDisk", func(t *testing.T) {
		// Every append is fsynced here, so the model runs fewer operations.
		storetest.RunWith(t, func(t testing.TB, now func() time.Time) eventcenter.Store {
			return open(t, embedded.Config{Dir: t.TempDir(), Now: now, CacheBytes: 8 << 20})
		}, storetest.Options{ModelOps: 2000, ModelSeeds: 1,
			Retention: func(t testing.TB, now func() time.Time, retention time.Duration) eventcenter.Store {
				return open(t, embedded.Config{Dir: t.TempDir(), Now: now, Retention: retention})
			},
		})
	})
}

// TestReopen: what an on-disk store holds survives closing and opening it:
// events with their first StoredAt, index declarations, watermarks.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	stamp := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return stamp }
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := eventcenter.Event{Source: "s", Key: "k", Time: t0, Op: eventcenter.OpInsert, After: eventcenter.Row{"user": int64(7)}}
	ix := eventcenter.Index{Source: "s", Name: "user", Column: "user"}

	s := open(t, embedded.Config{Dir: dir, Now: now})
	if err := s.Append(ctx, []eventcenter.Event{e}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeclareIndex(ctx, ix); err != nil {
		t.Fatal(err)
	}
	if err := s.AdvanceWatermark(ctx, "s", 3, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	stamp = stamp.Add(time.Hour)
	s = open(t, embedded.Config{Dir: dir, Now: now})
	defer s.Close()
	again := e
	again.After = eventcenter.Row{"user": int64(8)}
	if err := s.Append(ctx, []eventcenter.Event{again}); err != nil {
		t.Fatal(err)
	}
	got, err := s.AsOf(ctx, eventcenter.AsOf{Source: "s", Key: "k", Time: t0})
	if err != nil || got.After["user"] != int64(7) || !got.StoredAt.Equal(stamp.Add(-time.Hour)) {
		t.Errorf("AsOf after reopen = %+v, %v; want the first copy, stored before", got, err)
	}
	if ixs, err := s.ListIndexes(ctx, "s"); err != nil || len(ixs) != 1 || ixs[0] != ix {
		t.Errorf("ListIndexes after reopen = %+v, %v; want [%+v]", ixs, err, ix)
	}
	if found, err := s.Lookup(ctx, eventcenter.LookupQuery{Source: "s", Index: "user", Value: "7", Time: t0}); err != nil || len(found) != 1 {
		t.Errorf("Lookup after reopen = %+v, %v; want k", found, err)
	}
	if wm, err := s.Watermark(ctx, "s"); err != nil || !wm.Equal(t0) {
		t.Errorf("Watermark after reopen = %v, %v; want %v", wm, err, t0)
	}
	if err := s.AdvanceWatermark(ctx, "s", 3, t0.Add(-1)); !errors.Is(err, eventcenter.ErrWatermarkRegression) {
		t.Errorf("AdvanceWatermark backwards after reopen: %v, want ErrWatermarkRegression", err)
	}
}

// TestOpenUpgradesFormat: a store written in Pebble's row format (the
// format of stores made before columnar tables) opens in the columnar
// one, and its events read the same before and after compactions rewrite
// its tables.
func TestOpenUpgradesFormat(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var evs []eventcenter.Event
	var qs []eventcenter.AsOf
	for k := range 50 {
		key := fmt.Sprintf("k%03d", k)
		for c := range 4 {
			at := t0.Add(time.Duration(c) * time.Hour)
			evs = append(evs, eventcenter.Event{Source: "s", Key: key, Time: at, Pos: eventcenter.Position{Log: 1, Offset: uint64(len(evs))},
				Op: eventcenter.OpUpdate, After: eventcenter.Row{"n": int64(k*10 + c)}})
			qs = append(qs, eventcenter.AsOf{Source: "s", Key: key, Time: at.Add(time.Minute)})
		}
	}
	check := func(s *embedded.Store, when string) {
		t.Helper()
		out := make([]eventcenter.AsOfResult, len(qs))
		if err := s.AsOfBatch(ctx, qs, out); err != nil {
			t.Fatalf("%s: AsOfBatch: %v", when, err)
		}
		for i, r := range out {
			if r.Err != nil || r.Event.After["n"] != evs[i].After["n"] {
				t.Fatalf("%s: read %d (%s as of %s) = %+v; want n=%v", when, i, qs[i].Key, qs[i].Time, r, evs[i].After["n"])
			}
		}
	}

	undo := embedded.SetFormatMajorVersion(pebble.FormatFlushableIngest)
	old, err := embedded.Open(embedded.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := embedded.Compact(old); err != nil {
		t.Fatal(err)
	}
	if v := embedded.FormatMajorVersion(old); v != pebble.FormatFlushableIngest {
		t.Fatalf("the old store's format is %v", v)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	undo()

	s, err := embedded.Open(embedded.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v := embedded.FormatMajorVersion(s); v != pebble.FormatTableFormatV6 {
		t.Errorf("the reopened store's format is %v, want %v", v, pebble.FormatTableFormatV6)
	}
	if c, all, err := embedded.ColumnarTables(s); err != nil || all == 0 || c != 0 {
		t.Fatalf("the reopened store has %d columnar tables of %d (%v), want 0 of some", c, all, err)
	}
	check(s, "reopened")
	// A compaction rewrites only tables it compacts into: the old table is
	// alone in the bottom level, which Compact does not compact on its own,
	// so a later event of every key (after every read's time) overlaps it.
	var later []eventcenter.Event
	for k := range 50 {
		later = append(later, eventcenter.Event{Source: "s", Key: fmt.Sprintf("k%03d", k), Time: t0.Add(24 * time.Hour),
			Pos: eventcenter.Position{Log: 1, Offset: uint64(len(evs) + k)}, Op: eventcenter.OpUpdate, After: eventcenter.Row{"n": int64(-1)}})
	}
	if err := s.Append(ctx, later); err != nil {
		t.Fatal(err)
	}
	if err := embedded.Compact(s); err != nil {
		t.Fatal(err)
	}
	if c, all, err := embedded.ColumnarTables(s); err != nil || all == 0 || c != all {
		t.Fatalf("the compacted store has %d columnar tables of %d (%v), want all", c, all, err)
	}
	check(s, "compacted")
}

// MustExist opens a store made before and refuses, creating nothing, a
// folder that does not exist or holds no store.
func TestMustExist(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Join(dir, "missing")} {
		if _, err := embedded.Open(embedded.Config{Dir: d, MustExist: true}); !errors.Is(err, embedded.ErrNoStore) {
			t.Fatalf("%s: %v, want ErrNoStore", d, err)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("left %v", left)
	}
	for _, name := range []string{"store", "a[1]", "b["} { // not a pattern
		store := filepath.Join(dir, name)
		open(t, embedded.Config{Dir: store}).Close()
		s, err := embedded.Open(embedded.Config{Dir: store, MustExist: true})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}
