package codec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// bodyVersion is the first byte of every body; bump it on a format change
// and keep decoding the old one.
const bodyVersion = 1

// Value tags of the row encoding. Part of the format: never renumber.
const (
	tagNil     = 0
	tagFalse   = 1
	tagTrue    = 2
	tagInt     = 3 // zigzag varint
	tagFloat   = 4 // 8 bytes, IEEE 754 bits big-endian
	tagString  = 5 // str
	tagBytes   = 6 // str
	tagDecimal = 7 // str
	tagTime    = 8 // varint Unix nanoseconds
)

// row presence flags
const (
	hasAfter  = 1
	hasBefore = 2
)

// EncodeBody appends the body of e: version, op, stored-at, After, Before.
// Columns are written in name order, so equal rows encode to equal bytes.
func EncodeBody(dst []byte, e *eventcenter.Event) []byte {
	var flags byte
	if e.After != nil {
		flags |= hasAfter
	}
	if e.Before != nil {
		flags |= hasBefore
	}
	dst = append(dst, bodyVersion, byte(e.Op), flags)
	dst = binary.AppendVarint(dst, e.StoredAt.UnixNano())
	if e.After != nil {
		dst = AppendRow(dst, e.After)
	}
	if e.Before != nil {
		dst = AppendRow(dst, e.Before)
	}
	return dst
}

// DecodeBody fills e's Op, StoredAt, After and Before from a body.
func DecodeBody(b []byte, e *eventcenter.Event) error {
	_, err := DecodeBodyStoredBy(b, time.Time{}, e)
	return err
}

// DecodeBodyStoredBy is DecodeBody of a body stored by knownAt (zero: no
// bound), reading its header once; false (e unchanged) if it was stored
// after knownAt.
func DecodeBodyStoredBy(b []byte, knownAt time.Time, e *eventcenter.Event) (bool, error) {
	op, flags, stored, rest, err := readHeader(b)
	if err != nil {
		return false, err
	}
	if !knownAt.IsZero() && stored.After(knownAt) {
		return false, nil
	}
	return true, decodeRows(op, flags, stored, rest, e)
}

// oneCopyMax is the most bytes of rows that decodeRows copies whole: a
// decoded string kept alive keeps at most this much memory besides its own.
const oneCopyMax = 256

// decodeRows fills e from a body's header and the rows after it.
func decodeRows(op eventcenter.Op, flags byte, stored time.Time, rest []byte, e *eventcenter.Event) error {
	var err error
	e.Op, e.StoredAt = op, stored
	e.After, e.Before = nil, nil
	// The rows' column names and string values are substrings of one copy
	// of their bytes: one allocation for all of them instead of one each.
	// Only for rows of up to oneCopyMax bytes (narrow rows, whose values
	// are small beside their allocations): a value kept alive keeps the
	// copy alive, and a []byte value is copied on its own besides.
	var str string
	if flags&(hasAfter|hasBefore) != 0 && len(rest) <= oneCopyMax {
		str = string(rest)
	}
	if flags&hasAfter != 0 {
		if e.After, rest, err = readRow(rest, str); err != nil {
			return err
		}
	}
	if flags&hasBefore != 0 {
		if e.Before, rest, err = readRow(rest, str); err != nil {
			return err
		}
	}
	if len(rest) != 0 {
		return corrupt("body tail")
	}
	return nil
}

// BodyStoredAt reads only the stored-at time of a body.
func BodyStoredAt(b []byte) (time.Time, error) {
	_, _, stored, _, err := readHeader(b)
	return stored, err
}

// readHeader reads a body's header (version, op, row flags, stored-at) and
// returns the bytes after it: the rows.
func readHeader(b []byte) (op eventcenter.Op, flags byte, stored time.Time, rest []byte, err error) {
	if len(b) < 4 || b[0] != bodyVersion {
		return 0, 0, time.Time{}, nil, corrupt("body header")
	}
	ns, w := binary.Varint(b[3:])
	if w <= 0 {
		return 0, 0, time.Time{}, nil, corrupt("stored-at")
	}
	return eventcenter.Op(b[1]), b[2], time.Unix(0, ns).UTC(), b[3+w:], nil
}

