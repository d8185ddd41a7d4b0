package storetest

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// normRow returns r as a store gives it back: int as int64, times in UTC.
// nil stays nil (no row), an empty row stays an empty row.
func normRow(r eventcenter.Row) eventcenter.Row {
	if r == nil {
		return nil
	}
	out := make(eventcenter.Row, len(r))
	for c, v := range r {
		out[c] = normValue(v)
	}
	return out
}

// normValue returns v as a store gives it back: int as int64, times in UTC.
func normValue(v any) any {
	switch v := v.(type) {
	case int:
		return int64(v)
	case time.Time:
		return v.UTC()
	}
	return v
}

// normEvent returns e as a store gives it back: times in UTC, rows normalized.
func normEvent(e eventcenter.Event) eventcenter.Event {
	e.Time = e.Time.UTC()
	e.StoredAt = e.StoredAt.UTC()
	e.After = normRow(e.After)
	e.Before = normRow(e.Before)
	return e
}

// sameRow reports whether two rows hold the same columns with the same
// values (sameValue) after normalizing both. A nil row (no row) differs from
// an empty one.
func sameRow(got, want eventcenter.Row) bool {
	if (got == nil) != (want == nil) || len(got) != len(want) {
		return false
	}
	for c, w := range want {
		g, ok := got[c]
		if !ok || !sameValue(normValue(g), normValue(w)) {
			return false
		}
	}
	return true
}

// sameValue reports whether two row values are the same: of one type, equal,
// floats bit for bit (−0 is not +0, as == would have it), byte slices equal
// in content and in being nil.
func sameValue(a, b any) bool {
	switch a := a.(type) {
	case float64:
		b, ok := b.(float64)
		return ok && math.Float64bits(a) == math.Float64bits(b)
	case nil, bool, int64, string, eventcenter.Decimal, time.Time:
		return a == b
	case []byte:
		b, ok := b.([]byte)
		return ok && (a == nil) == (b == nil) && bytes.Equal(a, b)
	}
	return reflect.DeepEqual(a, b)
}

func isZeroEvent(e eventcenter.Event) bool {
	return e.Source == "" && e.Key == "" && e.Time.IsZero() && e.Pos == (eventcenter.Position{}) &&
		e.Op == 0 && e.After == nil && e.Before == nil && e.StoredAt.IsZero()
}

// diffEvent describes how got differs from want, or returns "". Times compare
// with Equal; rows with sameRow.
func diffEvent(got, want eventcenter.Event) string {
	var d []string
	if got.Source != want.Source {
		d = append(d, fmt.Sprintf("Source %q, want %q", got.Source, want.Source))
	}
	if got.Key != want.Key {
		d = append(d, fmt.Sprintf("Key %q, want %q", got.Key, want.Key))
	}
	if !got.Time.Equal(want.Time) {
		d = append(d, fmt.Sprintf("Time %s, want %s", fmtTime(got.Time), fmtTime(want.Time)))
	}
	if got.Pos != want.Pos {
		d = append(d, fmt.Sprintf("Pos %v, want %v", got.Pos, want.Pos))
	}
	if got.Op != want.Op {
		d = append(d, fmt.Sprintf("Op %v, want %v", got.Op, want.Op))
	}
	if !sameRow(got.After, want.After) {
		d = append(d, fmt.Sprintf("After %s, want %s", fmtRow(normRow(got.After)), fmtRow(normRow(want.After))))
	}
	if !sameRow(got.Before, want.Before) {
		d = append(d, fmt.Sprintf("Before %s, want %s", fmtRow(normRow(got.Before)), fmtRow(normRow(want.Before))))
	}
	if !got.StoredAt.Equal(want.StoredAt) {
		d = append(d, fmt.Sprintf("StoredAt %s, want %s", fmtTime(got.StoredAt), fmtTime(want.StoredAt)))
	}
	if len(d) == 0 {
		return ""
	}
	return fmt.Sprintf("event %s/%q@%s %v: %s", want.Source, want.Key, fmtTime(want.Time), want.Pos, strings.Join(d, "; "))
}

// diffEvents compares two event lists in order and describes the first
// difference with a few events of context from both sides, or returns "".
func diffEvents(got, want []eventcenter.Event) string {
	first := -1
	for i := 0; i < max(len(got), len(want)); i++ {
		if i >= len(got) || i >= len(want) || diffEvent(got[i], want[i]) != "" {
			first = i
			break
		}
	}
	if first < 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  got %d events, want %d; first difference at #%d", len(got), len(want), first)
	if first < len(got) && first < len(want) {
		fmt.Fprintf(&b, ": %s", diffEvent(got[first], want[first]))
	}
	b.WriteString("\n")
	lo, hi := max(0, first-3), first+4
	for _, side := range []struct {
		name string
		evs  []eventcenter.Event
	}{{"got", got}, {"want", want}} {
		fmt.Fprintf(&b, "  %s:\n", side.name)
		for i := lo; i < min(hi, len(side.evs)); i++ {
			mark := " "
			if i == first {
				mark = ">"
			}
			fmt.Fprintf(&b, "  %s #%d %s\n", mark, i, fmtEvent(side.evs[i]))
		}
		if hi < len(side.evs) {
			fmt.Fprintf(&b, "    … %d more\n", len(side.evs)-hi)
		}
	}
	return b.String()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.999999999Z")
}

func fmtRow(r eventcenter.Row) string {
	if r == nil {
		return "nil"
	}
	return fmt.Sprintf("%#v", map[string]any(r))
}

func fmtEvent(e eventcenter.Event) string {
	return fmt.Sprintf("%s/%q@%s %v %v after=%s before=%s stored=%s",
		e.Source, e.Key, fmtTime(e.Time), e.Pos, e.Op, fmtRow(e.After), fmtRow(e.Before), fmtTime(e.StoredAt))
}

func fmtAsOf(q eventcenter.AsOf) string {
	return fmt.Sprintf("%s/%q at %s known at %s", q.Source, q.Key, fmtTime(q.Time), fmtTime(q.KnownAt))
}

func fmtReplay(q eventcenter.ReplayQuery) string {
	return fmt.Sprintf("%q [%s, %s) known at %s", q.Sources, fmtTime(q.From), fmtTime(q.To), fmtTime(q.KnownAt))
}
