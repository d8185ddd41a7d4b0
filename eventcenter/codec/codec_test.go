package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

func TestEventKeyRoundTripAndOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type row struct {
		t   time.Time
		pos eventcenter.Position
		k   []byte
	}
	var rows []row
	for i := 0; i < 2000; i++ {
		tm := base.Add(time.Duration(rng.Int64N(1e12)) - 5e11)
		pos := eventcenter.Position{Log: rng.Uint64N(3), Offset: rng.Uint64()}
		k := EventKey(nil, "src", "key\x00\xff", tm, pos)
		s, key, gt, gp, err := ParseEventKey(k)
		if err != nil || s != "src" || key != "key\x00\xff" || !gt.Equal(tm) || gp != pos {
			t.Fatalf("round trip: %q %q %v %v %v", s, key, gt, gp, err)
		}
		rows = append(rows, row{tm, pos, k})
	}
	// Newer (time, pos) must sort first.
	for i := range rows {
		for j := range rows[:i] {
			a, b := rows[i], rows[j]
			want := -a.t.Compare(b.t)
			if want == 0 {
				want = -a.pos.Compare(b.pos)
			}
			if got := bytes.Compare(a.k, b.k); got != want {
				t.Fatalf("order of %v/%v vs %v/%v: bytes %d, want %d", a.t, a.pos, b.t, b.pos, got, want)
			}
		}
	}
}

func TestHistoryBoundsSelectHalfOpenRange(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	from, to := base.Add(10), base.Add(20)
	start, end := HistoryBounds("s", "k", from, to)
	for d := time.Duration(0); d < 30; d++ {
		for _, pos := range []eventcenter.Position{{}, {Log: ^uint64(0), Offset: ^uint64(0)}} {
			k := EventKey(nil, "s", "k", base.Add(d), pos)
			in := bytes.Compare(k, start) >= 0 && bytes.Compare(k, end) < 0
			if want := d >= 10 && d < 20; in != want {
				t.Fatalf("time +%d pos %v: in range %v, want %v", d, pos, in, want)
			}
		}
	}
}

// TestAsOfSeekTail pins AsOfSeekTail to what AsOfSeek appends after the
// key's prefix (AsOfBatch finds the prefix by it).
func TestAsOfSeekTail(t *testing.T) {
	for _, key := range []string{"", "k", strings.Repeat("k", 300)} {
		prefix := KeyPrefix([]byte{7}, "src", key)
		seek := AsOfSeek([]byte{7}, "src", key, time.Unix(1, 2))
		if !bytes.HasPrefix(seek, prefix) || len(seek)-len(prefix) != AsOfSeekTail {
			t.Fatalf("key of %d bytes: AsOfSeek appends %d bytes after KeyPrefix (shared prefix %v), AsOfSeekTail says %d",
				len(key), len(seek)-len(prefix), bytes.HasPrefix(seek, prefix), AsOfSeekTail)
		}
	}
}

func TestTimeKeyOrder(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := TimeKey(nil, 1, "s", "zz", base, eventcenter.Position{Offset: 9})
	b := TimeKey(nil, 1, "s", "aa", base.Add(1), eventcenter.Position{})
	if bytes.Compare(a, b) >= 0 {
		t.Fatal("time table must order by time before key")
	}
	s, k, tm, pos, err := ParseTimeKey(a)
	if err != nil || s != "s" || k != "zz" || !tm.Equal(base) || pos.Offset != 9 {
		t.Fatalf("round trip: %q %q %v %v %v", s, k, tm, pos, err)
	}
}

func TestBodyRoundTrip(t *testing.T) {
	stored := time.Date(2026, 5, 1, 2, 3, 4, 5, time.UTC)
	in := eventcenter.Event{
		Op:       eventcenter.OpUpdate,
		StoredAt: stored,
		After: eventcenter.Row{
			"nil": nil, "t": true, "f": false, "i": int64(-7), "x": 1.5,
			"s": "héllo", "b": []byte{0, 1, 255}, "d": eventcenter.Decimal("12.3400"),
			"at": stored.Add(-time.Hour),
		},
		Before: eventcenter.Row{"s": "before", "d": eventcenter.Decimal("-1"), "long name": ""},
	}
	var out eventcenter.Event
	body := EncodeBody(nil, &in)
	if err := DecodeBody(body, &out); err != nil {
		t.Fatal(err)
	}
	// The decoded names and strings are the body's copies: overwriting
	// the bytes it was decoded from changes none of them.
	clear(body)
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", out, in)
	}
	if ok, err := DecodeBodyStoredBy(EncodeBody(nil, &in), stored.Add(-1), &out); ok || err != nil {
		t.Fatalf("a body stored after knownAt: %v, %v", ok, err)
	}
	for _, knownAt := range []time.Time{{}, stored} {
		var got eventcenter.Event
		if ok, err := DecodeBodyStoredBy(EncodeBody(nil, &in), knownAt, &got); !ok || err != nil || !reflect.DeepEqual(in, got) {
			t.Fatalf("a body stored by knownAt %v: %v, %v, %#v", knownAt, ok, err, got)
		}
	}
	if got, err := BodyStoredAt(EncodeBody(nil, &in)); err != nil || !got.Equal(stored) {
		t.Fatalf("stored-at %v, %v", got, err)
	}
	// Rows above the one copy's bound decode value by value, alike.
	big := eventcenter.Event{Op: eventcenter.OpUpdate, StoredAt: stored,
		After: eventcenter.Row{"s": strings.Repeat("x", 5000), "b": make([]byte, 100), "d": eventcenter.Decimal("1.5")}, Before: eventcenter.Row{"s": "small"}}
	body = EncodeBody(nil, &big)
	if err := DecodeBody(body, &out); err != nil {
		t.Fatal(err)
	}
	clear(body)
	if !reflect.DeepEqual(big, out) {
		t.Fatalf("round trip of %d bytes: got %#v", len(body), out)
	}
	del := eventcenter.Event{Op: eventcenter.OpDelete, StoredAt: stored}
	if err := DecodeBody(EncodeBody(nil, &del), &out); err != nil || out.After != nil || out.Before != nil {
		t.Fatalf("delete: %v %#v", err, out)
	}
}

