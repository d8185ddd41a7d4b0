package wire

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

func sample() eventcenter.Event {
	return eventcenter.Event{
		Source: "mysql.loan.orders", Key: "42",
		Time: time.Date(2026, 11, 26, 8, 0, 0, 500, time.UTC),
		Pos:  eventcenter.Position{Log: 3, Offset: 1234}, Op: eventcenter.OpUpdate,
		After: eventcenter.Row{
			"id": int64(42), "user_id": "u7", "amount": eventcenter.Decimal("1200.50"), "note": nil,
			"ratio": 0.25, "whole": 1.0, "blob": []byte{0, 1}, "due": time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), "ok": true,
		},
		Before: eventcenter.Row{"id": int64(42), "amount": eventcenter.Decimal("1000")},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, c := range []Codec{JSON, Binary} {
		t.Run(c.Name(), func(t *testing.T) {
			in := sample()
			b, err := c.Append(nil, &in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Decode(c.Name(), b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(in, out) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", out, in)
			}
		})
	}
}

// roundTrip encodes e with c and decodes the message as a consumer does.
func roundTrip(t *testing.T, c Codec, e eventcenter.Event) eventcenter.Event {
	t.Helper()
	b, err := c.Append(nil, &e)
	if err != nil {
		t.Fatalf("%s: Append: %v", c.Name(), err)
	}
	out, err := Decode(c.Name(), b)
	if err != nil {
		t.Fatalf("%s: Decode: %v", c.Name(), err)
	}
	return out
}

// TestEmptyRows: a present but empty row stays present, an absent one absent.
func TestEmptyRows(t *testing.T) {
	for _, c := range []Codec{JSON, Binary} {
		in := sample()
		in.After, in.Before = eventcenter.Row{}, nil
		out := roundTrip(t, c, in)
		if out.After == nil || len(out.After) != 0 || out.Before != nil {
			t.Errorf("%s: After %#v, Before %#v; want an empty After and no Before", c.Name(), out.After, out.Before)
		}
		in.After, in.Before = nil, eventcenter.Row{}
		out = roundTrip(t, c, in)
		if out.After != nil || out.Before == nil || len(out.Before) != 0 {
			t.Errorf("%s: After %#v, Before %#v; want no After and an empty Before", c.Name(), out.After, out.Before)
		}
	}
	// A delete's explicit empty after row is a row, and a delete has none.
	doc := `{"source":"s","key":"k","time":"2026-01-01T00:00:00Z","op":"delete","after":{}}`
	if _, err := Decode("", []byte(doc)); !errors.Is(err, ErrMalformed) {
		t.Errorf("delete with an empty after row: %v, want ErrMalformed", err)
	}
}

// TestNotUTF8: keys and strings that are not UTF-8 travel exactly, so
// distinct keys stay distinct.
func TestNotUTF8(t *testing.T) {
	for _, c := range []Codec{JSON, Binary} {
		seen := map[string]bool{}
		for _, key := range []string{"\xff", "\xfe", "\xff\xfe", "a\x80", "\ufffd", "ok"} {
			in := sample()
			in.Key = key
			in.After["s"] = "v" + key
			in.Before["\ufffd"] = key
			out := roundTrip(t, c, in)
			if out.Key != key || out.After["s"] != "v"+key || out.Before["\ufffd"] != key {
				t.Errorf("%s: key %q, strings %q %q came back as %q, %q %q", c.Name(), key, "v"+key, key, out.Key, out.After["s"], out.Before["\ufffd"])
			}
			seen[out.Key] = true
		}
		if len(seen) != 6 {
			t.Errorf("%s: 6 keys came back as %d", c.Name(), len(seen))
		}
	}
	// Column names are text (Row.Validate): json/v1 says so rather than mangle one.
	in := sample()
	in.After["col\xff"] = int64(1)
	if _, err := JSON.Append(nil, &in); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("column name not UTF-8: Append error %v", err)
	}
}

