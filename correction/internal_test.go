package correction

import (
	"database/sql"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/cdc"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

var pairs = &cdc.Table{Database: "shop", Name: "pairs", Columns: []cdc.Column{
	{Name: "tenant", DataType: "varchar"}, {Name: "seq", DataType: "int"}, {Name: "amount", DataType: "decimal"}, {Name: "v", DataType: "varchar"},
}, Key: []int{0, 1}}

// TestWhere: a chunk's condition compares key tuples as MySQL orders them
// (lexicographically, each column typed), and a key chunk names its keys.
func TestWhere(t *testing.T) {
	dec := &cdc.Table{Columns: []cdc.Column{{Name: "d", DataType: "decimal"}, {Name: "b", DataType: "varbinary"}}, Key: []int{0, 1}}
	for _, tc := range []struct {
		table *cdc.Table
		ch    Chunk
		where string
		args  []any
	}{
		{pairs, Chunk{}, "TRUE", nil},
		{pairs, Chunk{From: [][]byte{[]byte("acme"), []byte("7")}},
			"TRUE AND (`tenant` > ? OR (`tenant` = ? AND `seq` >= ?))", []any{"acme", "acme", int64(7)}},
		{pairs, Chunk{From: [][]byte{[]byte("a"), []byte("1")}, To: [][]byte{[]byte("b"), []byte("2")}},
			"TRUE AND (`tenant` > ? OR (`tenant` = ? AND `seq` >= ?)) AND (`tenant` < ? OR (`tenant` = ? AND `seq` < ?))",
			[]any{"a", "a", int64(1), "b", "b", int64(2)}},
		{pairs, Chunk{Keys: [][][]byte{{[]byte("a"), []byte("1")}, {[]byte("b"), []byte("2")}}},
			"(`tenant` = ? AND `seq` = ?) OR (`tenant` = ? AND `seq` = ?)", []any{"a", int64(1), "b", int64(2)}},
		{pairs, Chunk{Keys: [][][]byte{}}, "FALSE", nil},
		// A decimal is inlined as an exact literal; binary stays bytes.
		{dec, Chunk{To: [][]byte{[]byte("-1.50"), {0xff, 0}}}, "TRUE AND (`d` < -1.50 OR (`d` = -1.50 AND `b` < ?))", []any{[]byte{0xff, 0}}},
		// ENUM and SET compare by their numbers, as MySQL orders them; an
		// ENUM's range is a list of its members' numbers (MariaDB reads
		// it as a range of the key).
		{members, Chunk{From: [][]byte{[]byte("b"), []byte("q,p")}},
			"TRUE AND (`e` IN (3) OR (`e` = ? AND `s` >= ?))", []any{uint64(2), uint64(3)}},
		{members, Chunk{From: [][]byte{[]byte("a"), []byte("q,p")}},
			"TRUE AND (FALSE OR (`e` = ? AND `s` >= ?))", []any{uint64(3), uint64(3)}},
		// An equality compares the text (a value no member has matches no
		// row); an empty value is a member's number where it is one.
		{members, Chunk{Keys: [][][]byte{{[]byte("Z"), []byte("")}, {[]byte("gone"), []byte("q")}}},
			"(`e` = ? AND `s` = ?) OR (`e` = ? AND `s` = ?)", []any{"Z", "", "gone", "q"}},
		{emptyMember, Chunk{From: [][]byte{[]byte("")}, To: [][]byte{[]byte("x")}}, "TRUE AND `e` IN (1, 2) AND `e` IN (0, 1)", nil},
		{members, Chunk{To: [][]byte{[]byte(""), []byte("")}}, "TRUE AND (FALSE OR (`e` = ? AND `s` < ?))", []any{uint64(0), uint64(0)}},
	} {
		where, args, err := tc.ch.where(tc.table)
		if err != nil {
			t.Fatal(err)
		}
		if where != tc.where || !reflect.DeepEqual(args, tc.args) {
			t.Errorf("%+v:\n got %s %v\nwant %s %v", tc.ch, where, args, tc.where, tc.args)
		}
	}
	if _, _, err := (&Chunk{From: [][]byte{[]byte("1; DROP TABLE x")}}).where(dec); err == nil {
		t.Error("a bound of the wrong arity was accepted")
	}
	if _, _, err := (&Chunk{From: [][]byte{[]byte("1; DROP"), []byte("x")}}).where(dec); err == nil {
		t.Error("a decimal bound that is not a number was inlined")
	}
	if _, _, err := (&Chunk{From: [][]byte{[]byte("y"), []byte("q")}}).where(members); err == nil {
		t.Error("a bound that is not a member of its ENUM was accepted")
	}
}

// emptyMember has a key of an ENUM with ” as a member.
var emptyMember = &cdc.Table{Columns: []cdc.Column{{Name: "e", DataType: "enum", Values: []string{"", "x"}}}, Key: []int{0}}

// members has a key of an ENUM whose members are not in text order and a
// SET.
var members = &cdc.Table{Columns: []cdc.Column{
	{Name: "e", DataType: "enum", Values: []string{"z", "b", "a"}}, {Name: "s", DataType: "set", Values: []string{"q", "p"}},
}, Key: []int{0, 1}}

// TestKeys: event keys split into key column texts and back.
func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		key  string
		n    int
		want [][]byte
	}{
		{"42", 1, [][]byte{[]byte("42")}},
		{`"acme","7"`, 2, [][]byte{[]byte("acme"), []byte("7")}},
		{`"a,\"b","7"`, 2, [][]byte{[]byte(`a,"b`), []byte("7")}},
	} {
		got, err := parseKey(tc.key, tc.n)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseKey(%s) = %q, %v", tc.key, got, err)
		}
		if tc.n == 2 {
			back, err := keyFromText(pairs, got, time.UTC)
			if err != nil || back != tc.key {
				t.Errorf("keyFromText(%q) = %s, %v", got, back, err)
			}
		}
	}
	for _, bad := range []string{`"a"`, `"a","b","c"`, `a,b`} {
		if _, err := parseKey(bad, 2); err == nil {
			t.Errorf("parseKey(%s) accepted", bad)
		}
	}
}