// TestRowSize: Row.Size, which the size limits bound, is the length of the
// row's encoding, and AppendColumns of its columns in order writes the
// encoding AppendRow writes.
func TestRowSize(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	str := func() string { return strings.Repeat("x", []int{0, 1, 127, 128, 300, 20000}[rng.IntN(6)]) }
	for i := 0; i < 2000; i++ {
		r := eventcenter.Row{}
		for c := rng.IntN(40); c > 0; c-- {
			var v any
			switch rng.IntN(9) {
			case 0:
				v = nil
			case 1:
				v = rng.IntN(2) == 0
			case 2:
				v = int64(rng.Uint64())
			case 3:
				v = int(rng.Int64N(300) - 150)
			case 4:
				v = rng.NormFloat64()
			case 5:
				v = str()
			case 6:
				v = []byte(str())
			case 7:
				v = eventcenter.Decimal(str())
			case 8:
				v = time.Unix(0, rng.Int64()-rng.Int64()/2)
			}
			r[fmt.Sprint(str(), c)] = v
		}
		enc := AppendRow(nil, r)
		if got, want := r.Size(), len(enc); got != want {
			t.Fatalf("row of %d columns: Size %d, encoding %d bytes", len(r), got, want)
		}
		cols := slices.Sorted(maps.Keys(r))
		vals := make([]any, len(cols))
		for i, c := range cols {
			vals[i] = r[c]
		}
		if cenc := AppendColumns(nil, cols, vals); !bytes.Equal(cenc, enc) {
			t.Fatalf("row of %d columns: AppendColumns %q, AppendRow %q", len(r), cenc, enc)
		}
	}
}

// TestReadRowRefusesDuplicates: a row with a column twice is corrupt, not
// read with one value silently dropped.
func TestReadRowRefusesDuplicates(t *testing.T) {
	b := AppendRow(nil, eventcenter.Row{"a": int64(1), "b": int64(2)})
	// count, len "a", tag varint, len "b", tag varint
	if i := bytes.LastIndexByte(b, 'b'); i != 6 {
		t.Fatalf("encoding %q: the second name is at %d, not 6", b, i)
	}
	b[6] = 'a'
	if r, _, err := ReadRow(b); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "duplicate") {
		t.Fatalf("row %q read as %v, %v; want ErrCorrupt for a duplicate column", b, r, err)
	}
}