// TestJSONRefusesLossyText: a document the JSON parser would change
// silently (bytes that are not UTF-8, an unpaired surrogate escape) is refused.
func TestJSONRefusesLossyText(t *testing.T) {
	for name, doc := range map[string]string{
		"raw byte in key":         "{\"source\":\"s\",\"key\":\"k\xff\",\"time\":\"2026-01-01T00:00:00Z\",\"op\":\"insert\",\"after\":{}}",
		"raw byte in value":       "{\"source\":\"s\",\"key\":\"k\",\"time\":\"2026-01-01T00:00:00Z\",\"op\":\"insert\",\"after\":{\"x\":\"\xff\"}}",
		"raw byte in column name": "{\"source\":\"s\",\"key\":\"k\",\"time\":\"2026-01-01T00:00:00Z\",\"op\":\"insert\",\"after\":{\"\xff\":1}}",
		"lone high surrogate":     `{"source":"s","key":"k\ud800","time":"2026-01-01T00:00:00Z","op":"insert","after":{}}`,
		"lone low surrogate":      `{"source":"s","key":"k","time":"2026-01-01T00:00:00Z","op":"insert","after":{"x":"\udc00"}}`,
		"high then not low":       `{"source":"s","key":"k","time":"2026-01-01T00:00:00Z","op":"insert","after":{"\ud800\u0041":1}}`,
		"pos of three":            `{"source":"s","key":"k","time":"2026-01-01T00:00:00Z","pos":[1,2,3],"op":"insert","after":{}}`,
		"pos of one":              `{"source":"s","key":"k","time":"2026-01-01T00:00:00Z","pos":[1],"op":"insert","after":{}}`,
		"bad $s":                  `{"source":"s","key":{"$s":"!"},"time":"2026-01-01T00:00:00Z","op":"insert","after":{}}`,
	} {
		if e, err := Decode("", []byte(doc)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %+v, %v; want ErrMalformed", name, e, err)
		}
	}
	// An escaped surrogate pair and an escaped backslash before "u" are fine.
	doc := `{"source":"s","key":"\ud83d\ude00\\ud800","time":"2026-01-01T00:00:00+08:00","op":"insert","after":{}}`
	e, err := Decode("", []byte(doc))
	if err != nil || e.Key != "😀\\ud800" {
		t.Fatalf("got key %q, %v", e.Key, err)
	}
	if e.Time.Location() != time.UTC || !e.Time.Equal(time.Date(2025, 12, 31, 16, 0, 0, 0, time.UTC)) {
		t.Errorf("time %v, want 2025-12-31 16:00 UTC", e.Time)
	}
}

// TestJSONRefusesAmbiguousNames: a document that names a field or a column
// twice (also in another case: Go's parser matches fields ignoring case)
// has no one meaning; the parser would keep the last, or merge both rows,
// silently. It is refused.
func TestJSONRefusesAmbiguousNames(t *testing.T) {
	for name, doc := range map[string]string{
		"column twice":        `{"source":"s","key":"k","time":"2026-01-01T00:00:00Z","op":"insert","after":{"x":1,"x":2}}`,
		"key twice":           `{"source":"s","key":"a","key":"b","time":"2026-01-01T00:00:00Z","op":"insert","after":{}}`,
		"key in another case": `{"source":"s","key":"a","KEY":"b","time":"2026-01-01T00:00:00Z","op":"insert","after":{}}`,
		"after twice, merged": `{"source":"s","key":"k","time":"2026-01-01T00:00:00Z","op":"insert","after":{"x":1},"After":{"y":2}}`,
		"tag twice":           `{"source":"s","key":"k","time":"2026-01-01T00:00:00Z","op":"insert","after":{"x":{"$f":1,"$f":2}}}`,
	} {
		if e, err := Decode("", []byte(doc)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %+v, %v; want ErrMalformed", name, e, err)
		}
	}
}

