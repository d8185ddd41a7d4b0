package source

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// ErrNotObject: a message body that is not a JSON object.
var ErrNotObject = errors.New("source: the body is not a JSON object")

// RowFromJSON makes a row of a JSON object, the body of an HTTP message, a
// RabbitMQ message or a record of a json kafka source. Each member becomes a
// column:
//
//   - null, true/false and strings stand for themselves;
//   - a number without fraction or exponent that fits int64 becomes int64;
//     every other number becomes an exact eventcenter.Decimal of its text
//     (no digit of an amount is lost to floating point);
//   - an object with exactly one member $d, $f, $b or $t is a typed value as
//     in the wire format: {"$d":"12.50"} a decimal, {"$f":0.25} a float64,
//     {"$b":"base64"} bytes, {"$t":"RFC 3339"} a time;
//   - any other object or array is kept as its compact JSON text (a string).
func RowFromJSON(b []byte) (eventcenter.Row, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, ErrNotObject
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("source: invalid JSON: %w", err)
	}
	row := make(eventcenter.Row, len(m))
	for col, raw := range m {
		v, err := jsonValue(raw)
		if err != nil {
			return nil, fmt.Errorf("source: member %q: %w", col, err)
		}
		row[col] = v
	}
	return row, nil
}

func jsonValue(raw json.RawMessage) (any, error) {
	switch c := raw[0]; {
	case c == 'n':
		return nil, nil
	case c == 't':
		return true, nil
	case c == 'f':
		return false, nil
	case c == '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case c == '-' || c >= '0' && c <= '9':
		s := string(raw)
		if !bytes.ContainsAny(raw, ".eE") {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				return n, nil
			}
		}
		return eventcenter.Decimal(s), nil
	case c == '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, err
		}
		if len(obj) == 1 {
			for tag, inner := range obj {
				if v, ok, err := taggedValue(tag, inner); ok || err != nil {
					return v, err
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.String(), nil
}

func taggedValue(tag string, inner json.RawMessage) (any, bool, error) {
	var s string
	switch tag {
	case "$f":
		var f float64
		if err := json.Unmarshal(inner, &f); err != nil {
			return nil, true, fmt.Errorf("$f: %v", err)
		}
		return f, true, nil
	case "$d", "$b", "$t":
		if err := json.Unmarshal(inner, &s); err != nil {
			return nil, true, fmt.Errorf("%s: want a string", tag)
		}
	default:
		return nil, false, nil
	}
	switch tag {
	case "$d":
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return nil, true, fmt.Errorf("$d: %q is not a number", s)
		}
		return eventcenter.Decimal(s), true, nil
	case "$b":
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, true, fmt.Errorf("$b: %v", err)
		}
		return b, true, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, true, fmt.Errorf("$t: %v", err)
	}
	return t.UTC(), true, nil
}
