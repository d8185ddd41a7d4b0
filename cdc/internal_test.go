package cdc

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

func TestAcksFrontier(t *testing.T) {
	a := newAcks(Checkpoint{File: "binlog.000001", Pos: 4})
	t0 := time.Unix(1000, 0)
	t1, t2 := a.begin(), (*txn)(nil)
	a.sent(t1)
	a.sent(t1)
	a.end(t1, Checkpoint{File: "binlog.000001", Pos: 100}, t0)
	t2 = a.begin()
	a.sent(t2)
	a.end(t2, Checkpoint{File: "binlog.000001", Pos: 200}, t0.Add(time.Second))
	a.end(nil, Checkpoint{File: "binlog.000001", Pos: 300}, t0.Add(2*time.Second)) // a transaction of other tables
	if cp := a.checkpoint(); cp.Pos != 4 {
		t.Fatalf("frontier %d before any ack", cp.Pos)
	}
	a.acked(t2, nil) // out of order: t1 still pending
	if cp := a.checkpoint(); cp.Pos != 4 {
		t.Fatalf("frontier %d passed an unacknowledged transaction", cp.Pos)
	}
	a.acked(t1, nil)
	if cp := a.checkpoint(); cp.Pos != 4 {
		t.Fatalf("frontier %d with one record of t1 pending", cp.Pos)
	}
	a.acked(t1, nil)
	if cp := a.checkpoint(); cp.Pos != 300 {
		t.Fatalf("frontier %d, want 300", cp.Pos)
	}
	if c := a.claim(2 * time.Second); !c.Equal(t0) {
		t.Errorf("claim %v, want %v", c, t0)
	}
	// A heartbeat behind a pending transaction counts once it is acked.
	t3 := a.begin()
	a.sent(t3)
	a.end(t3, Checkpoint{File: "binlog.000002", Pos: 4}, t0.Add(3*time.Second))
	beat := t0.Add(time.Hour)
	a.heartbeat(beat)
	if c := a.claim(2 * time.Second); !c.Equal(t0) {
		t.Errorf("claim %v moved before the ack", c)
	}
	a.acked(t3, nil)
	if c := a.claim(2 * time.Second); !c.Equal(beat.Add(-2 * time.Second)) {
		t.Errorf("claim %v, want the heartbeat less lateness", c)
	}
	var fatal error
	a.onFatal = func(err error) { fatal = err }
	t4 := a.begin()
	a.sent(t4)
	a.acked(t4, errors.New("boom"))
	if fatal == nil {
		t.Error("a failed record is not fatal")
	}
}

func TestParseValues(t *testing.T) {
	got, err := parseValues("enum('new','paid','late''s','a,b')")
	if err != nil || !slices.Equal(got, []string{"new", "paid", "late's", "a,b"}) {
		t.Errorf("parseValues: %q %v", got, err)
	}
}

func TestHistory(t *testing.T) {
	dir := t.TempDir()
	h, err := openHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	v1 := &Table{Database: "d", Name: "t", Columns: []Column{{Name: "id", DataType: "int"}}, Key: []int{0}}
	v2 := &Table{Database: "d", Name: "t", Columns: []Column{{Name: "id", DataType: "int"}, {Name: "x", DataType: "int"}}, Key: []int{0}}
	h.record(schemaVersion{At: Coord{1, 100}, Table: v1})
	h.record(schemaVersion{At: Coord{2, 50}, Table: v2})
	h.close()
	h, _ = openHistory(dir)
	defer h.close()
	for _, tc := range []struct {
		at   Coord
		want *Table
	}{{Coord{1, 4}, v1}, {Coord{1, 100}, v1}, {Coord{2, 49}, v1}, {Coord{2, 50}, v2}, {Coord{9, 0}, v2}} {
		v, ok := h.at("d", "t", tc.at)
		if !ok || !v.Table.Equal(tc.want) {
			t.Errorf("at %v: %+v", tc.at, v.Table)
		}
	}
}

