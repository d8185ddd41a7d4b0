package eventcenter

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Row is a row image: column name to value. A value is one of
//
//	nil, bool, int64, int (read back as int64), float64, string, []byte,
//	Decimal, time.Time
//
// so that every source's types survive storage exactly: DECIMAL as Decimal
// text, binary as []byte, times with their instant (read back in UTC).
//
// What a valid row holds (see [Row.Validate]): column names are UTF-8 text
// (values of type string are any bytes); floats are finite (no NaN or ±Inf,
// which JSON cannot write: a JSON output of such a row would fail on every
// retry); a Decimal is a decimal number; a time lies in the years 1678-2262;
// a string, []byte or Decimal value is at most [SizeLimits].Value bytes long,
// and the row's [Row.Size] is at most [SizeLimits].Row bytes.
type Row map[string]any

// Decimal is an exact decimal number in its canonical text form, e.g.
// "1234.50". It is kept as text so no digit is lost to floating point.
// A valid Decimal is an optional sign, digits with an optional decimal point
// (at least one digit in all), and an optional exponent: "-0.5", "1e400",
// ".5", "+7." are decimals; "Inf", "NaN", "0x1p3", "1_000", "1,5" are not.
type Decimal string

// Validate reports the first column whose value a Row cannot hold, naming
// the column, or a row larger than the size limits allow.
func (r Row) Validate() error { return r.ValidateNames(nil) }

// ValidateNames is Validate that also checks each column's name with
// name (if not nil), in the same pass over the row; name's error is
// returned as it is.
func (r Row) ValidateNames(name func(col string) error) error {
	limits := CurrentSizeLimits()
	size := uvarintLen(uint64(len(r))) // as Size counts
	for col, v := range r {
		if name != nil {
			if err := name(col); err != nil {
				return err
			}
		}
		if !utf8.ValidString(col) {
			return fmt.Errorf("column %q: the name is not UTF-8 text", col)
		}
		n := 0 // the value's length, for the limit on one value
		switch v := v.(type) {
		case nil, bool, int64, int:
		case string:
			n = len(v)
		case []byte:
			n = len(v)
		case Decimal:
			if !validDecimal(string(v)) {
				return fmt.Errorf("column %q: %q is not a decimal number", col, string(v))
			}
			n = len(v)
		case float64:
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("column %q: %v cannot be stored (only finite numbers can)", col, v)
			}
		case time.Time:
			if !InTimeRange(v) {
				return fmt.Errorf("column %q: time %v outside [%v, %v]", col, v, MinTime, MaxTime)
			}
		default:
			return fmt.Errorf("column %q: type %T cannot be stored (use nil, bool, int64, float64, string, []byte, eventcenter.Decimal or time.Time)", col, v)
		}
		if n > limits.Value {
			return fmt.Errorf("column %q: a value of %d bytes, more than the limit of %d", col, n, limits.Value)
		}
		size += cellSize(col, v)
	}
	if size > limits.Row {
		return fmt.Errorf("a row of %d bytes, more than the limit of %d", size, limits.Row)
	}
	return nil
}

// Clone returns a copy of r that shares nothing with it: its []byte values
// are copied too. The clone of nil is nil.
func (r Row) Clone() Row {
	if r == nil {
		return nil
	}
	c := maps.Clone(r)
	for k, v := range c {
		if b, ok := v.([]byte); ok {
			c[k] = bytes.Clone(b)
		}
	}
	return c
}

// validDecimal reports whether s is [+-]digits[.digits][(e|E)[+-]digits]
// with at least one digit before the exponent.
func validDecimal(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := func() int {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - start
	}
	n := digits()
	if i < len(s) && s[i] == '.' {
		i++
		n += digits()
	}
	if n == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// Size is the number of bytes r takes in the event center's storage
// encoding (a row of an eventcenter/codec body): per column its name and
// value with their tags and length prefixes. The size limits bound it, so
// that an event's body, which holds its After and Before rows, fits one
// HBase cell. r must hold only the types a Row can (Size does not check).
func (r Row) Size() int {
	n := uvarintLen(uint64(len(r)))
	for col, v := range r {
		n += cellSize(col, v)
	}
	return n
}

// cellSize is the encoded size of one column of a row: its name, the
// value's tag and the value.
func cellSize(col string, v any) int {
	n := uvarintLen(uint64(len(col))) + len(col) + 1
	switch v := v.(type) {
	case int64:
		n += varintLen(v)
	case int:
		n += varintLen(int64(v))
	case float64:
		n += 8
	case string:
		n += uvarintLen(uint64(len(v))) + len(v)
	case []byte:
		n += uvarintLen(uint64(len(v))) + len(v)
	case Decimal:
		n += uvarintLen(uint64(len(v))) + len(v)
	case time.Time:
		n += varintLen(v.UnixNano())
	}
	return n
}

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func varintLen(x int64) int { return uvarintLen(uint64(x<<1) ^ uint64(x>>63)) } // zigzag, as binary.AppendVarint

// SizeLimits bound the size of rows, so that an event too large for a store
// is refused as invalid (a dead letter), never retried: HBase refuses a cell
// above hbase.server.keyvalue.maxsize (and its client above
// hbase.client.keyvalue.maxsize), 10 MiB by default, and an event's body,
// one cell, holds two rows.
type SizeLimits struct {
	// Value bounds the length in bytes of one string, []byte or Decimal.
	Value int
	// Row bounds a row's Size.
	Row int
}

// The size limits until SetSizeLimits changes them: values of 1 MiB (about
// Kafka's default largest message, message.max.bytes), rows of 4 MiB, so a
// body of two full rows (8 MiB and a few bytes) stays below HBase's default
// 10 MiB cell limit.
const (
	DefaultMaxValueSize = 1 << 20
	DefaultMaxRowSize   = 4 << 20
)

var sizeLimits atomic.Pointer[SizeLimits]

// CurrentSizeLimits returns the limits Row.Validate and Event.Validate apply.
func CurrentSizeLimits() SizeLimits {
	if l := sizeLimits.Load(); l != nil {
		return *l
	}
	return SizeLimits{Value: DefaultMaxValueSize, Row: DefaultMaxRowSize}
}

// SetSizeLimits sets the size limits of the process and returns the previous
// ones. Both must be positive, Value at most Row. Set them once at start-up,
// before anything validates an event, and set the same limits in every
// process that validates events (producers, ingest, stores): an event one of
// them accepts and another refuses is a dead letter only at the second. Keep
// Row under 5 MiB (half HBase's cell limit, less the body's few bytes of
// header) unless the HBase cluster's hbase.server.keyvalue.maxsize is raised.
func SetSizeLimits(l SizeLimits) (SizeLimits, error) {
	if l.Value <= 0 || l.Row <= 0 || l.Value > l.Row {
		return CurrentSizeLimits(), fmt.Errorf("eventcenter: size limits %+v: both must be positive, Value at most Row", l)
	}
	if prev := sizeLimits.Swap(&l); prev != nil {
		return *prev, nil
	}
	return SizeLimits{Value: DefaultMaxValueSize, Row: DefaultMaxRowSize}, nil
}

// IndexValue returns the text under which a column value is indexed, and
// false for nil (a nil column is not indexed). Integers and decimals index as
// their decimal text, so Lookup(…, "42") finds int64(42), Decimal("42") and "42".
func IndexValue(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "", false
	case string:
		return v, true
	case int64:
		return strconv.FormatInt(v, 10), true
	case int:
		return strconv.Itoa(v), true
	case Decimal:
		return string(v), true
	case []byte:
		return string(v), true
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), true
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano), true
	}
	return fmt.Sprint(v), true
}
