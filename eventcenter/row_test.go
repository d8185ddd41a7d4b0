package eventcenter_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

func TestRowValidateRefuses(t *testing.T) {
	limits := eventcenter.CurrentSizeLimits()
	for name, c := range map[string]struct {
		row  eventcenter.Row
		want string // in the error, besides the column name
	}{
		"+Inf":               {eventcenter.Row{"score": math.Inf(1)}, "+Inf"},
		"-Inf":               {eventcenter.Row{"score": math.Inf(-1)}, "-Inf"},
		"NaN":                {eventcenter.Row{"score": math.NaN()}, "NaN"},
		"decimal not number": {eventcenter.Row{"score": eventcenter.Decimal("1,5")}, "not a decimal"},
		"decimal Inf":        {eventcenter.Row{"score": eventcenter.Decimal("Inf")}, "not a decimal"},
		"decimal hex":        {eventcenter.Row{"score": eventcenter.Decimal("0x1p3")}, "not a decimal"},
		"name not UTF-8":     {eventcenter.Row{"score\xff": int64(1)}, "UTF-8"},
		"string too long":    {eventcenter.Row{"score": strings.Repeat("x", limits.Value+1)}, "bytes"},
		"bytes too long":     {eventcenter.Row{"score": make([]byte, limits.Value+1)}, "bytes"},
		"time out of range":  {eventcenter.Row{"score": time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}, "outside"},
	} {
		err := c.row.Validate()
		if err == nil || !strings.Contains(err.Error(), "score") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate() = %v, want an error naming column score and saying %q", name, err, c.want)
		}
	}
}

func TestRowValidateAccepts(t *testing.T) {
	limits := eventcenter.CurrentSizeLimits()
	for name, r := range map[string]eventcenter.Row{
		"negative zero":    {"x": math.Copysign(0, -1)},
		"largest float":    {"x": math.MaxFloat64, "y": -math.MaxFloat64},
		"decimals":         {"a": eventcenter.Decimal("-1234.5000"), "b": eventcenter.Decimal("1e400"), "c": eventcenter.Decimal(".5"), "d": eventcenter.Decimal("+7."), "e": eventcenter.Decimal("2E-3")},
		"string not UTF-8": {"x": "\xff\xfe"},
		"value at limit":   {"x": strings.Repeat("x", limits.Value)},
		"empty":            {},
		"nil":              nil,
	} {
		if err := r.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestRowSizeLimit: a row is bounded as a whole, not only value by value.
func TestRowSizeLimit(t *testing.T) {
	limits := eventcenter.CurrentSizeLimits()
	r := eventcenter.Row{}
	for i := 0; r.Size() <= limits.Row; i++ {
		r[strings.Repeat("c", 8)+string(rune('a'+i%26))+strings.Repeat("x", i/26)] = strings.Repeat("v", limits.Value)
	}
	err := r.Validate()
	if err == nil || !strings.Contains(err.Error(), "row of") {
		t.Fatalf("row of %d bytes (limit %d): Validate() = %v", r.Size(), limits.Row, err)
	}
	for c := range r { // one column less fits, if the last one tipped it over
		delete(r, c)
		if r.Size() <= limits.Row {
			break
		}
	}
	if err := r.Validate(); r.Size() <= limits.Row && err != nil {
		t.Fatalf("row of %d bytes (limit %d): %v", r.Size(), limits.Row, err)
	}
}

func TestSetSizeLimits(t *testing.T) {
	def := eventcenter.CurrentSizeLimits()
	if want := (eventcenter.SizeLimits{Value: eventcenter.DefaultMaxValueSize, Row: eventcenter.DefaultMaxRowSize}); def != want {
		t.Fatalf("limits at start %+v, want the defaults %+v", def, want)
	}
	prev, err := eventcenter.SetSizeLimits(eventcenter.SizeLimits{Value: 10, Row: 100})
	if err != nil || prev != def {
		t.Fatalf("SetSizeLimits: previous %+v, %v", prev, err)
	}
	t.Cleanup(func() {
		if _, err := eventcenter.SetSizeLimits(def); err != nil {
			t.Error(err)
		}
	})
	if err := (eventcenter.Row{"x": strings.Repeat("x", 11)}).Validate(); err == nil {
		t.Error("an 11-byte value passed a 10-byte limit")
	}
	e := eventcenter.Event{Source: "s", Key: "k", Time: time.Unix(1, 0), Op: eventcenter.OpInsert,
		After: eventcenter.Row{"x": strings.Repeat("x", 11)}}
	if err := e.Validate(); !errors.Is(err, eventcenter.ErrInvalidEvent) {
		t.Errorf("Event.Validate = %v, want ErrInvalidEvent", err)
	}
	for _, bad := range []eventcenter.SizeLimits{{}, {Value: -1, Row: 10}, {Value: 10, Row: 5}} {
		if _, err := eventcenter.SetSizeLimits(bad); err == nil {
			t.Errorf("SetSizeLimits(%+v) accepted", bad)
		}
	}
	if got := eventcenter.CurrentSizeLimits(); got != (eventcenter.SizeLimits{Value: 10, Row: 100}) {
		t.Errorf("a refused SetSizeLimits changed the limits to %+v", got)
	}
}

// TestRowValidateCountsAsSize: Validate bounds a row by exactly its Size,
// whatever its values' types (empty texts included): a row fits a row
// limit of its size and not one a byte smaller.
func TestRowValidateCountsAsSize(t *testing.T) {
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	rows := []eventcenter.Row{
		{"a": int64(-300), "b": 1, "c": 2.5, "d": "", "e": []byte{}, "f": eventcenter.Decimal("12.50"), "g": at, "h": nil, "i": true},
		{"text": strings.Repeat("x", 200), "bytes": make([]byte, 130), "n": int64(1) << 40},
		{},
	}
	was := eventcenter.CurrentSizeLimits()
	defer eventcenter.SetSizeLimits(was)
	for i, r := range rows {
		size := r.Size()
		for _, c := range []struct {
			limit int
			fits  bool
		}{{size, true}, {size - 1, false}} {
			if c.limit < 1 {
				continue
			}
			// Values up to 200 bytes (the largest above) pass their limit.
			if _, err := eventcenter.SetSizeLimits(eventcenter.SizeLimits{Value: min(c.limit, 200), Row: c.limit}); err != nil {
				t.Fatal(err)
			}
			if err := r.Validate(); c.fits != (err == nil) || (err != nil && !strings.Contains(err.Error(), "row of")) {
				t.Fatalf("row %d of size %d, row limit %d: Validate() = %v", i, size, c.limit, err)
			}
		}
	}
}
