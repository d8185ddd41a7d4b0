package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

type jsonCodec struct{}

func (jsonCodec) Name() string { return "json/v1" }

// jsonDoc is a json/v1 document. A row is a pointer so that an empty row
// ({}) and an absent one (no field, or null) stay apart.
type jsonDoc struct {
	Source string                      `json:"source"`
	Key    json.RawMessage             `json:"key"` // a text value: a string or {"$s": base64}
	Time   string                      `json:"time"`
	Pos    []uint64                    `json:"pos,omitempty"`
	Op     string                      `json:"op"`
	After  *map[string]json.RawMessage `json:"after,omitempty"`
	Before *map[string]json.RawMessage `json:"before,omitempty"`
}

// Append refuses what json/v1 cannot hold exactly: non-finite floats, column
// names and decimals that are not UTF-8 text, times outside the years
// 0000-9999 of RFC 3339, and types a Row cannot hold. Keys and strings that
// are not UTF-8 are written as {"$s": base64}.
func (jsonCodec) Append(dst []byte, e *eventcenter.Event) ([]byte, error) {
	if !utf8.ValidString(e.Source) {
		return dst, fmt.Errorf("wire: json/v1: source %q is not UTF-8 text", e.Source)
	}
	t, err := formatTime(e.Time)
	if err != nil {
		return dst, fmt.Errorf("wire: json/v1: event time: %v", err)
	}
	d := jsonDoc{
		Source: e.Source, Key: appendText(nil, e.Key), Time: t,
		Pos: []uint64{e.Pos.Log, e.Pos.Offset}, Op: e.Op.String(),
	}
	if d.After, err = encodeRow(e.After); err != nil {
		return dst, fmt.Errorf("wire: json/v1: after: %v", err)
	}
	if d.Before, err = encodeRow(e.Before); err != nil {
		return dst, fmt.Errorf("wire: json/v1: before: %v", err)
	}
	b, err := json.Marshal(&d)
	return append(dst, b...), err
}

// appendText appends s as a JSON string, or as {"$s": base64 of its bytes}
// when s is not UTF-8 text (a JSON string cannot hold such bytes exactly).
func appendText(dst []byte, s string) []byte {
	if utf8.ValidString(s) {
		b, _ := json.Marshal(s) // cannot fail for a string
		return append(dst, b...)
	}
	return fmt.Appendf(dst, `{"$s":%q}`, base64.StdEncoding.EncodeToString([]byte(s)))
}

// formatTime writes t in RFC 3339 in UTC, which holds the years 0000-9999.
func formatTime(t time.Time) (string, error) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return "", fmt.Errorf("%v is outside the years 0000-9999 of RFC 3339", t)
	}
	return t.Format(time.RFC3339Nano), nil
}

func encodeRow(r eventcenter.Row) (*map[string]json.RawMessage, error) {
	if r == nil {
		return nil, nil
	}
	m := make(map[string]json.RawMessage, len(r))
	for col, v := range r {
		if !utf8.ValidString(col) {
			return nil, fmt.Errorf("column %q: the name is not UTF-8 text", col)
		}
		var enc []byte
		switch v := v.(type) {
		case nil:
			enc = []byte("null")
		case bool:
			enc = strconv.AppendBool(nil, v)
		case int64:
			enc = strconv.AppendInt(nil, v, 10)
		case int:
			enc = strconv.AppendInt(nil, int64(v), 10)
		case float64:
			if math.IsInf(v, 0) || math.IsNaN(v) {
				return nil, fmt.Errorf("column %q: %v has no JSON form", col, v)
			}
			enc = strconv.AppendFloat([]byte(`{"$f":`), v, 'g', -1, 64)
			enc = append(enc, '}')
		case string:
			enc = appendText(nil, v)
		case []byte:
			enc = fmt.Appendf(nil, `{"$b":%q}`, base64.StdEncoding.EncodeToString(v))
		case eventcenter.Decimal:
			if !utf8.ValidString(string(v)) {
				return nil, fmt.Errorf("column %q: decimal %q is not UTF-8 text", col, string(v))
			}
			s, _ := json.Marshal(string(v)) // cannot fail for a string
			enc = fmt.Appendf(nil, `{"$d":%s}`, s)
		case time.Time:
			s, err := formatTime(v)
			if err != nil {
				return nil, fmt.Errorf("column %q: %v", col, err)
			}
			enc = fmt.Appendf(nil, `{"$t":%q}`, s)
		default:
			return nil, fmt.Errorf("column %q: type %T cannot be encoded", col, v)
		}
		m[col] = enc
	}
	return &m, nil
}

// Decode refuses a document that Go's JSON parser would change silently:
// one that is not UTF-8 text or escapes half a surrogate pair (both would
// become U+FFFD, so distinct keys would collide), that names a member of an
// object twice (the parser keeps the last) or a field in another case (the
// parser matches fields ignoring case, and merges two rows), or whose "pos"
// does not have two numbers.
func (jsonCodec) Decode(b []byte, e *eventcenter.Event) error {
	if !utf8.Valid(b) {
		return errors.New("the document is not UTF-8 text (write bytes as {\"$b\": base64}, other strings as {\"$s\": base64})")
	}
	if err := checkSurrogates(b); err != nil {
		return err
	}
	if err := checkNames(b); err != nil {
		return err
	}
	var d jsonDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return err
	}
	key, err := decodeText(d.Key)
	if err != nil {
		return fmt.Errorf("key: %v", err)
	}
	t, err := time.Parse(time.RFC3339Nano, d.Time)
	if err != nil {
		return fmt.Errorf("time: %v", err)
	}
	op, err := eventcenter.ParseOp(d.Op)
	if err != nil {
		return err
	}
	*e = eventcenter.Event{Source: d.Source, Key: key, Time: t.UTC(), Op: op}
	switch len(d.Pos) {
	case 0:
		if d.Pos != nil {
			return errors.New("pos: [] (want [log, offset] or no pos)")
		}
	case 2:
		e.Pos = eventcenter.Position{Log: d.Pos[0], Offset: d.Pos[1]}
	default:
		return fmt.Errorf("pos: %d numbers (want [log, offset])", len(d.Pos))
	}
	if e.After, err = decodeRow(d.After); err != nil {
		return fmt.Errorf("after: %v", err)
	}
	if e.Before, err = decodeRow(d.Before); err != nil {
		return fmt.Errorf("before: %v", err)
	}
	return nil
}

