package serving

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrPredicate: a predicate that does not parse, names an unknown feature or
// compares a feature with a value of another type. Errors matching it are
// *PredicateError.
var ErrPredicate = errors.New("serving: bad predicate")

// PredicateError is a predicate refused at byte offset Pos (0-based) of its
// text.
type PredicateError struct {
	Pos    int
	Reason string
}

func (e *PredicateError) Error() string {
	return fmt.Sprintf("serving: predicate at offset %d: %s", e.Pos, e.Reason)
}

// Is makes a PredicateError match ErrPredicate.
func (e *PredicateError) Is(target error) bool { return target == ErrPredicate }

// Op is a comparison of a Predicate leaf.
type Op string

// Comparisons.
const (
	OpEq        Op = "="
	OpNe        Op = "!="
	OpLt        Op = "<"
	OpLe        Op = "<="
	OpGt        Op = ">"
	OpGe        Op = ">="
	OpIn        Op = "in"
	OpBetween   Op = "between" // Values[0] <= x <= Values[1]
	OpIsNull    Op = "is null"
	OpIsNotNull Op = "is not null"
)

// Value is a literal of a predicate: a number (float64), a string, a bool,
// or a time (time.Time; written as a string literal, read as RFC 3339 when
// the feature holds times).
type Value = any

// Predicate is a parsed predicate: a leaf comparison of one feature
// (Feature, Op, Values) or a combination (And or Or of Args).
//
// The text form (see ParsePredicate):
//
//	expr    := and ("or" and)*
//	and     := unary ("and" unary)*
//	unary   := "(" expr ")" | feature cmp
//	cmp     := ("=" | "!=" | "<" | "<=" | ">" | ">=") literal
//	         | "in" "(" literal ("," literal)* ")"
//	         | "between" literal "and" literal
//	         | "is" ["not"] "null"
//	literal := number | 'single' or "double" quoted string | true | false
//
// Feature names are identifiers ([A-Za-z_][A-Za-z0-9_.]*) or double-quoted
// with backquotes (`any name`). Keywords are case-insensitive.
//
// A comparison with a missing or null feature is false (as in SQL), except
// "is null", true exactly then.
type Predicate struct {
	And, Or []*Predicate

	Feature string
	Op      Op
	Values  []Value
	// Pos is where the leaf's feature name starts in the text.
	Pos int
}

// String writes p in the text form, parenthesised so that it parses back
// to the same tree.
func (p *Predicate) String() string {
	var b strings.Builder
	p.write(&b)
	return b.String()
}

func (p *Predicate) write(b *strings.Builder) {
	join := func(args []*Predicate, sep string) {
		b.WriteByte('(')
		for i, a := range args {
			if i > 0 {
				b.WriteString(sep)
			}
			a.write(b)
		}
		b.WriteByte(')')
	}
	switch {
	case p.And != nil:
		join(p.And, " and ")
		return
	case p.Or != nil:
		join(p.Or, " or ")
		return
	}
	b.WriteString("`" + p.Feature + "`")
	switch p.Op {
	case OpIsNull, OpIsNotNull:
		b.WriteString(" " + string(p.Op))
	case OpIn:
		b.WriteString(" in (")
		for i, v := range p.Values {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(literal(v))
		}
		b.WriteByte(')')
	case OpBetween:
		b.WriteString(" between " + literal(p.Values[0]) + " and " + literal(p.Values[1]))
	default:
		b.WriteString(" " + string(p.Op) + " " + literal(p.Values[0]))
	}
}

func literal(v Value) string {
	switch v := v.(type) {
	case string:
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		return "'" + v.UTC().Format(time.RFC3339Nano) + "'"
	}
	return fmt.Sprint(v)
}

// ParsePredicate parses the text form (see Predicate). Errors are
// *PredicateError with the offset of the offending token.
func ParsePredicate(text string) (*Predicate, error) {
	p := &parser{s: text}
	p.next()
	e, err := p.expr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.errf("unexpected %s after the predicate", p.tok)
	}
	return e, nil
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tOp
	tLParen
	tRParen
	tComma
	tBad
)

