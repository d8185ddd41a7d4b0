package cdc

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// TestAppendValueText: for every column type and a spread of texts (NULL,
// edges, zero dates, times outside the codec's range, bad input), the
// bytes AppendValueText writes are those codec.AppendColumns writes for
// ValueFromText's value, its refusals are the codec's (CheckValue), and
// its errors are ValueFromText's.
func TestAppendValueText(t *testing.T) {
	zone, err := time.LoadLocation("Europe/Paris") // with a DST gap and overlap
	if err != nil {
		t.Fatal(err)
	}
	type tc struct {
		col  Column
		text []byte
	}
	var cases []tc
	add := func(dataType string, unsigned bool, texts ...string) {
		for _, s := range texts {
			cases = append(cases, tc{Column{Name: "c", DataType: dataType, Unsigned: unsigned}, []byte(s)})
		}
		cases = append(cases, tc{Column{Name: "c", DataType: dataType, Unsigned: unsigned}, nil})
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	var ints, uints, floats, times []string
	for range 200 {
		ints = append(ints, strconv.FormatInt(int64(rnd.Uint64()), 10), strconv.Itoa(rnd.IntN(600)-300))
		uints = append(uints, strconv.FormatUint(rnd.Uint64(), 10))
		floats = append(floats, strconv.FormatFloat(rnd.NormFloat64()*1e6, 'g', -1, 64))
		at := time.Unix(rnd.Int64N(1<<34), rnd.Int64N(1e9)).UTC()
		times = append(times, at.Format("2006-01-02 15:04:05.000000"), at.Format("2006-01-02 15:04:05"), at.Format(time.DateOnly))
	}
	// Every type of the mapping (convert.go), each signed and unsigned,
	// and one it does not name.
	for _, dt := range []string{"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year", "bool", "boolean"} {
		add(dt, false, append(ints, "0", "00042", "+5", "-9223372036854775808", "9223372036854775807", "9223372036854775808", "x", "")...)
		add(dt, true, append(uints, "0", "18446744073709551615", "18446744073709551616", "-1")...)
	}
	add("bit", false, "\x00", "\x01\x02", "\xff\xff\xff", "\x01\x02\x03\x04\x05\x06\x07\x08\x09")
	for _, dt := range []string{"decimal", "numeric"} {
		add(dt, false, "1.50", "-0.00", "123456789012345678901234567890.5")
		add(dt, true, "1.50")
	}
	add("float", false, append(floats, "1.5", "3.4028235e38", "1e39", "NaN", "-Inf", "NaN?", "")...)
	for _, dt := range []string{"double", "real"} {
		add(dt, false, append(floats, "1e308", "1e309", "-0", "bad")...)
	}
	for _, dt := range []string{"datetime", "timestamp", "date"} {
		add(dt, false, append(times, "0000-00-00 00:00:00", "0000-00-00", "0000-01-01", "2026-00-10", "2026-01-00 10:00:00",
			"2026-02-29", "2024-02-29 23:59:59.5", "2026-03-29 02:30:00", "2026-10-25 02:30:00",
			"9999-12-31 23:59:59.999999", "1000-01-01 00:00:00", "2026-12-03 10:12", "2026-12-03T10:12:00",
			"2026-12-03 10:12:00.1234567", "2026-13-01", "junk")...)
	}
	for _, dt := range []string{"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json", "enum", "set", "time", "no-such-type"} {
		add(dt, false, "", "x", "héllo", "a\x00b", "a,b", `{"a":1}`, "838:59:59.000000", "-01:00:00")
	}
	for _, dt := range []string{"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "geometry", "point",
		"linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection"} {
		add(dt, false, "", "\x00\xff", "bytes")
	}

	var checked, refused int
	for _, c := range cases {
		v, verr := ValueFromText(&c.col, c.text, zone)
		got, ok, err := AppendValueText([]byte("prefix"), &c.col, c.text, zone)
		if (err != nil) != (verr != nil) || err != nil && err.Error() != verr.Error() {
			t.Errorf("%s %q: AppendValueText error %v, ValueFromText %v", c.col.DataType, c.text, err, verr)
			continue
		}
		if verr != nil {
			if string(got) != "prefix" {
				t.Errorf("%s %q: an error, and dst changed: %q", c.col.DataType, c.text, got)
			}
			continue
		}
		if cerr := codec.CheckValue(v); cerr != nil {
			refused++
			if ok || string(got) != "prefix" {
				t.Errorf("%s %q: the codec refuses %v (%v), AppendValueText wrote %q, %v", c.col.DataType, c.text, v, cerr, got, ok)
			}
			continue
		}
		if !ok {
			t.Errorf("%s %q: refused a value the codec writes (%v)", c.col.DataType, c.text, v)
			continue
		}
		row := codec.AppendColumns(nil, []string{"c"}, []any{v})
		mine := codec.AppendColumnName(codec.AppendRowHeader(nil, 1), "c")
		mine = append(mine, got[len("prefix"):]...)
		if !bytes.Equal(row, mine) {
			t.Errorf("%s %q: %x, the codec writes %x for %#v", c.col.DataType, c.text, mine, row, v)
		}
		checked++
	}
	if checked < 1000 || refused == 0 {
		t.Errorf("checked %d values, %d refused: the cases do not cover what they should", checked, refused)
	}
}
