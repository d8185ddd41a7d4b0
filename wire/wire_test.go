package wire

import (
	"errors"
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
		buf, _ := c.Append(nil, &e)
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
