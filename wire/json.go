package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

type jsonCodec struct{}

func (jsonCodec) Name() string { return "json/v1" }

type jsonDoc struct {
	Source string                     `json:"source"`
	Key    string                     `json:"key"`
	Time   string                     `json:"time"`
	Pos    [2]uint64                  `json:"pos"`
	Op     string                     `json:"op"`
	After  map[string]json.RawMessage `json:"after,omitempty"`
	Before map[string]json.RawMessage `json:"before,omitempty"`
}

func (jsonCodec) Append(dst []byte, e *eventcenter.Event) ([]byte, error) {
	d := jsonDoc{
		Source: e.Source, Key: e.Key, Time: e.Time.UTC().Format(time.RFC3339Nano),
		Pos: [2]uint64{e.Pos.Log, e.Pos.Offset}, Op: e.Op.String(),
	}
	var err error
	if d.After, err = encodeRow(e.After); err != nil {
		return dst, err
	}
	if d.Before, err = encodeRow(e.Before); err != nil {
		return dst, err
	}
	b, err := json.Marshal(&d)
	return append(dst, b...), err
}

func encodeRow(r eventcenter.Row) (map[string]json.RawMessage, error) {
	if r == nil {
		return nil, nil
	}
	m := make(map[string]json.RawMessage, len(r))
	for col, v := range r {
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
				return nil, fmt.Errorf("wire: column %q: %v has no JSON form", col, v)
			}
			enc = strconv.AppendFloat([]byte(`{"$f":`), v, 'g', -1, 64)
			enc = append(enc, '}')
		case string:
			enc, _ = json.Marshal(v)
		case []byte:
			enc = fmt.Appendf(nil, `{"$b":%q}`, base64.StdEncoding.EncodeToString(v))
		case eventcenter.Decimal:
			s, _ := json.Marshal(string(v))
			enc = fmt.Appendf(nil, `{"$d":%s}`, s)
		case time.Time:
			enc = fmt.Appendf(nil, `{"$t":%q}`, v.UTC().Format(time.RFC3339Nano))
		default:
			return nil, fmt.Errorf("wire: column %q: type %T cannot be encoded", col, v)
		}
		m[col] = enc
	}
	return m, nil
}

func (jsonCodec) Decode(b []byte, e *eventcenter.Event) error {
	var d jsonDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, d.Time)
	if err != nil {
		return fmt.Errorf("time: %v", err)
	}
	op, err := eventcenter.ParseOp(d.Op)
	if err != nil {
		return err
	}
	*e = eventcenter.Event{Source: d.Source, Key: d.Key, Time: t, Op: op,
		Pos: eventcenter.Position{Log: d.Pos[0], Offset: d.Pos[1]}}
	if e.After, err = decodeRow(d.After); err != nil {
		return fmt.Errorf("after: %v", err)
	}
	if e.Before, err = decodeRow(d.Before); err != nil {
		return fmt.Errorf("before: %v", err)
	}
	return nil
}

func decodeRow(m map[string]json.RawMessage) (eventcenter.Row, error) {
	if m == nil {
		return nil, nil
	}
	r := make(eventcenter.Row, len(m))
	for col, raw := range m {
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
			return nil, fmt.Errorf("an object value must have exactly one of $f, $d, $b, $t")
		}
		for tag, inner := range tagged {
			switch tag {
			case "$f":
				var f float64
				err := json.Unmarshal(inner, &f)
				return f, err
			case "$d":
				var s string
				if err := json.Unmarshal(inner, &s); err != nil {
					return nil, err
				}
				if _, err := strconv.ParseFloat(s, 64); err != nil {
					return nil, fmt.Errorf("decimal %q is not a number", s)
				}
				return eventcenter.Decimal(s), nil
			case "$b":
				var s string
				if err := json.Unmarshal(inner, &s); err != nil {
					return nil, err
				}
				return base64.StdEncoding.DecodeString(s)
			case "$t":
				var s string
				if err := json.Unmarshal(inner, &s); err != nil {
					return nil, err
				}
				t, err := time.Parse(time.RFC3339Nano, s)
				return t.UTC(), err
			}
			return nil, fmt.Errorf("unknown value tag %q", tag)
		}
	}
	return nil, fmt.Errorf("unsupported JSON value %.40s", raw)
}