// AppendRow appends the encoding of a row: len(AppendRow(nil, r)) is
// r.Size(). r must hold only the types a Row can and times CheckTime accepts
// (Row.Validate and CheckRow check both); AppendRow panics on another type.
func AppendRow(dst []byte, r eventcenter.Row) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(r)))
	var small [16]string
	cols := small[:0]
	for c := range r {
		cols = append(cols, c)
	}
	slices.Sort(cols)
	for _, c := range cols {
		dst = appendStr(dst, c)
		dst = appendValue(dst, r[c])
	}
	return dst
}

// AppendColumns appends the encoding of the row whose column cols[i] holds
// vals[i]: what AppendRow appends for that row, without building it. cols
// must be strictly increasing (as sorted by slices.Sort), and vals of the
// types AppendRow takes (CheckValue); it panics otherwise.
func AppendColumns(dst []byte, cols []string, vals []any) []byte {
	if len(cols) != len(vals) {
		panic("codec: AppendColumns: as many values as columns")
	}
	dst = binary.AppendUvarint(dst, uint64(len(cols)))
	for i, c := range cols {
		if i > 0 && cols[i-1] >= c {
			panic("codec: AppendColumns: columns not strictly increasing")
		}
		dst = appendStr(dst, c)
		dst = appendValue(dst, vals[i])
	}
	return dst
}

// The row encoding piece by piece: AppendRowHeader, then per column in
// strictly increasing name order AppendColumnName and one Append…Value,
// write what AppendColumns writes for the same row, without boxing the
// values in interfaces (a reader of MySQL's text turns it into the bytes
// straight).

// AppendRowHeader starts a row of n columns.
func AppendRowHeader(dst []byte, n int) []byte { return binary.AppendUvarint(dst, uint64(n)) }

// AppendColumnName appends a column's name.
func AppendColumnName(dst []byte, name string) []byte { return appendStr(dst, name) }

// AppendNilValue appends a nil (SQL NULL) value.
func AppendNilValue(dst []byte) []byte { return append(dst, tagNil) }

// AppendIntValue appends an int64 value.
func AppendIntValue(dst []byte, v int64) []byte { return binary.AppendVarint(append(dst, tagInt), v) }

// AppendFloatValue appends a float64 value.
func AppendFloatValue(dst []byte, v float64) []byte {
	return appendU64(append(dst, tagFloat), math.Float64bits(v))
}

// AppendStringValue appends a string value given as its bytes.
func AppendStringValue(dst, v []byte) []byte { return appendBytes(append(dst, tagString), v) }

// AppendBytesValue appends a []byte value.
func AppendBytesValue(dst, v []byte) []byte { return appendBytes(append(dst, tagBytes), v) }

// AppendDecimalValue appends an eventcenter.Decimal value given as its
// bytes.
func AppendDecimalValue(dst, v []byte) []byte { return appendBytes(append(dst, tagDecimal), v) }

// AppendTimeValue appends a time.Time value; ok is false (and dst
// unchanged) for a time CheckTime refuses.
func AppendTimeValue(dst []byte, t time.Time) (_ []byte, ok bool) {
	if CheckTime(t) != nil {
		return dst, false
	}
	return binary.AppendVarint(append(dst, tagTime), t.UnixNano()), true
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// CheckRow reports the first column of r that AppendRow cannot write
// exactly: a value of a type a Row cannot hold, or a time CheckTime refuses.
// It checks nothing else; Row.Validate says what a store may hold.
func CheckRow(r eventcenter.Row) error {
	for col, v := range r {
		if err := CheckValue(v); err != nil {
			return fmt.Errorf("column %q: %w", col, err)
		}
	}
	return nil
}

// CheckValue reports a value AppendRow cannot write exactly (see CheckRow).
func CheckValue(v any) error {
	switch v := v.(type) {
	case nil, bool, int64, int, float64, string, []byte, eventcenter.Decimal:
	case time.Time:
		return CheckTime(v)
	default:
		return fmt.Errorf("type %T cannot be encoded", v)
	}
	return nil
}

// CheckTime reports a time that bodies and keys cannot hold exactly: one
// outside [eventcenter.MinTime, eventcenter.MaxTime], the one definition of
// the time bounds (an int64 of Unix nanoseconds would wrap it into another
// year).
func CheckTime(t time.Time) error {
	if !eventcenter.InTimeRange(t) {
		return fmt.Errorf("time %v is outside [%v, %v]", t, eventcenter.MinTime, eventcenter.MaxTime)
	}
	return nil
}

func appendValue(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, tagNil)
	case bool:
		if v {
			return append(dst, tagTrue)
		}
		return append(dst, tagFalse)
	case int64:
		return binary.AppendVarint(append(dst, tagInt), v)
	case int:
		return binary.AppendVarint(append(dst, tagInt), int64(v))
	case float64:
		return appendU64(append(dst, tagFloat), math.Float64bits(v))
	case string:
		return appendStr(append(dst, tagString), v)
	case []byte:
		return appendStr(append(dst, tagBytes), string(v))
	case eventcenter.Decimal:
		return appendStr(append(dst, tagDecimal), string(v))
	case time.Time:
		return binary.AppendVarint(append(dst, tagTime), v.UnixNano())
	}
	panic("codec: row value of unsupported type; call Row.Validate first")
}