// TestBinaryRefusesTimesItCannotHold: binary/v1 holds Unix nanoseconds in an
// int64; a time outside that range is refused, not wrapped into another year.
func TestBinaryRefusesTimesItCannotHold(t *testing.T) {
	for _, tm := range []time.Time{time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)} {
		in := sample()
		in.Time = tm
		if b, err := Binary.Append(nil, &in); err == nil {
			out, derr := Decode(Binary.Name(), b)
			t.Errorf("event time %v: encoded, decoded as %v (%v)", tm, out.Time, derr)
		}
		in = sample()
		in.After["due"] = tm
		if b, err := Binary.Append(nil, &in); err == nil {
			out, derr := Decode(Binary.Name(), b)
			t.Errorf("column time %v: encoded, decoded as %v (%v)", tm, out.After["due"], derr)
		}
	}
}

// TestDecodeRefusesInvalidRows: what a codec can carry but a store must not
// hold (non-finite floats, oversized values) is malformed on decode, so a
// consumer dead-letters it.
func TestDecodeRefusesInvalidRows(t *testing.T) {
	limits := eventcenter.CurrentSizeLimits()
	for name, v := range map[string]any{
		"+Inf":       math.Inf(1),
		"-Inf":       math.Inf(-1),
		"long value": strings.Repeat("x", limits.Value+1),
	} {
		in := sample()
		in.After["bad"] = v
		b, err := Binary.Append(nil, &in)
		if err != nil {
			t.Fatalf("%s: binary Append: %v", name, err)
		}
		if _, err := Decode(Binary.Name(), b); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), `"bad"`) {
			t.Errorf("%s: binary Decode: %v, want ErrMalformed naming column \"bad\"", name, err)
		}
	}
	long := `{"source":"s","key":"k","time":"2026-01-01T00:00:00Z","op":"insert","after":{"bad":"` + strings.Repeat("x", limits.Value+1) + `"}}`
	if _, err := Decode(JSON.Name(), []byte(long)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("json Decode of a long value: %v, want ErrMalformed naming column \"bad\"", err)
	}
}

func TestDecodeDocumentedJSON(t *testing.T) {
	doc := `{"source":"mysql.loan.orders","key":"42","time":"2026-11-26T08:00:00.5Z","pos":[3,1234],"op":"delete",
	  "before":{"id":42,"amount":{"$d":"1200.50"},"due":{"$t":"2026-12-01T08:00:00+08:00"}}}`
	e, err := Decode("", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if e.Op != eventcenter.OpDelete || e.After != nil || e.Before["amount"] != eventcenter.Decimal("1200.50") ||
		!e.Before["due"].(time.Time).Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) || e.Pos.Offset != 1234 {
		t.Fatalf("decoded %#v", e)
	}
}

func TestMalformed(t *testing.T) {
	cases := map[string]string{
		"not json":       `{`,
		"unknown field":  `{"source":"s","key":"k","time":"2026-01-01T00:00:00Z","op":"insert","extra":1}`,
		"no key":         `{"source":"s","time":"2026-01-01T00:00:00Z","op":"insert","after":{}}`,
		"bad time":       `{"source":"s","key":"k","time":"yesterday","op":"insert"}`,
		"bad op":         `{"source":"s","key":"k","time":"2026-01-01T00:00:00Z","op":"upsert"}`,
		"float as plain": `{"source":"s","key":"k","time":"2026-01-01T00:00:00Z","op":"insert","after":{"x":1.5}}`,
		"bad decimal":    `{"source":"s","key":"k","time":"2026-01-01T00:00:00Z","op":"insert","after":{"x":{"$d":"abc"}}}`,
		"delete w/ row":  `{"source":"s","key":"k","time":"2026-01-01T00:00:00Z","op":"delete","after":{"x":1}}`,
	}
	for name, doc := range cases {
		if _, err := Decode("json/v1", []byte(doc)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	if _, err := Decode("binary/v1", []byte{5, 'a'}); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated binary: %v", err)
	}
	if _, err := Decode("xml", nil); err == nil || !strings.Contains(err.Error(), "xml") {
		t.Errorf("unknown codec: %v", err)
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, c := range []Codec{JSON, Binary} {
		e := sample()
		buf, err := c.Append(nil, &e)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.Name(), func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if _, err := Decode(c.Name(), buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