// TestRowText: a MySQL row's text hashes like the stored encoding of the
// row the CDC types it as, whatever the order of the table's columns; a
// row that differs in any value, or in a value's type, hashes differently;
// a value the codec cannot write leaves the row unhashed.
func TestRowText(t *testing.T) {
	table := &cdc.Table{Database: "shop", Name: "t", Columns: []cdc.Column{
		{Name: "s", DataType: "varchar"}, {Name: "id", DataType: "bigint"}, {Name: "amount", DataType: "decimal"},
		{Name: "at", DataType: "datetime"}, {Name: "b", DataType: "varbinary"}, {Name: "n", DataType: "varchar"},
	}, Key: []int{1}}
	shape := shapeOf(table)
	base := [][]byte{[]byte("x"), []byte("1"), []byte("1.50"), []byte("2026-12-03 01:02:03.000004"), {1}, nil}
	sum := func(text [][]byte) (uint64, bool) {
		t.Helper()
		enc, ok, err := rowText(nil, table, &shape, text, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		return encodedSum(enc), ok
	}
	typed := eventcenter.Row{}
	for i, c := range table.Columns {
		v, err := cdc.ValueFromText(&c, base[i], time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		typed[c.Name] = v
	}
	got, ok := sum(base)
	if !ok || got != encodedSum(codec.AppendRow(nil, typed)) {
		t.Errorf("the row's text hashes unlike its stored encoding (hashed: %v)", ok)
	}
	for i, change := range [][]byte{[]byte("y"), []byte("2"), []byte("1.5"), []byte("2026-12-03 01:02:03.000005"), {2}, []byte("")} {
		text := slices.Clone(base)
		text[i] = change
		if s, _ := sum(text); s == got {
			t.Errorf("a row with column %s changed hashes like the base row", table.Columns[i].Name)
		}
	}
	text := slices.Clone(base)
	text[3] = []byte("9999-12-31 23:59:59")
	if _, ok := sum(text); ok && codec.CheckTime(time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)) != nil {
		t.Error("a row holding a time the codec cannot write was hashed")
	}
	text[1] = []byte("not a number")
	if _, _, err := rowText(nil, table, &shape, text, time.UTC); err == nil {
		t.Error("a BIGINT's bad text was hashed")
	}
	if got := fmt.Sprint(diffColumns(typed, maps.Clone(typed))); got != "[]" {
		t.Errorf("diffColumns of equal rows: %s", got)
	}
}

// BenchmarkRowText hashes a row of the benchmark table's shape (five
// columns) from MySQL's text, as a chunk does for every row it reads
// ("text"), beside the way it did before: each value typed by
// cdc.ValueFromText, then the typed row encoded and hashed ("typed").
//
//	go test -run '^$' -bench RowText ./correction/
func BenchmarkRowText(b *testing.B) {
	table := &cdc.Table{Columns: []cdc.Column{{Name: "id", DataType: "bigint"}, {Name: "a", DataType: "int"},
		{Name: "s", DataType: "varchar"}, {Name: "amount", DataType: "decimal"}, {Name: "at", DataType: "datetime"}}, Key: []int{0}}
	shape := shapeOf(table)
	text := [][]byte{[]byte("123456"), []byte("456"), []byte("s123456"), []byte("23456.56"), []byte("2026-01-01 00:02:03.456000")}
	var enc []byte
	var sum uint64
	b.Run("text", func(b *testing.B) {
		for b.Loop() {
			enc, _, _ = rowText(enc[:0], table, &shape, text, time.UTC)
			sum += encodedSum(enc)
		}
	})
	b.Run("typed", func(b *testing.B) {
		for b.Loop() {
			vals := make([]any, len(table.Columns))
			for i := range table.Columns {
				v, err := cdc.ValueFromText(&table.Columns[i], text[i], time.UTC)
				if err != nil {
					b.Fatal(err)
				}
				vals[shape.place[i]] = v
			}
			enc = codec.AppendColumns(enc[:0], shape.names, vals)
			sum += encodedSum(enc)
		}
	})
}

// TestChunkTexts: a chunk's values come back as added, NULL apart from a
// value of no bytes.
func TestChunkTexts(t *testing.T) {
	x := &chunkTexts{data: make([]byte, 0, 4)}
	in := [][]byte{nil, {}, []byte("abc"), nil, []byte("longer than the first block"), {}, []byte("z")}
	for _, b := range in {
		x.add(b)
	}
	for i, want := range in {
		got := x.value(i)
		if (got == nil) != (want == nil) || string(got) != string(want) {
			t.Errorf("value %d: %q (nil %v), want %q (nil %v)", i, got, got == nil, want, want == nil)
		}
	}
}

// TestIntegerRowKey: a key of one integer column printed in canonical
// decimal is taken as printed, and that is the key the CDC's typing makes;
// any other text takes the CDC's path.
func TestIntegerRowKey(t *testing.T) {
	for _, unsigned := range []bool{false, true} {
		table := &cdc.Table{Columns: []cdc.Column{{Name: "id", DataType: "bigint", Unsigned: unsigned}}, Key: []int{0}}
		for _, text := range []string{"0", "7", "-7", "42", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
			"-9223372036854775809", "18446744073709551615", "18446744073709551616", "9999999999999999999", "007", "-0", "+7", "", "1e3", " 7"} {
			raw := []sql.RawBytes{sql.RawBytes(text)}
			slow, slowErr := rowKey(table, raw, make([]any, 1), false, time.UTC)
			fast, fastErr := rowKey(table, raw, make([]any, 1), true, time.UTC)
			if canonicalInt([]byte(text), unsigned) && fast != text {
				t.Errorf("unsigned %v, %q: fast path %q", unsigned, text, fast)
			}
			if fast != slow || (fastErr == nil) != (slowErr == nil) {
				t.Errorf("unsigned %v, %q: fast path %q (%v), the CDC's %q (%v)", unsigned, text, fast, fastErr, slow, slowErr)
			}
		}
	}
	for _, text := range []string{"007", "-0", "", "-", "+1", "1.0", "9223372036854775808"} {
		if canonicalInt([]byte(text), false) {
			t.Errorf("%q taken as canonical", text)
		}
	}
}

// TestLedgerObjects: an entry of a run that archived more objects than it
// lists keeps the count and the folder, through its ledger event too; an
// entry written before the count reads it from its list.
func TestLedgerObjects(t *testing.T) {
	started := time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	e := Entry{Run: "r", Source: "mysql.shop.big", Started: started}
	for i := range MaxLedgerObjects + 3 {
		e.AddObject(ArchiveName(e.Source, started, i))
	}
	if len(e.Objects) != MaxLedgerObjects || e.Archived != MaxLedgerObjects+3 || e.ArchiveFolder() != "snapshots/mysql.shop.big/2026-12-04/020000.000000/" {
		t.Fatalf("%d objects listed, %d archived, folder %q", len(e.Objects), e.Archived, e.ArchiveFolder())
	}
	ev, err := e.Event()
	if err != nil {
		t.Fatal(err)
	}
	back, err := EntryFromEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	if back.Archived != e.Archived || !slices.Equal(back.Objects, e.Objects) {
		t.Errorf("read back %d listed, %d archived", len(back.Objects), back.Archived)
	}
	delete(ev.After, "archived")
	if old, err := EntryFromEvent(ev); err != nil || old.Archived != MaxLedgerObjects {
		t.Errorf("an entry without a count: %d archived (%v)", old.Archived, err)
	}
}

// TestPlannedRows: what a chunk counts against Options.InFlightRows.
func TestPlannedRows(t *testing.T) {
	c := New(nil, nil, Options{ChunkRows: 500})
	for _, tc := range []struct {
		name string
		ch   Chunk
		want int
	}{
		{"a range chunk planned for its run's rows", Chunk{Rows: 20000}, 20000},
		{"a range chunk without (planned by older code)", Chunk{}, 500},
		{"a key chunk: its keys", Chunk{Rows: 20000, Keys: [][][]byte{{[]byte("1")}, {[]byte("2")}}}, 2},
	} {
		if got := c.planned(tc.ch); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}