// ReadRow decodes a row written by AppendRow and returns the bytes after it.
func ReadRow(b []byte) (eventcenter.Row, []byte, error) { return readRow(b, "") }

// readRow is ReadRow; if str is not empty, str ends with the bytes b (a
// copy of them and of what may precede them), and the row's names and
// string values are substrings of it instead of copies of their own.
func readRow(b []byte, str string) (eventcenter.Row, []byte, error) {
	n, w := binary.Uvarint(b)
	// A column takes 2 bytes at least (its name's length, its value's tag):
	// a row claiming more than its bytes hold is corrupt before its map is
	// made (bytes from a Kafka record cannot size an allocation).
	if w <= 0 || n > uint64(len(b)-w)/2 {
		return nil, nil, corrupt("row length")
	}
	b = b[w:]
	r := make(eventcenter.Row, n)
	for i := uint64(0); i < n; i++ {
		name, rest, err := nextBytes(b)
		if err != nil {
			return nil, nil, err
		}
		var v any
		if v, b, err = readValueIn(rest, str); err != nil {
			return nil, nil, err
		}
		r[textIn(str, name, len(rest))] = v
	}
	if uint64(len(r)) != n { // AppendRow never writes a column twice
		return nil, nil, corrupt("duplicate column")
	}
	return r, b, nil
}

// RowValue returns the value of column col of a row AppendRow wrote, and
// whether the row has the column, decoding no other value.
func RowValue(b []byte, col string) (any, bool, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)) {
		return nil, false, corrupt("row length")
	}
	b = b[w:]
	for range n {
		name, rest, err := nextBytes(b)
		if err != nil {
			return nil, false, err
		}
		if string(name) == col {
			v, _, err := readValue(rest)
			return v, err == nil, err
		}
		if b, err = skipValue(rest); err != nil {
			return nil, false, err
		}
	}
	return nil, false, nil
}

// IndexValue returns the index value (eventcenter.IndexValue) of column col
// of a row AppendRow wrote; false if the row is empty (no row), has no such
// column, or its value is not indexed.
func IndexValue(row []byte, col string) (string, bool, error) {
	if len(row) == 0 {
		return "", false, nil
	}
	v, _, err := RowValue(row, col)
	if err != nil {
		return "", false, err
	}
	s, ok := eventcenter.IndexValue(v)
	return s, ok, nil
}

// readValueIn is readValue with its string and decimal values substrings
// of str, which ends with the bytes b (see readRow); readValue if str is
// empty.
func readValueIn(b []byte, str string) (any, []byte, error) {
	if str == "" || len(b) == 0 || (b[0] != tagString && b[0] != tagDecimal) {
		return readValue(b)
	}
	s, rest, err := nextBytes(b[1:])
	if err != nil {
		return nil, nil, err
	}
	if b[0] == tagString {
		return textIn(str, s, len(rest)), rest, nil
	}
	return eventcenter.Decimal(textIn(str, s, len(rest))), rest, nil
}

