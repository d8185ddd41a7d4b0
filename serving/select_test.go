package serving

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the model-based selection test (0: from the clock)")

var (
	segments = []string{"a", "b", "c", "d", ""}
	base     = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
)

// randomRow makes a feature row; each feature may be missing or null.
func randomRow(r *rand.Rand) eventcenter.Row {
	row := eventcenter.Row{"_job_version": "1"}
	maybe := func(name string, v any) {
		switch r.IntN(8) {
		case 0: // missing
		case 1:
			row[name] = nil
		default:
			row[name] = v
		}
	}
	if r.IntN(2) == 0 {
		maybe("score", float64(r.IntN(20))/4)
	} else {
		maybe("score", int64(r.IntN(5)))
	}
	maybe("segment", segments[r.IntN(len(segments))])
	maybe("vip", r.IntN(2) == 0)
	maybe("seen", base.Add(time.Duration(r.IntN(10))*time.Hour))
	maybe("amount", eventcenter.Decimal(fmt.Sprintf("%d.5", r.IntN(6))))
	return row
}

// randomPredicate makes a predicate over the features of randomRow, with
// literals of the right types.
func randomPredicate(r *rand.Rand, depth int) *Predicate {
	if depth > 0 && r.IntN(3) == 0 {
		n := 2 + r.IntN(2)
		args := make([]*Predicate, n)
		for i := range args {
			args[i] = randomPredicate(r, depth-1)
		}
		if r.IntN(2) == 0 {
			return &Predicate{And: args}
		}
		return &Predicate{Or: args}
	}
	ops := []Op{OpEq, OpNe, OpLt, OpLe, OpGt, OpGe, OpIn, OpBetween, OpIsNull, OpIsNotNull}
	var feature string
	var lit func() Value
	switch r.IntN(5) {
	case 0:
		feature, lit = "score", func() Value { return float64(r.IntN(22)-1) / 4 }
	case 1:
		feature, lit = "segment", func() Value { return segments[r.IntN(len(segments))] }
	case 2:
		feature, lit = "vip", func() Value { return r.IntN(2) == 0 }
		ops = []Op{OpEq, OpNe, OpIn, OpIsNull, OpIsNotNull}
	case 3:
		feature, lit = "seen", func() Value {
			return base.Add(time.Duration(r.IntN(12)-1) * time.Hour).Format(time.RFC3339Nano)
		}
	case 4:
		feature, lit = "amount", func() Value { return float64(r.IntN(7)) + 0.5*float64(r.IntN(2)) }
	}
	p := &Predicate{Feature: feature, Op: ops[r.IntN(len(ops))]}
	switch p.Op {
	case OpIsNull, OpIsNotNull:
	case OpIn:
		for range 1 + r.IntN(3) {
			p.Values = append(p.Values, lit())
		}
	case OpBetween:
		p.Values = []Value{lit(), lit()}
	default:
		p.Values = []Value{lit()}
	}
	return p
}

// brute evaluates p on one row, straight from the row's Go values: the
// model the Table must agree with.
func brute(p *Predicate, row eventcenter.Row) bool {
	if p.And != nil {
		for _, a := range p.And {
			if !brute(a, row) {
				return false
			}
		}
		return true
	}
	if p.Or != nil {
		for _, a := range p.Or {
			if brute(a, row) {
				return true
			}
		}
		return false
	}
	v := row[p.Feature]
	switch p.Op {
	case OpIsNull:
		return v == nil
	case OpIsNotNull:
		return v != nil
	}
	if v == nil {
		return false
	}
	var cmp func(lit Value) int
	switch x := v.(type) {
	case float64:
		cmp = func(lit Value) int { return compare(x, lit.(float64)) }
	case int64:
		cmp = func(lit Value) int { return compare(float64(x), lit.(float64)) }
	case eventcenter.Decimal:
		var f float64
		fmt.Sscan(string(x), &f)
		cmp = func(lit Value) int { return compare(f, lit.(float64)) }
	case string:
		cmp = func(lit Value) int { return strings.Compare(x, lit.(string)) }
	case bool:
		cmp = func(lit Value) int {
			if x == lit.(bool) {
				return 0
			}
			return 1
		}
	case time.Time:
		cmp = func(lit Value) int {
			t, _ := time.Parse(time.RFC3339Nano, lit.(string))
			return x.Compare(t)
		}
	}
	switch p.Op {
	case OpEq:
		return cmp(p.Values[0]) == 0
	case OpNe:
		return cmp(p.Values[0]) != 0
	case OpLt:
		return cmp(p.Values[0]) < 0
	case OpLe:
		return cmp(p.Values[0]) <= 0
	case OpGt:
		return cmp(p.Values[0]) > 0
	case OpGe:
		return cmp(p.Values[0]) >= 0
	case OpBetween:
		return cmp(p.Values[0]) >= 0 && cmp(p.Values[1]) <= 0
	case OpIn:
		return slices.ContainsFunc(p.Values, func(l Value) bool { return cmp(l) == 0 })
	}
	panic(p.Op)
}