// TestTxnBufferSpills: the events of a transaction come back in the order
// added, with their values, whether kept in memory or spilled; the spill
// file is gone after the drain.
func TestTxnBufferSpills(t *testing.T) {
	dir := t.TempDir()
	for _, limit := range []int{1 << 20, 2000, 1} {
		b := &txnBuffer{dir: dir, limit: limit}
		var want []eventcenter.Event
		for i := range 50 {
			e := eventcenter.Event{Source: "mysql.d.t", Key: strconv.Itoa(i), Time: time.Unix(1000, 0).UTC(),
				Pos: eventcenter.Position{Log: 3, Offset: uint64(i)}, Op: eventcenter.OpUpdate,
				Before: eventcenter.Row{"id": int64(i), "v": "old"},
				After:  eventcenter.Row{"id": int64(i), "v": strings.Repeat("x", i*10), "d": eventcenter.Decimal("1.50"), "b": []byte{0, byte(i)}}}
			if err := b.add(fmt.Sprintf("topic%d", i%3), e); err != nil {
				t.Fatal(err)
			}
			want = append(want, e)
		}
		if spilled := b.spill != nil; spilled != (limit < 1<<20) {
			t.Errorf("limit %d: spilled %v", limit, spilled)
		}
		var got []eventcenter.Event
		err := b.drain(func(topic string, e *eventcenter.Event) error {
			if want := fmt.Sprintf("topic%d", len(got)%3); topic != want {
				t.Errorf("limit %d: event %d in topic %s, want %s", limit, len(got), topic, want)
			}
			got = append(got, *e)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("limit %d: %d events back, want %d", limit, len(got), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("limit %d: event %d back as\n%+v\nwant\n%+v", limit, i, got[i], want[i])
			}
		}
		if files, _ := filepath.Glob(filepath.Join(dir, spillPattern)); len(files) != 0 {
			t.Errorf("limit %d: spill files left: %v", limit, files)
		}
		if len(b.mem) != 0 || b.spill != nil {
			t.Errorf("limit %d: the buffer is not empty after the drain", limit)
		}
	}
}

// TestParseDateTime: the fast parse agrees with time.ParseInLocation on
// every form MySQL writes, in zones with DST gaps and folds, and leaves
// everything else to it.
func TestParseDateTime(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	cases := []string{
		"2026-12-03", "2024-02-29", "2000-02-29 00:00:00", "1999-12-31 23:59:59", "9999-12-31 23:59:59.999999",
		"0001-01-01 00:00:00", "2026-03-29 02:30:00", "2026-10-25 02:30:00.5", "2026-03-08 02:30:00.000001",
		"2026-11-01 01:30:00.12", "2026-01-01 00:00:00.1234", "1970-01-01 00:00:00.123456",
	}
	base := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 2000 {
		at := base.Add(time.Duration(i) * 1234567891234567 % (250 * 365 * 24 * time.Hour))
		frac := i % 7
		s := at.Format("2006-01-02 15:04:05")
		if frac > 0 {
			s += "." + fmt.Sprintf("%09d", at.Nanosecond())[:frac]
		}
		cases = append(cases, s, at.Format("2006-01-02"))
	}
	for _, loc := range []*time.Location{time.UTC, berlin, ny} {
		for _, s := range cases {
			layout := "2006-01-02 15:04:05.999999"
			if len(s) == 10 {
				layout = "2006-01-02"
			}
			want, err := time.ParseInLocation(layout, s, loc)
			got, ok := parseDateTime(s, loc)
			if err != nil || !ok || !got.Equal(want) || got.Location() != want.Location() {
				t.Errorf("%s in %v: %v %v, time.ParseInLocation %v %v", s, loc, got, ok, want, err)
			}
		}
	}
	for _, s := range []string{
		"", "2026-02-30", "2023-02-29", "2026-13-01", "2026-00-10", "2026-12-03 24:00:00", "2026-12-03 12:60:00",
		"2026-12-03 12:00:60", "2026-12-03 12:00:00.", "2026-12-03 12:00:00.1234567", "2026-12-03T12:00:00",
		"2026/12/03", "2026-12-3 ", "+026-12-03", "2026-12-03 12:00:00.12a",
	} {
		if got, ok := parseDateTime(s, time.UTC); ok {
			t.Errorf("parseDateTime(%q) = %v, want it left to time.ParseInLocation", s, got)
		}
	}
}

func BenchmarkParseTime(b *testing.B) {
	for b.Loop() {
		if _, err := parseTime("2026-12-03 10:12:17.123456", time.UTC); err != nil {
			b.Fatal(err)
		}
	}
}
