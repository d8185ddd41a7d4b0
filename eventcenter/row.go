package eventcenter

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Row is a row image: column name to value. A value is one of
//
//	nil, bool, int64, int (read back as int64), float64, string, []byte,
//	Decimal, time.Time
//
// so that every source's types survive storage exactly: DECIMAL as Decimal
// text, binary as []byte, times with their instant (read back in UTC).
type Row map[string]any

// Decimal is an exact decimal number in its canonical text form, e.g.
// "1234.50". It is kept as text so no digit is lost to floating point.
type Decimal string

// Validate reports the first column whose value has a type a Row cannot hold.
func (r Row) Validate() error {
	for col, v := range r {
		switch v := v.(type) {
		case nil, bool, int64, int, string, []byte, Decimal:
		case float64:
			if math.IsNaN(v) {
				return fmt.Errorf("column %q: NaN cannot be stored", col)
			}
		case time.Time:
			if !InTimeRange(v) {
				return fmt.Errorf("column %q: time %v outside [%v, %v]", col, v, MinTime, MaxTime)
			}
		default:
			return fmt.Errorf("column %q: type %T cannot be stored (use nil, bool, int64, float64, string, []byte, eventcenter.Decimal or time.Time)", col, v)
		}
	}
	return nil
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