// checkSurrogates refuses a \u escape of half a surrogate pair, which Go's
// JSON parser turns into U+FFFD. Backslashes occur only inside strings (the
// parser refuses them elsewhere), so no tracking of strings is needed.
func checkSurrogates(b []byte) error {
	hex4 := func(i int) (rune, bool) { // the escape \uXXXX at b[i:], if any
		if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
			return 0, false
		}
		r, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 16)
		return rune(r), err == nil
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		r, ok := hex4(i)
		switch {
		case !ok:
			i++ // an escaped character: skip it, it may be a backslash
		case r >= 0xd800 && r < 0xdc00:
			if lo, ok := hex4(i + 6); !ok || lo < 0xdc00 || lo > 0xdfff {
				return fmt.Errorf("\\u%04x at byte %d: a high surrogate without its low one", r, i)
			}
			i += 11
		case r >= 0xdc00 && r <= 0xdfff:
			return fmt.Errorf("\\u%04x at byte %d: a low surrogate without its high one", r, i)
		default:
			i += 5
		}
	}
	return nil
}

// docFields are the member names of a json/v1 document, exactly.
var docFields = map[string]bool{"source": true, "key": true, "time": true, "pos": true, "op": true, "after": true, "before": true}

// checkNames refuses an object that names a member twice, and a document
// whose own members are not exactly docFields.
func checkNames(b []byte) error {
	type level struct {
		names            map[string]bool // nil for an array
		object, wantName bool
	}
	var stack []level
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantName = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if n := len(stack); n > 0 && stack[n-1].wantName {
			if tok == json.Delim('}') {
				stack = stack[:n-1]
				valueDone()
				continue
			}
			name, _ := tok.(string) // the parser gives only strings here
			switch top := &stack[n-1]; {
			case top.names[name]:
				return fmt.Errorf("%q named twice in one object", name)
			case n == 1 && !docFields[name]:
				return fmt.Errorf("unknown field %q", name)
			default:
				top.names[name], top.wantName = true, false
			}
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, level{names: map[string]bool{}, object: true, wantName: true})
		case json.Delim('['):
			stack = append(stack, level{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}

// decodeText reads a text value: a JSON string or {"$s": base64}.
func decodeText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0:
		return "", nil // absent
	case raw[0] == '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case raw[0] == '{':
		v, err := decodeValue(raw)
		if s, ok := v.(string); ok || err != nil {
			return s, err
		}
	}
	return "", fmt.Errorf("%.40s is not a string or {\"$s\": base64}", raw)
}

func decodeRow(m *map[string]json.RawMessage) (eventcenter.Row, error) {
	if m == nil {
		return nil, nil
	}
	r := make(eventcenter.Row, len(*m))
	for col, raw := range *m {
		v, err := decodeValue(raw)
		if err != nil {
			return nil, fmt.Errorf("column %q: %v", col, err)
		}
		r[col] = v
	}
	return r, nil
}

func decodeValue(raw json.RawMessage) (any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, fmt.Errorf("empty value")
	}
	switch c := raw[0]; {
	case c == 'n':
		return nil, nil
	case c == 't' || c == 'f':
		var v bool
		err := json.Unmarshal(raw, &v)
		return v, err
	case c == '"':
		var v string
		err := json.Unmarshal(raw, &v)
		return v, err
	case c == '-' || (c >= '0' && c <= '9'):
		v, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s is not a 64-bit integer (write floats as {\"$f\": x}, decimals as {\"$d\": \"x\"})", raw)
		}
		return v, nil
	case c == '{':
		var tagged map[string]json.RawMessage
		if err := json.Unmarshal(raw, &tagged); err != nil {
			return nil, err
		}
		if len(tagged) != 1 {
			return nil, fmt.Errorf("an object value must have exactly one of $f, $d, $b, $t, $s")
		}
		for tag, inner := range tagged {
			if tag == "$f" {
				var f float64
				err := json.Unmarshal(inner, &f)
				return f, err
			}
			var s string
			if err := json.Unmarshal(inner, &s); err != nil {
				return nil, fmt.Errorf("%s: %v", tag, err)
			}
			switch tag {
			case "$d":
				return eventcenter.Decimal(s), nil // Event.Validate checks it is a number
			case "$b":
				return base64.StdEncoding.DecodeString(s)
			case "$s":
				b, err := base64.StdEncoding.DecodeString(s)
				return string(b), err
			case "$t":
				t, err := time.Parse(time.RFC3339Nano, s)
				return t.UTC(), err
			}
			return nil, fmt.Errorf("unknown value tag %q", tag)
		}
	}
	return nil, fmt.Errorf("unsupported JSON value %.40s", raw)
}
