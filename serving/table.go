package serving

import (
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// Kind is the type of a feature column in a Table.
type Kind uint8

// Kinds. A column takes the kind of its first non-null value: int64, int,
// float64 and Decimal are numbers (compared as float64: integers beyond
// 2^53 and long decimals lose digits); string and []byte are strings
// (compared bytewise); bool; time.Time.
const (
	KindUnknown Kind = iota // only nulls so far
	KindNumber
	KindString
	KindBool
	KindTime
)

var kindNames = [...]string{"unknown", "number", "string", "bool", "time"}

func (k Kind) String() string { return kindNames[k] }

func kindOf(v any) (Kind, float64, string, bool, int64, bool) {
	switch v := v.(type) {
	case int64:
		return KindNumber, float64(v), "", false, 0, true
	case int:
		return KindNumber, float64(v), "", false, 0, true
	case float64:
		return KindNumber, v, "", false, 0, true
	case eventcenter.Decimal:
		f, err := strconv.ParseFloat(string(v), 64)
		return KindNumber, f, "", false, 0, err == nil
	case string:
		return KindString, 0, v, false, 0, true
	case []byte:
		return KindString, 0, string(v), false, 0, true
	case bool:
		return KindBool, 0, "", v, 0, true
	case time.Time:
		return KindTime, 0, "", false, v.UnixNano(), true
	}
	return KindUnknown, 0, "", false, 0, false
}

// bitset is a set of row numbers.
type bitset []uint64

func newBitset(n int) bitset    { return make(bitset, (n+63)/64) }
func (b bitset) set(i int)      { b[i>>6] |= 1 << (i & 63) }
func (b bitset) clear(i int)    { b[i>>6] &^= 1 << (i & 63) }
func (b bitset) has(i int) bool { return b[i>>6]&(1<<(i&63)) != 0 }
func (b bitset) and(o bitset) {
	for i := range b {
		b[i] &= o[i]
	}
}
func (b bitset) or(o bitset) {
	for i := range b {
		b[i] |= o[i]
	}
}
func (b bitset) grow(n int) bitset {
	for len(b) < (n+63)/64 {
		b = append(b, 0)
	}
	return b
}

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// column holds one feature of every row, in the slice of its kind.
type column struct {
	kind    Kind
	present bitset // rows holding a value of the column's kind
	num     []float64
	str     []string
	bol     []bool
	tim     []int64
}

func (c *column) grow(n int) {
	c.present = c.present.grow(n)
	switch c.kind {
	case KindNumber:
		c.num = slices.Grow(c.num, n-len(c.num))[:n]
	case KindString:
		c.str = slices.Grow(c.str, n-len(c.str))[:n]
	case KindBool:
		c.bol = slices.Grow(c.bol, n-len(c.bol))[:n]
	case KindTime:
		c.tim = slices.Grow(c.tim, n-len(c.tim))[:n]
	}
}

// Table is a columnar copy of the latest feature row of each entity of one
// feature source: one row per entity, one typed column per feature. It is
// what Select scans. The zero Table is not usable; make one with NewTable.
// A Table is not safe for concurrent use (Selector guards its tables).
type Table struct {
	entities []string
	index    map[string]int
	version  []eventcenter.ID // (time, pos) of each row's event
	live     bitset           // rows whose entity has features (not deleted)
	cols     map[string]*column
	// Mismatched counts values whose type differs from their column's
	// kind: they read as null.
	Mismatched int
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{index: map[string]int{}, cols: map[string]*column{}}
}

// Len is the number of entities with features.
func (t *Table) Len() int { return t.live.count() }

// Columns returns the feature names and kinds, by name.
func (t *Table) Columns() map[string]Kind {
	m := make(map[string]Kind, len(t.cols))
	for name, c := range t.cols {
		m[name] = c.kind
	}
	return m
}

// Apply folds a feature event into the table: the entity's row becomes e's
// features if e is later (by time, then position) than the event its row
// holds, as eventcenter.Reader.AsOf orders them. Columns starting with '_'
// (the record's stamps) are left out. Applying an event twice, or out of
// order, gives the same table.
func (t *Table) Apply(e *eventcenter.Event) {
	i, ok := t.index[e.Key]
	if !ok {
		i = len(t.entities)
		t.entities = append(t.entities, e.Key)
		t.index[e.Key] = i
		t.version = append(t.version, eventcenter.ID{})
		t.live = t.live.grow(i + 1)
		for _, c := range t.cols {
			c.grow(i + 1)
		}
	} else if v := t.version[i]; e.Time.Before(v.Time) || (e.Time.Equal(v.Time) && e.Pos.Compare(v.Pos) <= 0) {
		return
	}
	t.version[i] = eventcenter.ID{Time: e.Time, Pos: e.Pos}
	for _, c := range t.cols {
		c.present.clear(i)
	}
	if e.After == nil {
		t.live.clear(i)
		return
	}
	t.live.set(i)
	for name, v := range e.After {
		if strings.HasPrefix(name, "_") {
			continue
		}
		k, f, s, b, tm, ok := kindOf(v)
		if !ok {
			continue // null
		}
		c := t.cols[name]
		if c == nil {
			c = &column{}
			t.cols[name] = c
		}
		if c.kind == KindUnknown {
			c.kind = k
		}
		c.grow(len(t.entities))
		if c.kind != k {
			t.Mismatched++
			continue
		}
		c.present.set(i)
		switch k {
		case KindNumber:
			c.num[i] = f
		case KindString:
			c.str[i] = s
		case KindBool:
			c.bol[i] = b
		case KindTime:
			c.tim[i] = tm
		}
	}
}

// value returns row i's value of c in its JSON form (nil if absent).
func (c *column) value(i int) any {
	if c == nil || i >= len(c.present)*64 || !c.present.has(i) {
		return nil
	}
	switch c.kind {
	case KindNumber:
		return c.num[i]
	case KindString:
		return c.str[i]
	case KindBool:
		return c.bol[i]
	case KindTime:
		return time.Unix(0, c.tim[i]).UTC()
	}
	return nil
}

// compile checks p against the table's columns and returns a function
// computing its rows.
func (t *Table) compile(p *Predicate) (func() bitset, error) {
	n := len(t.entities)
	if p.And != nil || p.Or != nil {
		args := p.And
		if args == nil {
			args = p.Or
		}
		fs := make([]func() bitset, len(args))
		for i, a := range args {
			f, err := t.compile(a)
			if err != nil {
				return nil, err
			}
			fs[i] = f
		}
		and := p.And != nil
		return func() bitset {
			acc := fs[0]()
			for _, f := range fs[1:] {
				if and {
					acc.and(f())
				} else {
					acc.or(f())
				}
			}
			return acc
		}, nil
	}
	c, ok := t.cols[p.Feature]
	if !ok {
		names := make([]string, 0, len(t.cols))
		for name := range t.cols {
			names = append(names, name)
		}
		slices.Sort(names)
		return nil, &PredicateError{Pos: p.Pos, Reason: fmt.Sprintf("unknown feature %q (features: %s)", p.Feature, strings.Join(names, ", "))}
	}
	switch p.Op {
	case OpIsNull:
		return func() bitset {
			b := newBitset(n)
			copy(b, c.present)
			for i := range b {
				b[i] = ^b[i]
			}
			b.and(t.live)
			return b
		}, nil
	case OpIsNotNull:
		return func() bitset { b := newBitset(n); copy(b, c.present); return b }, nil
	}
	vals, err := t.coerce(p, c.kind)
	if err != nil {
		return nil, err
	}
	if c.kind == KindUnknown {
		return func() bitset { return newBitset(n) }, nil // every value null
	}
	match, err := matcher(p.Op, c.kind, vals)
	if err != nil {
		return nil, &PredicateError{Pos: p.Pos, Reason: err.Error()}
	}
	return func() bitset {
		b := newBitset(n)
		for w, word := range c.present {
			for word != 0 {
				i := w*64 + bits.TrailingZeros64(word)
				word &= word - 1
				if match(c, i) {
					b.set(i)
				}
			}
		}
		return b
	}, nil
}

// coerce checks the leaf's literals against the column's kind and converts
// them (time strings to nanoseconds).
func (t *Table) coerce(p *Predicate, k Kind) ([]any, error) {
	out := make([]any, len(p.Values))
	for i, v := range p.Values {
		bad := func() error {
			return &PredicateError{Pos: p.Pos, Reason: fmt.Sprintf("feature %q holds %s values; %s is a %s", p.Feature, k, literal(v), litKind(v))}
		}
		switch k {
		case KindUnknown:
			out[i] = v
		case KindNumber:
			f, ok := v.(float64)
			if !ok {
				return nil, bad()
			}
			out[i] = f
		case KindString:
			s, ok := v.(string)
			if !ok {
				return nil, bad()
			}
			out[i] = s
		case KindBool:
			b, ok := v.(bool)
			if !ok {
				return nil, bad()
			}
			out[i] = b
		case KindTime:
			s, ok := v.(string)
			if !ok {
				return nil, bad()
			}
			tm, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return nil, &PredicateError{Pos: p.Pos, Reason: fmt.Sprintf("feature %q holds times; %s is not an RFC 3339 time", p.Feature, literal(v))}
			}
			out[i] = tm.UnixNano()
		}
	}
	return out, nil
}