// textIn returns the bytes b as text: the substring of str that they are a
// copy of, str ending with b and then tail more bytes; a copy of b if str
// is empty.
func textIn(str string, b []byte, tail int) string {
	if str == "" {
		return string(b)
	}
	at := len(str) - tail - len(b)
	return str[at : at+len(b)]
}

// readValue decodes the tagged value at the start of b and returns the
// bytes after it.
func readValue(b []byte) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, corrupt("value tag")
	}
	tag, rest := b[0], b[1:]
	switch tag {
	case tagNil:
		return nil, rest, nil
	case tagFalse:
		return false, rest, nil
	case tagTrue:
		return true, rest, nil
	case tagInt, tagTime:
		x, w := binary.Varint(rest)
		if w <= 0 {
			return nil, nil, corrupt("varint")
		}
		if tag == tagInt {
			return x, rest[w:], nil
		}
		return time.Unix(0, x).UTC(), rest[w:], nil
	case tagFloat:
		u, rest, err := readU64(rest)
		if err != nil {
			return nil, nil, err
		}
		return math.Float64frombits(u), rest, nil
	case tagString, tagBytes, tagDecimal:
		s, rest, err := readStr(rest)
		if err != nil {
			return nil, nil, err
		}
		switch tag {
		case tagString:
			return s, rest, nil
		case tagBytes:
			return []byte(s), rest, nil
		}
		return eventcenter.Decimal(s), rest, nil
	}
	return nil, nil, corrupt("value tag")
}

// SplitBody reads a body's operation and stored-at time and returns its
// After and Before rows still encoded (AppendRow's bytes, sub-slices of b;
// nil where the body has no such row), without decoding a value.
func SplitBody(b []byte) (op eventcenter.Op, stored time.Time, after, before []byte, err error) {
	op, flags, stored, rest, err := readHeader(b)
	if err != nil {
		return op, stored, nil, nil, err
	}
	if flags&hasAfter != 0 {
		n, err := RowLen(rest)
		if err != nil {
			return op, stored, nil, nil, err
		}
		after, rest = rest[:n:n], rest[n:]
	}
	if flags&hasBefore != 0 {
		n, err := RowLen(rest)
		if err != nil {
			return op, stored, nil, nil, err
		}
		before, rest = rest[:n:n], rest[n:]
	}
	if len(rest) != 0 {
		return op, stored, nil, nil, corrupt("body tail")
	}
	return op, stored, after, before, nil
}

// RowLen returns the length of the row AppendRow wrote at the start of b,
// stepping over its columns without decoding their values. It checks what
// AppendRow guarantees: column names in strictly increasing order (so
// unique, as ReadRow requires), values well formed.
func RowLen(b []byte) (int, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)) {
		return 0, corrupt("row length")
	}
	rest := b[w:]
	var last []byte
	for i := range n {
		name, after, err := nextBytes(rest)
		if err != nil {
			return 0, err
		}
		if i > 0 && bytes.Compare(name, last) <= 0 {
			return 0, corrupt("column order")
		}
		last = name
		if rest, err = skipValue(after); err != nil {
			return 0, err
		}
	}
	return len(b) - len(rest), nil
}

// nextBytes returns the length-prefixed bytes at the start of b (a string
// appendStr wrote) and the bytes after them, without copying.
func nextBytes(b []byte) ([]byte, []byte, error) {
	l, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < l {
		return nil, nil, corrupt("string")
	}
	return b[w : w+int(l)], b[w+int(l):], nil
}

// skipValue returns the bytes after the tagged value at the start of b,
// decoding nothing.
func skipValue(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, corrupt("value tag")
	}
	tag, rest := b[0], b[1:]
	switch tag {
	case tagNil, tagFalse, tagTrue:
		return rest, nil
	case tagInt, tagTime:
		_, w := binary.Varint(rest)
		if w <= 0 {
			return nil, corrupt("varint")
		}
		return rest[w:], nil
	case tagFloat:
		if len(rest) < 8 {
			return nil, corrupt("short integer")
		}
		return rest[8:], nil
	case tagString, tagBytes, tagDecimal:
		_, rest, err := nextBytes(rest)
		return rest, err
	}
	return nil, corrupt("value tag")
}