func compare(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestSelectModel checks selections against a brute-force filter: random
// feature events (several per entity, applied in random order, some
// deleting the entity), random predicates printed and parsed back, pages
// of random sizes followed by their cursors.
func TestSelectModel(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with go test ./serving -run TestSelectModel -seed %d)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 0))
	for round := range 30 {
		// The model: the latest row of each entity.
		var evs []eventcenter.Event
		model := map[string]eventcenter.Row{}
		latest := map[string]eventcenter.Event{}
		for e := range 200 + r.IntN(300) {
			key := fmt.Sprintf("e%04d", e)
			for v := range 1 + r.IntN(3) {
				ev := eventcenter.Event{Source: "feature.x", Key: key, Time: base.Add(time.Duration(r.IntN(5)) * time.Minute),
					Pos: eventcenter.Position{Log: 1, Offset: uint64(v)}, Op: eventcenter.OpUpdate, After: randomRow(r)}
				if r.IntN(20) == 0 {
					ev.Op, ev.After = eventcenter.OpDelete, nil
				}
				evs = append(evs, ev)
				if l, ok := latest[key]; !ok || eventcenter.Compare(&l, &ev) < 0 {
					latest[key] = ev
				}
			}
		}
		for k, e := range latest {
			if e.After != nil {
				model[k] = e.After
			}
		}
		r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		tab := NewTable()
		for i := range evs {
			tab.Apply(&evs[i])
		}
		if tab.Len() != len(model) {
			t.Fatalf("round %d: table holds %d entities, model %d", round, tab.Len(), len(model))
		}
		for range 20 {
			p := randomPredicate(r, 2)
			text := p.String()
			parsed, err := ParsePredicate(text)
			if err != nil {
				t.Fatalf("round %d: %s does not parse back: %v", round, text, err)
			}
			var want []string
			for k, row := range model {
				if brute(p, row) {
					want = append(want, k)
				}
			}
			slices.Sort(want)
			var got []string
			after, limit := "", 1+r.IntN(60)
			for page := 0; ; page++ {
				sel, err := tab.Select(parsed, []string{"segment"}, after, limit)
				if err != nil {
					t.Fatalf("round %d: %s: %v", round, text, err)
				}
				if sel.Matched != len(want) {
					t.Fatalf("round %d: %s: matched %d, brute force %d", round, text, sel.Matched, len(want))
				}
				for _, s := range sel.Entities {
					got = append(got, s.Entity)
					if w := model[s.Entity]["segment"]; s.Features["segment"] != w {
						t.Fatalf("round %d: %s: segment %v, want %v", round, s.Entity, s.Features["segment"], w)
					}
				}
				if sel.Next == "" {
					break
				}
				after = sel.Next
			}
			if !slices.Equal(got, want) {
				t.Fatalf("round %d: %s:\n got %v\nwant %v", round, text, got, want)
			}
		}
	}
}

func TestParsePredicateErrors(t *testing.T) {
	for _, c := range []struct {
		text string
		pos  int
	}{
		{"", 0},
		{"score >", 7},
		{"score > 1 and", 13},
		{"score >> 1", 7},
		{"(score > 1", 10},
		{"score in (1, 2", 14},
		{"score between 1 or 2", 16},
		{"score is nul", 9},
		{"score = 'abc", 8},
		{"score ! 3", 6},
		{"score = null", 8},
		{"score > 1 garbage", 10},
		{"1 > score", 0},
		// Nesting is bounded: a body of '(' once overflowed the stack.
		{strings.Repeat("(", 1<<20), MaxNesting},
		// So are comparisons: each one is a scan of every entity.
		{strings.Repeat("score > 1 or ", MaxComparisons) + "score > 1", MaxComparisons * len("score > 1 or ")},
		{strings.Repeat("(", MaxNesting) + "score > 1" + strings.Repeat(")", MaxNesting) + " and", 2*MaxNesting + 13},
	} {
		_, err := ParsePredicate(c.text)
		var pe *PredicateError
		if !errors.As(err, &pe) {
			t.Errorf("%q: error %v, want a *PredicateError", c.text, err)
			continue
		}
		if pe.Pos != c.pos {
			t.Errorf("%.40q: position %d (%s), want %d", c.text, pe.Pos, pe.Reason, c.pos)
		}
	}
}

func TestSelectTypeErrors(t *testing.T) {
	tab := NewTable()
	tab.Apply(&eventcenter.Event{Key: "a", Time: base, Op: eventcenter.OpUpdate,
		After: eventcenter.Row{"score": 1.5, "segment": "x", "vip": true, "seen": base}})
	for _, c := range []struct {
		text string
		pos  int
		msg  string
	}{
		{"score = 'high'", 0, "holds number values"},
		{"segment > 3", 0, "holds string values"},
		{"vip < true", 0, "compares only with"},
		{"score > 1 and seen < 'yesterday'", 14, "not an RFC 3339 time"},
		{"score > 1 or nope = 1", 13, `unknown feature "nope"`},
	} {
		p, err := ParsePredicate(c.text)
		if err != nil {
			t.Fatalf("%q: %v", c.text, err)
		}
		_, err = tab.Select(p, nil, "", 10)
		var pe *PredicateError
		if !errors.As(err, &pe) || pe.Pos != c.pos || !strings.Contains(pe.Reason, c.msg) {
			t.Errorf("%q: error %v, want at %d: …%s…", c.text, err, c.pos, c.msg)
		}
	}
}