func litKind(v any) string {
	switch v.(type) {
	case float64:
		return "number"
	case string:
		return "string"
	case bool:
		return "bool"
	}
	return fmt.Sprintf("%T", v)
}

// matcher returns the test of one present row for op over literals vals
// (already of the column's kind).
func matcher(op Op, k Kind, vals []any) (func(c *column, i int) bool, error) {
	if k == KindBool {
		switch op {
		case OpEq, OpNe, OpIn:
		default:
			return nil, fmt.Errorf("a bool feature compares only with =, != and in")
		}
		want := map[bool]bool{}
		for _, v := range vals {
			want[v.(bool)] = true
		}
		neg := op == OpNe
		return func(c *column, i int) bool { return want[c.bol[i]] != neg }, nil
	}
	cmp := func(x, y any) int { // x: row value, y: literal
		switch x := x.(type) {
		case float64:
			y := y.(float64)
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		case string:
			return strings.Compare(x, y.(string))
		case int64:
			y := y.(int64)
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
		panic("serving: unexpected kind")
	}
	get := func(c *column, i int) any {
		switch k {
		case KindNumber:
			return c.num[i]
		case KindString:
			return c.str[i]
		}
		return c.tim[i]
	}
	// Numbers, the common case, without boxing.
	if k == KindNumber {
		fs := make([]float64, len(vals))
		for i, v := range vals {
			fs[i] = v.(float64)
		}
		switch op {
		case OpEq:
			return func(c *column, i int) bool { return c.num[i] == fs[0] }, nil
		case OpNe:
			return func(c *column, i int) bool { return c.num[i] != fs[0] }, nil
		case OpLt:
			return func(c *column, i int) bool { return c.num[i] < fs[0] }, nil
		case OpLe:
			return func(c *column, i int) bool { return c.num[i] <= fs[0] }, nil
		case OpGt:
			return func(c *column, i int) bool { return c.num[i] > fs[0] }, nil
		case OpGe:
			return func(c *column, i int) bool { return c.num[i] >= fs[0] }, nil
		case OpBetween:
			return func(c *column, i int) bool { return c.num[i] >= fs[0] && c.num[i] <= fs[1] }, nil
		case OpIn:
			return func(c *column, i int) bool { return slices.Contains(fs, c.num[i]) }, nil
		}
	}
	switch op {
	case OpEq:
		return func(c *column, i int) bool { return cmp(get(c, i), vals[0]) == 0 }, nil
	case OpNe:
		return func(c *column, i int) bool { return cmp(get(c, i), vals[0]) != 0 }, nil
	case OpLt:
		return func(c *column, i int) bool { return cmp(get(c, i), vals[0]) < 0 }, nil
	case OpLe:
		return func(c *column, i int) bool { return cmp(get(c, i), vals[0]) <= 0 }, nil
	case OpGt:
		return func(c *column, i int) bool { return cmp(get(c, i), vals[0]) > 0 }, nil
	case OpGe:
		return func(c *column, i int) bool { return cmp(get(c, i), vals[0]) >= 0 }, nil
	case OpBetween:
		return func(c *column, i int) bool { x := get(c, i); return cmp(x, vals[0]) >= 0 && cmp(x, vals[1]) <= 0 }, nil
	case OpIn:
		return func(c *column, i int) bool {
			x := get(c, i)
			for _, v := range vals {
				if cmp(x, v) == 0 {
					return true
				}
			}
			return false
		}, nil
	}
	return nil, fmt.Errorf("unknown comparison %q", op)
}

// Selected is one entity a selection picked, with the features asked for.
type Selected struct {
	Entity   string         `json:"entity"`
	Features map[string]any `json:"features,omitempty"`
}

// Selection is a page of a selection's result.
type Selection struct {
	// Entities: at most the limit, ordered by entity key.
	Entities []Selected `json:"entities"`
	// Matched: how many entities satisfy the predicate in all.
	Matched int `json:"matched"`
	// Next is the cursor of the next page; "" on the last page.
	Next string `json:"next,omitempty"`
}

// Select returns the entities whose features satisfy p, ordered by entity
// key, those after the entity key after (a page's cursor: "" for the first
// page), at most limit of them, with the features named by features
// (unknown names are an error). Errors are *PredicateError.
func (t *Table) Select(p *Predicate, features []string, after string, limit int) (Selection, error) {
	f, err := t.compile(p)
	if err != nil {
		return Selection{}, err
	}
	var cols []*column
	for _, name := range features {
		c, ok := t.cols[name]
		if !ok {
			return Selection{}, &PredicateError{Pos: -1, Reason: fmt.Sprintf("unknown feature %q asked for", name)}
		}
		cols = append(cols, c)
	}
	rows := f()
	rows.and(t.live)
	sel := Selection{Matched: rows.count(), Entities: []Selected{}}
	var picked []int
	for w, word := range rows {
		for word != 0 {
			i := w*64 + bits.TrailingZeros64(word)
			word &= word - 1
			if t.entities[i] > after {
				picked = append(picked, i)
			}
		}
	}
	more := len(picked) > limit
	if more {
		// The limit smallest keys: a partial sort would do, a full sort of
		// what is after the cursor is simple and fast at 1% of 1M.
		slices.SortFunc(picked, func(a, b int) int { return strings.Compare(t.entities[a], t.entities[b]) })
		picked = picked[:limit]
	} else {
		slices.SortFunc(picked, func(a, b int) int { return strings.Compare(t.entities[a], t.entities[b]) })
	}
	for _, i := range picked {
		s := Selected{Entity: t.entities[i]}
		if len(cols) > 0 {
			s.Features = make(map[string]any, len(cols))
			for k, c := range cols {
				s.Features[features[k]] = c.value(i)
			}
		}
		sel.Entities = append(sel.Entities, s)
	}
	if more {
		sel.Next = sel.Entities[len(sel.Entities)-1].Entity
	}
	return sel, nil
}
