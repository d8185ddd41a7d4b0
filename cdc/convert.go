package cdc

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// The mapping of MySQL column types to event center row values. The binlog
// path (CDC) and the text path (ValueFromText: a snapshot, a check) give the
// same value for the same stored datum.
//
//	TINYINT…BIGINT, YEAR, BIT   int64 (BIGINT UNSIGNED above 2^63-1: Decimal)
//	DECIMAL, NUMERIC            eventcenter.Decimal, exact text ("1200.50")
//	FLOAT                       float64 holding the stored float32 exactly
//	DOUBLE                      float64
//	DATETIME, DATE              time.Time: the wall clock read in Config.Zone
//	                            (default UTC), stored as that instant
//	TIMESTAMP                   time.Time: the stored UTC instant (no zone guess)
//	zero dates ('0000-00-00…')  the string as MySQL prints it
//	TIME                        string "HH:MM:SS[.ffffff]" (it is a duration)
//	CHAR, VARCHAR, TEXT, JSON   string (JSON as its text)
//	ENUM, SET                   string (SET: the members, comma separated)
//	BINARY, VARBINARY, BLOB,
//	GEOMETRY                    []byte
//	NULL                        nil

// binlogValue converts a value as go-mysql decodes it from a row image.
func binlogValue(c *Column, v any, zone *time.Location) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch c.DataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "bool", "boolean":
		var n int64
		var width uint
		switch x := v.(type) {
		case int8:
			n, width = int64(x), 8
		case int16:
			n, width = int64(x), 16
		case int32:
			n, width = int64(x), 32
			if c.DataType == "mediumint" {
				width = 24
			}
		case int64:
			n, width = x, 64
		case int:
			n, width = int64(x), 64
		default:
			return nil, typeErr(c, v)
		}
		if !c.Unsigned || n >= 0 {
			return n, nil
		}
		u := uint64(n)
		if width < 64 {
			u &= 1<<width - 1
		}
		return unsigned(u), nil
	case "year", "bit":
		switch x := v.(type) {
		case int:
			return int64(x), nil
		case int64:
			return x, nil
		}
		return nil, typeErr(c, v)
	case "decimal", "numeric":
		if s, ok := v.(string); ok {
			return eventcenter.Decimal(strings.Clone(s)), nil
		}
		return nil, typeErr(c, v)
	case "float":
		if f, ok := v.(float32); ok {
			return float64(f), nil
		}
		return nil, typeErr(c, v)
	case "double", "real":
		if f, ok := v.(float64); ok {
			return f, nil
		}
		return nil, typeErr(c, v)
	case "datetime", "date":
		if s, ok := v.(string); ok {
			return parseTime(s, zone)
		}
		return nil, typeErr(c, v)
	case "timestamp":
		if s, ok := v.(string); ok { // formatted in UTC (TimestampStringLocation)
			return parseTime(s, time.UTC)
		}
		return nil, typeErr(c, v)
	case "enum":
		n, ok := v.(int64)
		if !ok {
			return nil, typeErr(c, v)
		}
		if n == 0 {
			return "", nil // MySQL's invalid-value member
		}
		if n < 0 || int(n) > len(c.Values) {
			return nil, fmt.Errorf("cdc: column %s: enum index %d out of %d values", c.Name, n, len(c.Values))
		}
		return c.Values[n-1], nil
	case "set":
		n, ok := v.(int64)
		if !ok {
			return nil, typeErr(c, v)
		}
		var members []string
		for i, m := range c.Values {
			if n&(1<<i) != 0 {
				members = append(members, m)
			}
		}
		return strings.Join(members, ","), nil
	}
	if isBinary(c.DataType) {
		switch x := v.(type) {
		case []byte:
			return bytes.Clone(x), nil
		case string:
			return []byte(x), nil
		}
		return nil, typeErr(c, v)
	}
	switch x := v.(type) { // char, varchar, text, json, time and the rest
	case string:
		return strings.Clone(x), nil
	case []byte:
		return string(x), nil
	}
	return nil, typeErr(c, v)
}

func typeErr(c *Column, v any) error {
	return fmt.Errorf("cdc: column %s (%s): unexpected binlog value %T", c.Name, c.DataType, v)
}

func unsigned(u uint64) any {
	if u > math.MaxInt64 {
		return eventcenter.Decimal(strconv.FormatUint(u, 10))
	}
	return int64(u)
}

func isBinary(dataType string) bool {
	switch dataType {
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "geometry", "point",
		"linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection":
		return true
	}
	return false
}

// parseTime reads "YYYY-MM-DD[ HH:MM:SS[.ffffff]]" in loc; a zero date
// stays the string it is.
func parseTime(s string, loc *time.Location) (any, error) {
	if zeroDate(s) {
		return strings.Clone(s), nil
	}
	if t, ok := parseDateTime(s, loc); ok {
		return t.UTC(), nil
	}
	layout := "2006-01-02 15:04:05.999999"
	if len(s) == 10 {
		layout = "2006-01-02"
	}
	t, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		return nil, fmt.Errorf("cdc: time %q: %w", s, err)
	}
	return t.UTC(), nil
}

// zeroDate reports a zero or partly zero date ('0000-00-00', '2026-00-10'),
// which has no instant and stays the string MySQL prints.
func zeroDate(s string) bool {
	return strings.HasPrefix(s, "0000-") || strings.Contains(s[:min(len(s), 10)], "-00")
}