func TestCheckTime(t *testing.T) {
	for _, c := range []struct {
		t  time.Time
		ok bool
	}{
		{eventcenter.MinTime, true},
		{eventcenter.MaxTime, true},
		{eventcenter.MinTime.Add(-1), false},
		{eventcenter.MaxTime.Add(1), false},
		{time.Unix(0, math.MaxInt64).Add(1), false},
		{time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 3600)), true},
	} {
		if err := CheckTime(c.t); (err == nil) != c.ok {
			t.Errorf("CheckTime(%v) = %v, want ok %v", c.t, err, c.ok)
		}
	}
	if err := CheckRow(eventcenter.Row{"due": time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil || !strings.Contains(err.Error(), `"due"`) {
		t.Errorf("CheckRow of a time in 2300: %v", err)
	}
	if err := CheckRow(eventcenter.Row{"n": int32(1)}); err == nil {
		t.Error("CheckRow of an int32: no error")
	}
}

// FuzzDecodeBody: decoding any bytes returns an error or a body, never
// panics; a body it returns encodes to bytes that decode to the same body.
func FuzzDecodeBody(f *testing.F) {
	f.Add(EncodeBody(nil, &eventcenter.Event{Op: 1, StoredAt: time.Unix(1, 0), After: eventcenter.Row{"a": "b"}}))
	f.Add(EncodeBody(nil, &eventcenter.Event{Op: 2, StoredAt: time.Unix(1, 0), After: eventcenter.Row{}, Before: eventcenter.Row{"x": math.Inf(-1), "t": time.Unix(0, math.MinInt64)}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e, again eventcenter.Event
		if err := DecodeBody(b, &e); err != nil {
			return
		}
		enc := EncodeBody(nil, &e)
		if err := DecodeBody(enc, &again); err != nil {
			t.Fatalf("a decoded body re-encodes to %q, which does not decode: %v", enc, err)
		}
		if enc2 := EncodeBody(nil, &again); !bytes.Equal(enc, enc2) {
			t.Fatalf("a decoded body changed on the way round:\n%q\n%q", enc, enc2)
		}
	})
}

// FuzzSplitBody: SplitBody accepts every body EncodeBody writes (as
// DecodeBody reads it) and nothing DecodeBody refuses, with the same
// operation and stored-at, and rows that ReadRow decodes whole to
// DecodeBody's, whose every column RowValue finds; it never panics.
func FuzzSplitBody(f *testing.F) {
	stored := time.Date(2026, 5, 1, 2, 3, 4, 5, time.UTC)
	f.Add(EncodeBody(nil, &eventcenter.Event{Op: 1, StoredAt: stored, After: eventcenter.Row{"a": "b"}}))
	f.Add(EncodeBody(nil, &eventcenter.Event{Op: 2, StoredAt: stored, After: eventcenter.Row{}, Before: eventcenter.Row{"x": math.Inf(-1), "t": time.Unix(0, math.MinInt64)}}))
	f.Add(EncodeBody(nil, &eventcenter.Event{Op: 3, StoredAt: stored, Before: eventcenter.Row{
		"nil": nil, "t": true, "f": false, "i": int64(-7), "x": 1.5, "s": "héllo", "b": []byte{0, 1, 255}, "d": eventcenter.Decimal("12.3400"), "at": stored}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		op, at, after, before, err := SplitBody(b)
		var e eventcenter.Event
		if derr := DecodeBody(b, &e); derr != nil {
			if err == nil {
				t.Fatalf("SplitBody accepts %q, which DecodeBody refuses: %v", b, derr)
			}
			return
		}
		if err != nil {
			if enc := EncodeBody(nil, &e); bytes.Equal(enc, b) {
				t.Fatalf("SplitBody refuses %q, which EncodeBody writes: %v", b, err)
			}
			return // a row's columns out of order: not AppendRow's
		}
		if op != e.Op || !at.Equal(e.StoredAt) || (after == nil) != (e.After == nil) || (before == nil) != (e.Before == nil) {
			t.Fatalf("SplitBody(%q) = %v %v %q %q; DecodeBody: %+v", b, op, at, after, before, e)
		}
		for _, r := range []struct {
			enc  []byte
			want eventcenter.Row
		}{{after, e.After}, {before, e.Before}} {
			if r.enc == nil {
				continue
			}
			got, rest, err := ReadRow(r.enc)
			if err != nil || len(rest) != 0 || !bytes.Equal(AppendRow(nil, got), AppendRow(nil, r.want)) { // NaN != NaN
				t.Fatalf("row %q of %q: %v (%d bytes left), want %v: %v", r.enc, b, got, len(rest), r.want, err)
			}
			for col, want := range r.want {
				v, ok, err := RowValue(r.enc, col)
				if !ok || err != nil || !bytes.Equal(AppendRow(nil, eventcenter.Row{col: v}), AppendRow(nil, eventcenter.Row{col: want})) {
					t.Fatalf("RowValue(%q, %q) = %v, %v, %v; want %v", r.enc, col, v, ok, err, want)
				}
				if _, has := r.want[col+"\x00"]; has {
					continue
				}
				if _, ok, err := RowValue(r.enc, col+"\x00"); ok || err != nil {
					t.Fatalf("RowValue(%q) of a column it has not: %v, %v", r.enc, ok, err)
				}
			}
		}
	})
}

// BenchmarkReadRow: a training-set state row (a double, an integer and a
// string column) decoded.
//
//	go test ./eventcenter/codec -run '^$' -bench ReadRow
func BenchmarkReadRow(b *testing.B) {
	enc := AppendRow(nil, eventcenter.Row{"balance": 1234.5, "score": int64(712), "branch": "north"})
	for b.Loop() {
		if _, _, err := ReadRow(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// A row whose column count its bytes cannot hold is corrupt before its map
// is made: a megabyte claiming a million columns allocates no more than
// its size.
func TestReadRowBoundsItsCount(t *testing.T) {
	b := binary.AppendUvarint(nil, 1<<20)
	b = append(b, make([]byte, 1<<20)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := ReadRow(b)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "row length") {
		t.Fatalf("ReadRow = %v; want ErrCorrupt (row length)", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
		t.Fatalf("ReadRow of a corrupt count allocated %d bytes", got)
	}
	// Two bytes a column is enough: empty names and nil values.
	ok := binary.AppendUvarint(nil, 1)
	ok = append(ok, 0, tagNil)
	if r, rest, err := ReadRow(ok); err != nil || len(r) != 1 || len(rest) != 0 {
		t.Fatalf("ReadRow(%x) = %v, %x, %v; want one column", ok, r, rest, err)
	}
}
