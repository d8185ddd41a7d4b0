package correction

import (
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
}

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

// TestRowSum: equal rows hash equal whatever their map order, and as the
// index hashes their stored encoding; a changed value, type or column does
// not; a row that cannot be encoded is never in sync.
func TestRowSum(t *testing.T) {
	at := time.Date(2026, 12, 3, 1, 2, 3, 4, time.UTC)
	base := eventcenter.Row{"id": int64(1), "amount": eventcenter.Decimal("1.50"), "at": at, "b": []byte{1}, "n": nil, "s": "x"}
	same := eventcenter.Row{"s": "x", "n": nil, "b": []byte{1}, "at": at.In(time.FixedZone("x", 3600)), "amount": eventcenter.Decimal("1.50"), "id": int64(1)}
	sum := func(r eventcenter.Row) uint64 {
		s, _, ok := rowSumOf(r)
		if !ok {
			t.Fatalf("rowSum(%v) refused", r)
		}
		return s
	}
	if sum(base) != sum(same) {
		t.Error("equal rows hash differently")
	}
	if sum(base) != encodedSum(codec.AppendRow(nil, same)) {
		t.Error("a row hashes unlike its stored encoding")
	}
	if _, _, ok := rowSumOf(eventcenter.Row{"x": struct{}{}}); ok {
		t.Error("a row of a type the codec cannot write was hashed")
	}
	for i, r := range []eventcenter.Row{
		{"id": int64(2), "amount": eventcenter.Decimal("1.50"), "at": at, "b": []byte{1}, "n": nil, "s": "x"},
		{"id": int64(1), "amount": "1.50", "at": at, "b": []byte{1}, "n": nil, "s": "x"},
		{"id": int64(1), "amount": eventcenter.Decimal("1.50"), "at": at, "b": []byte{1}, "s": "x"},
		{"id": int64(1), "amount": eventcenter.Decimal("1.50"), "at": at, "b": []byte{1}, "n": nil, "s": "x", "extra": nil},
		{"id": int64(1), "amount": eventcenter.Decimal("1.50"), "at": at, "b": "\x01", "n": nil, "s": "x"},
	} {
		if sum(r) == sum(base) {
			t.Errorf("row %d hashes like the base row", i)
		}
	}
	if got := fmt.Sprint(diffColumns(base, same)); got != "[]" {
		t.Errorf("diffColumns of equal rows: %s", got)
	}
}

// BenchmarkRowSum hashes a row of the benchmark table's shape (five
// columns), as the index build and every in-sync key of a chunk do.
//
//	go test -run '^$' -bench RowSum ./correction/
func BenchmarkRowSum(b *testing.B) {
	r := eventcenter.Row{"id": int64(123456), "a": int64(456), "s": "s123456", "amount": eventcenter.Decimal("23456.56"),
		"at": time.Date(2026, 1, 1, 0, 2, 3, 456000, time.UTC)}
	names := slices.Sorted(maps.Keys(r))
	vals := make([]any, len(names))
	for i, n := range names {
		vals[i] = r[n]
	}
	var buf []byte
	for b.Loop() {
		_, buf, _ = rowSum(buf, names, vals)
	}
}

// rowSumOf is rowSum of a row.
func rowSumOf(r eventcenter.Row) (uint64, []byte, bool) {
	names := slices.Sorted(maps.Keys(r))
	vals := make([]any, len(names))
	for i, n := range names {
		vals[i] = r[n]
	}
	return rowSum(nil, names, vals)
}
