package serving

import (
	"errors"
	"testing"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// FuzzPredicate: any text either parses, prints back to a text that parses
// to the same form, and selects without panicking, or is refused with a
// *PredicateError at an offset within the text.
func FuzzPredicate(f *testing.F) {
	for _, s := range []string{
		"score > 1", "a = 'x' and (b in (1, 2) or c is not null)", "`odd name` between -1e3 and 4.5",
		"vip = true or vip != false", "seen < '2026-11-01T00:00:00Z'", "((a", "a in ()", "'unterminated", "a <> 3",
	} {
		f.Add(s)
	}
	tab := NewTable()
	tab.Apply(&eventcenter.Event{Key: "k", Time: base, Op: eventcenter.OpUpdate,
		After: eventcenter.Row{"a": 1.0, "b": int64(2), "c": "x", "vip": true, "seen": base, "score": 3.5, "odd name": 0.0}})
	f.Fuzz(func(t *testing.T, text string) {
		p, err := ParsePredicate(text)
		if err != nil {
			var pe *PredicateError
			if !errors.As(err, &pe) || pe.Pos < 0 || pe.Pos > len(text) {
				t.Fatalf("%q: %v", text, err)
			}
			return
		}
		again, err := ParsePredicate(p.String())
		if err != nil || again.String() != p.String() {
			t.Fatalf("%q prints as %q, which parses to %v, %v", text, p.String(), again, err)
		}
		if _, err := tab.Select(p, nil, "", 10); err != nil && !errors.Is(err, ErrPredicate) {
			t.Fatalf("%q: select: %v", text, err)
		}
	})
}