// parseDateTime parses the forms MySQL writes a DATE, DATETIME or
// TIMESTAMP in, "YYYY-MM-DD" and "YYYY-MM-DD hh:mm:ss[.f…]" (up to 6
// fractional digits), in loc, as time.ParseInLocation with parseTime's
// layouts does, without its generic layout walk (it runs once per time
// value of every row the correction reads). ok is false for any other
// text, which parseTime leaves to time.ParseInLocation.
func parseDateTime(s string, loc *time.Location) (t time.Time, ok bool) {
	n := len(s)
	if n != 10 && n != 19 && (n < 21 || n > 26 || s[19] != '.') {
		return t, false
	}
	num := func(from, to int) int {
		v := 0
		for i := from; i < to; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 7), num(8, 10)
	if s[4] != '-' || s[7] != '-' || year < 0 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) {
		return t, false
	}
	hour, minute, sec, nsec := 0, 0, 0, 0
	if n > 10 {
		hour, minute, sec = num(11, 13), num(14, 16), num(17, 19)
		if s[10] != ' ' || s[13] != ':' || s[16] != ':' || hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
			return t, false
		}
		if n > 20 {
			if nsec = num(20, n); nsec < 0 {
				return t, false
			}
			for range 9 - (n - 20) {
				nsec *= 10
			}
		}
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc), true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// ValueFromText converts a column value as MySQL's text protocol returns it
// (database/sql with []byte or sql.RawBytes scanning, no parseTime) into
// the row value the CDC stores for it; nil text is NULL. DATETIME and DATE
// are read in zone; TIMESTAMP text must be in UTC (run `SET time_zone =
// '+00:00'` on the connection).
func ValueFromText(c *Column, text []byte, zone *time.Location) (any, error) {
	if text == nil {
		return nil, nil
	}
	s := string(text)
	switch c.DataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "bool", "boolean", "year":
		if c.Unsigned {
			u, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("cdc: column %s: %w", c.Name, err)
			}
			return unsigned(u), nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("cdc: column %s: %w", c.Name, err)
		}
		return n, nil
	case "bit": // the bits, big-endian
		var n int64
		for _, b := range text {
			n = n<<8 | int64(b)
		}
		return n, nil
	case "decimal", "numeric":
		return eventcenter.Decimal(s), nil
	case "float":
		f, err := strconv.ParseFloat(s, 32)
		return f, err
	case "double", "real":
		f, err := strconv.ParseFloat(s, 64)
		return f, err
	case "datetime", "date":
		return parseTime(s, zone)
	case "timestamp":
		return parseTime(s, time.UTC)
	}
	if isBinary(c.DataType) {
		return bytes.Clone(text), nil
	}
	return s, nil
}

// AppendValueText appends to dst the row encoding of the value
// ValueFromText returns for text (the bytes codec.AppendColumns writes for
// it) without making that value: no interface, no string per value. ok is
// false, and dst unchanged, for a value the codec cannot write (a time
// outside its range); err is ValueFromText's.
func AppendValueText(dst []byte, c *Column, text []byte, zone *time.Location) (_ []byte, ok bool, err error) {
	if text == nil {
		return codec.AppendNilValue(dst), true, nil
	}
	switch c.DataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "bool", "boolean", "year":
		if c.Unsigned {
			u, err := strconv.ParseUint(string(text), 10, 64)
			if err != nil {
				return dst, false, fmt.Errorf("cdc: column %s: %w", c.Name, err)
			}
			if u > math.MaxInt64 {
				return codec.AppendDecimalValue(dst, strconv.AppendUint(nil, u, 10)), true, nil
			}
			return codec.AppendIntValue(dst, int64(u)), true, nil
		}
		n, err := strconv.ParseInt(string(text), 10, 64)
		if err != nil {
			return dst, false, fmt.Errorf("cdc: column %s: %w", c.Name, err)
		}
		return codec.AppendIntValue(dst, n), true, nil
	case "bit":
		var n int64
		for _, b := range text {
			n = n<<8 | int64(b)
		}
		return codec.AppendIntValue(dst, n), true, nil
	case "decimal", "numeric":
		return codec.AppendDecimalValue(dst, text), true, nil
	case "float", "double", "real":
		size := 64
		if c.DataType == "float" {
			size = 32
		}
		f, err := strconv.ParseFloat(string(text), size)
		if err != nil {
			return dst, false, err
		}
		return codec.AppendFloatValue(dst, f), true, nil
	case "datetime", "date", "timestamp":
		loc := zone
		if c.DataType == "timestamp" {
			loc = time.UTC
		}
		if zeroDate(string(text)) {
			return codec.AppendStringValue(dst, text), true, nil
		}
		t, ok := parseDateTime(string(text), loc)
		if !ok { // a form only the layout walk reads
			v, err := parseTime(string(text), loc)
			if err != nil {
				return dst, false, err
			}
			t = v.(time.Time)
		}
		dst, ok = codec.AppendTimeValue(dst, t)
		return dst, ok, nil
	}
	if isBinary(c.DataType) {
		return codec.AppendBytesValue(dst, text), true, nil
	}
	return codec.AppendStringValue(dst, text), true, nil
}
