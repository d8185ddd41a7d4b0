package tiered

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// TestVerifySegment: verifySegment accepts the rows a segment was encoded
// from and refuses any difference in any column, no row for a row or a
// row for no row, a missing or an extra row, and a damaged object.
func TestVerifySegment(t *testing.T) {
	t0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	var evs []eventcenter.Event
	for i := range 3000 {
		e := eventcenter.Event{
			Source: "verify.orders", Key: fmt.Sprintf("k%04d", i/3), Time: t0.Add(time.Duration(i) * time.Second),
			Pos: eventcenter.Position{Log: 1, Offset: uint64(i)}, Op: eventcenter.OpUpdate, StoredAt: t0.Add(time.Hour),
			After: eventcenter.Row{"n": int64(i)}, Before: eventcenter.Row{"n": int64(i - 1)},
		}
		switch i % 3 {
		case 0:
			e.Op, e.Before = eventcenter.OpInsert, nil
		case 2:
			e.Op, e.After = eventcenter.OpDelete, nil
		}
		evs = append(evs, e)
	}
	rows := toRows(evs)
	data, _, err := encodeSegment(rows, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifySegment(data, rows); err != nil {
		t.Fatalf("the rows encoded: %v", err)
	}
	changes := map[string]func(r []segRow) []segRow{
		"source":          func(r []segRow) []segRow { r[7].Source = "other"; return r },
		"key":             func(r []segRow) []segRow { r[2999].Key = "k9999"; return r },
		"time":            func(r []segRow) []segRow { r[1500].Time = r[1500].Time.Add(time.Nanosecond); return r },
		"pos_log":         func(r []segRow) []segRow { r[10].PosLog = 2; return r },
		"pos_offset":      func(r []segRow) []segRow { r[10].PosOffset++; return r },
		"op":              func(r []segRow) []segRow { r[1].Op = "delete"; return r },
		"stored_at":       func(r []segRow) []segRow { r[0].StoredAt = t0; return r },
		"after bytes":     func(r []segRow) []segRow { r[5].After = append([]byte{}, r[6].After...); return r },
		"after null":      func(r []segRow) []segRow { r[4].After = nil; return r },
		"after not null":  func(r []segRow) []segRow { r[5].After = r[4].After; return r },
		"before not null": func(r []segRow) []segRow { r[0].Before = r[1].Before; return r },
		"a row fewer":     func(r []segRow) []segRow { return r[:len(r)-1] },
		"a row more":      func(r []segRow) []segRow { return append(r, r[len(r)-1]) },
	}
	for name, change := range changes {
		want := change(append([]segRow(nil), rows...))
		if err := verifySegment(data, want); err == nil {
			t.Errorf("%s: a segment that differs verified", name)
		}
	}
	damaged := append([]byte(nil), data...)
	damaged = damaged[:len(damaged)-100]
	if err := verifySegment(damaged, rows); err == nil {
		t.Error("a truncated object verified")
	}
}

// TestVerifySegmentRandom: verifySegment accepts what encodeSegment wrote
// for random segments: keys of several events, no, empty and full After
// and Before rows, tiny row groups. (It failed before a null and an empty
// value both stood for no row: the writer writes either for a nil slice.)
func TestVerifySegmentRandom(t *testing.T) {
	t0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	for seed := range 200 {
		rnd := rand.New(rand.NewPCG(uint64(seed), 1))
		var evs []eventcenter.Event
		for i := range 1 + rnd.IntN(30) {
			e := eventcenter.Event{
				Source: "verify.o", Key: fmt.Sprintf("k%d", rnd.IntN(5)), Time: t0.Add(time.Duration(rnd.IntN(10)) * time.Millisecond),
				Pos: eventcenter.Position{Log: 1, Offset: uint64(i)}, Op: eventcenter.OpUpdate, StoredAt: t0.Add(time.Duration(i)),
			}
			switch rnd.IntN(3) {
			case 1:
				e.After = eventcenter.Row{}
			case 2:
				e.After = eventcenter.Row{"n": int64(rnd.IntN(100)), "s": "x"}
			}
			if rnd.IntN(2) == 0 {
				e.Before = eventcenter.Row{"n": int64(rnd.IntN(100))}
			}
			evs = append(evs, e)
		}
		sortKeyOrder(evs)
		rows := toRows(evs)
		data, _, err := encodeSegment(rows, 1+rnd.IntN(5))
		if err != nil {
			t.Fatal(err)
		}
		if err := verifySegment(data, rows); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

// TestRowsOfKey: rowsOfKey, which reads a key's rows alone, returns what
// the whole row group's rows hold for the key, for every key of a segment
// (keys of one event and of many, first and last of their row group) and
// none for keys it lacks.
func TestRowsOfKey(t *testing.T) {
	t0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	var evs []eventcenter.Event
	for i := range 600 {
		evs = append(evs, eventcenter.Event{
			Source: "verify.o", Key: fmt.Sprintf("k%03d", i%97*i%13), Time: t0.Add(time.Duration(i) * time.Second),
			Pos: eventcenter.Position{Log: 1, Offset: uint64(i)}, Op: eventcenter.OpUpdate, StoredAt: t0,
			After: eventcenter.Row{"n": int64(i)},
		})
	}
	sortKeyOrder(evs)
	data, seg, err := encodeSegment(toRows(evs), 50)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	for g, rg := range f.RowGroups() {
		r := parquet.NewGenericRowGroupReader[segRow](rg)
		all, err := readAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		keys := []string{"", "k", "zz", string(seg.RowGroups[g].FirstKey) + "0"}
		for _, row := range all {
			keys = append(keys, row.Key)
		}
		for _, k := range keys {
			got, err := rowsOfKey(rg, k)
			if err != nil {
				t.Fatalf("group %d key %q: %v", g, k, err)
			}
			if want := keyRows(all, k); !reflect.DeepEqual(got, want) && (len(got) > 0 || len(want) > 0) {
				t.Fatalf("group %d key %q: %d rows, want %d", g, k, len(got), len(want))
			}
		}
	}
}