type token struct {
	kind tokKind
	text string // identifier, string value, number or operator text
	pos  int
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of text"
	case tString:
		return strconv.Quote(t.text)
	}
	return "'" + t.text + "'"
}

// MaxNesting bounds how deeply a predicate's parentheses nest. The parser
// recurses once per level: without a bound, a body of a million '(' would
// overflow the server's stack, a fatal error no handler can recover.
const MaxNesting = 64

// MaxComparisons bounds the comparisons of one predicate: a selection scans
// every entity once per comparison, so a 1 MiB body of "a = 1 or a = 1 or …"
// would hold a core for minutes.
const MaxComparisons = 256

type parser struct {
	s      string
	i      int
	tok    token
	err    *PredicateError // a lexing error, reported when the token is used
	depth  int             // parentheses open around the token
	leaves int             // comparisons parsed so far
}

func (p *parser) errf(format string, args ...any) error {
	if p.err != nil {
		return p.err
	}
	return &PredicateError{Pos: p.tok.pos, Reason: fmt.Sprintf(format, args...)}
}

func (p *parser) next() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
	start := p.i
	if p.i >= len(p.s) {
		p.tok = token{kind: tEOF, pos: start}
		return
	}
	c := p.s[p.i]
	switch {
	case c == '(':
		p.i++
		p.tok = token{kind: tLParen, text: "(", pos: start}
	case c == ')':
		p.i++
		p.tok = token{kind: tRParen, text: ")", pos: start}
	case c == ',':
		p.i++
		p.tok = token{kind: tComma, text: ",", pos: start}
	case c == '=' || c == '<' || c == '>' || c == '!':
		p.i++
		if p.i < len(p.s) && p.s[p.i] == '=' {
			p.i++
		} else if c == '<' && p.i < len(p.s) && p.s[p.i] == '>' {
			p.i++
		}
		op := p.s[start:p.i]
		if op == "!" {
			p.bad(start, "'!' must be followed by '='")
			return
		}
		if op == "<>" {
			op = "!="
		}
		if op == "==" {
			op = "="
		}
		p.tok = token{kind: tOp, text: op, pos: start}
	case c == '\'' || c == '"' || c == '`':
		// Quotes double to escape themselves.
		var b strings.Builder
		p.i++
		for {
			if p.i >= len(p.s) {
				p.bad(start, "unterminated quote")
				return
			}
			if p.s[p.i] == c {
				if p.i+1 < len(p.s) && p.s[p.i+1] == c {
					b.WriteByte(c)
					p.i += 2
					continue
				}
				p.i++
				break
			}
			b.WriteByte(p.s[p.i])
			p.i++
		}
		kind := tString
		if c == '`' {
			kind = tIdent
		}
		p.tok = token{kind: kind, text: b.String(), pos: start}
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		p.i++
		for p.i < len(p.s) && strings.IndexByte("0123456789.eE+-_", p.s[p.i]) >= 0 {
			if (p.s[p.i] == '+' || p.s[p.i] == '-') && p.s[p.i-1] != 'e' && p.s[p.i-1] != 'E' {
				break
			}
			p.i++
		}
		p.tok = token{kind: tNumber, text: p.s[start:p.i], pos: start}
	default:
		r, n := utf8.DecodeRuneInString(p.s[p.i:])
		if !(unicode.IsLetter(r) || r == '_') {
			p.bad(start, fmt.Sprintf("unexpected character %q", r))
			return
		}
		p.i += n
		for p.i < len(p.s) {
			r, n := utf8.DecodeRuneInString(p.s[p.i:])
			if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '.') {
				break
			}
			p.i += n
		}
		p.tok = token{kind: tIdent, text: p.s[start:p.i], pos: start}
	}
}

func (p *parser) bad(pos int, reason string) {
	p.tok = token{kind: tBad, pos: pos}
	p.err = &PredicateError{Pos: pos, Reason: reason}
}

func (p *parser) keyword(kw string) bool {
	return p.tok.kind == tIdent && strings.EqualFold(p.tok.text, kw) && p.s[p.tok.pos] != '`'
}

func (p *parser) expr() (*Predicate, error) {
	var args []*Predicate
	for {
		a, err := p.and()
		if err != nil {
			return nil, err
		}
		args = append(args, a)
		if !p.keyword("or") {
			break
		}
		p.next()
	}
	if len(args) == 1 {
		return args[0], nil
	}
	return &Predicate{Or: args}, nil
}

func (p *parser) and() (*Predicate, error) {
	var args []*Predicate
	for {
		a, err := p.unary()
		if err != nil {
			return nil, err
		}
		args = append(args, a)
		if !p.keyword("and") {
			break
		}
		p.next()
	}
	if len(args) == 1 {
		return args[0], nil
	}
	return &Predicate{And: args}, nil
}

func (p *parser) unary() (*Predicate, error) {
	if p.tok.kind == tLParen {
		if p.depth == MaxNesting {
			return nil, p.errf("parentheses nest deeper than %d levels", MaxNesting)
		}
		p.depth++
		defer func() { p.depth-- }()
		p.next()
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tRParen {
			return nil, p.errf("expected ')', found %s", p.tok)
		}
		p.next()
		return e, nil
	}
	if p.tok.kind != tIdent || p.keyword("and") || p.keyword("or") {
		return nil, p.errf("expected a feature name or '(', found %s", p.tok)
	}
	if p.leaves == MaxComparisons {
		return nil, p.errf("more than %d comparisons", MaxComparisons)
	}
	p.leaves++
	leaf := &Predicate{Feature: p.tok.text, Pos: p.tok.pos}
	p.next()
	switch {
	case p.tok.kind == tOp:
		leaf.Op = Op(p.tok.text)
		p.next()
		v, err := p.literal()
		if err != nil {
			return nil, err
		}
		leaf.Values = []Value{v}
	case p.keyword("in"):
		leaf.Op = OpIn
		p.next()
		if p.tok.kind != tLParen {
			return nil, p.errf("expected '(' after in, found %s", p.tok)
		}
		p.next()
		for {
			v, err := p.literal()
			if err != nil {
				return nil, err
			}
			leaf.Values = append(leaf.Values, v)
			if p.tok.kind == tRParen {
				p.next()
				break
			}
			if p.tok.kind != tComma {
				return nil, p.errf("expected ',' or ')' in the list, found %s", p.tok)
			}
			p.next()
		}
	case p.keyword("between"):
		leaf.Op = OpBetween
		p.next()
		lo, err := p.literal()
		if err != nil {
			return nil, err
		}
		if !p.keyword("and") {
			return nil, p.errf("expected and in between, found %s", p.tok)
		}
		p.next()
		hi, err := p.literal()
		if err != nil {
			return nil, err
		}
		leaf.Values = []Value{lo, hi}
	case p.keyword("is"):
		p.next()
		leaf.Op = OpIsNull
		if p.keyword("not") {
			leaf.Op = OpIsNotNull
			p.next()
		}
		if !p.keyword("null") {
			return nil, p.errf("expected null, found %s", p.tok)
		}
		p.next()
	default:
		return nil, p.errf("expected a comparison (=, !=, <, <=, >, >=, in, between, is null) after %q, found %s", leaf.Feature, p.tok)
	}
	return leaf, nil
}

func (p *parser) literal() (Value, error) {
	t := p.tok
	switch {
	case t.kind == tString:
		p.next()
		return t.text, nil
	case t.kind == tNumber:
		f, err := strconv.ParseFloat(strings.ReplaceAll(t.text, "_", ""), 64)
		if err != nil {
			return nil, p.errf("%q is not a number", t.text)
		}
		p.next()
		return f, nil
	case p.keyword("true"), p.keyword("false"):
		p.next()
		return strings.EqualFold(t.text, "true"), nil
	case p.keyword("null"):
		return nil, p.errf("null is not a value to compare with: use is null")
	}
	return nil, p.errf("expected a value (number, quoted string, true, false), found %s", t)
}
