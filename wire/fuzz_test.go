package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// The fuzz targets hold each codec to two properties, on events built from
// the fuzzer's bytes and on the bytes read as a message:
//
//   - Append then Decode never changes an event silently: one of them
//     refuses it, or the event comes back the same (sameEvent); and for every
//     valid event neither refuses.
//   - A message that decodes re-encodes, and decodes again to the same event.
//
// Run them with, e.g., go test ./wire -run '^$' -fuzz '^FuzzJSON$' -fuzztime 20s
// (scripts/test does, after the whole suite). Crashers land in
// testdata/fuzz/<target>/ and from then on run with every go test.

func FuzzJSON(f *testing.F)   { fuzzCodec(f, JSON) }
func FuzzBinary(f *testing.F) { fuzzCodec(f, Binary) }

func fuzzCodec(f *testing.F, c Codec) {
	for _, e := range seedEvents() {
		b, err := c.Append(nil, &e)
		if err != nil {
			f.Fatalf("seed %s/%q: %v", e.Source, e.Key, err)
		}
		f.Add(b)
	}
	for _, doc := range []string{
		`{"source":"s","key":"k","time":"2026-01-01T00:00:00+08:00","op":"insert","after":{}}`,
		`{"source":"s","key":{"$s":"/w=="},"time":"2026-01-01T00:00:00Z","op":"update","after":{"x":{"$s":"gA=="}},"before":null}`,
		`{"source":"s","key":"\ud83d\ude00","time":"2026-01-01T00:00:00.123456789Z","pos":[1,2],"op":"snapshot","after":{"\u00e9":{"$f":-0}}}`,
	} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e := genEvent(data)
		checkRoundTrip(t, c, e)
		if m, err := Decode(c.Name(), data); err == nil {
			checkRoundTrip(t, c, m)
		}
	})
}

// checkRoundTrip checks that encoding e and decoding the message gives e
// back, or that one step refuses it — which neither may for a valid e.
func checkRoundTrip(t *testing.T, c Codec, e eventcenter.Event) {
	t.Helper()
	valid := e.Validate()
	b, err := c.Append(nil, &e)
	if err != nil {
		if valid == nil {
			t.Fatalf("%s: Append of a valid event: %v\nevent %#v", c.Name(), err, e)
		}
		return
	}
	got, err := Decode(c.Name(), b)
	if err != nil {
		if valid == nil {
			t.Fatalf("%s: Decode of a valid event: %v\nevent %#v\nmessage %q", c.Name(), err, e, b)
		}
		return
	}
	if d := diffEvent(got, e); d != "" {
		t.Fatalf("%s: the event came back changed: %s\n got %#v\nwant %#v\nmessage %q", c.Name(), d, got, e, b)
	}
}

// diffEvent says how got differs from want, allowing what a store also
// normalizes: times in UTC, int as int64, a nil []byte as an empty one.
// Floats compare bit for bit.
func diffEvent(got, want eventcenter.Event) string {
	switch {
	case got.Source != want.Source:
		return fmt.Sprintf("source %q, want %q", got.Source, want.Source)
	case got.Key != want.Key:
		return fmt.Sprintf("key %q, want %q", got.Key, want.Key)
	case !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC:
		return fmt.Sprintf("time %v, want %v in UTC", got.Time, want.Time)
	case got.Pos != want.Pos:
		return fmt.Sprintf("pos %v, want %v", got.Pos, want.Pos)
	case got.Op != want.Op:
		return fmt.Sprintf("op %v, want %v", got.Op, want.Op)
	case !got.StoredAt.IsZero():
		return fmt.Sprintf("stored-at %v, want none", got.StoredAt)
	}
	if d := diffRow(got.After, want.After); d != "" {
		return "after: " + d
	}
	if d := diffRow(got.Before, want.Before); d != "" {
		return "before: " + d
	}
	return ""
}

func diffRow(got, want eventcenter.Row) string {
	if (got == nil) != (want == nil) || len(got) != len(want) {
		return fmt.Sprintf("%d columns (nil %v), want %d (nil %v)", len(got), got == nil, len(want), want == nil)
	}
	for col, w := range want {
		g, ok := got[col]
		if !ok {
			return fmt.Sprintf("no column %q", col)
		}
		same := false
		switch w := w.(type) {
		case int:
			same = g == any(int64(w))
		case float64:
			g, ok := g.(float64)
			same = ok && math.Float64bits(g) == math.Float64bits(w)
		case []byte:
			g, ok := g.([]byte)
			same = ok && g != nil && bytes.Equal(g, w)
		case time.Time:
			g, ok := g.(time.Time)
			same = ok && g.Equal(w) && g.Location() == time.UTC
		default:
			same = g == w
		}
		if !same {
			return fmt.Sprintf("column %q: %#v (%T), want %#v (%T)", col, g, g, w, w)
		}
	}
	return ""
}

// seedEvents are the cases the fixes of issue 10 are about, valid and not.
func seedEvents() []eventcenter.Event {
	s := sample()
	with := func(f func(e *eventcenter.Event)) eventcenter.Event {
		e := sample()
		f(&e)
		return e
	}
	return []eventcenter.Event{
		s,
		with(func(e *eventcenter.Event) { e.After, e.Before = eventcenter.Row{}, nil }),
		with(func(e *eventcenter.Event) { e.Op, e.After, e.Before = eventcenter.OpDelete, nil, eventcenter.Row{} }),
		with(func(e *eventcenter.Event) { e.Key = "\xff\xfe"; e.After["s"] = "a\x80b" }),
		with(func(e *eventcenter.Event) { e.After["z"] = math.Copysign(0, -1) }),
		with(func(e *eventcenter.Event) { e.Time = eventcenter.MaxTime }),
		with(func(e *eventcenter.Event) { e.Time = eventcenter.MinTime }),
		with(func(e *eventcenter.Event) { e.After["t"] = eventcenter.MinTime.In(time.FixedZone("X", 3600)) }),
		with(func(e *eventcenter.Event) { e.After["n"] = int(-1) }),
		with(func(e *eventcenter.Event) { e.After["d"] = eventcenter.Decimal("-1e400") }),
		with(func(e *eventcenter.Event) { e.After["b"] = []byte(nil) }),
	}
}

// genEvent builds an event, valid or not, from the fuzzer's bytes.
func genEvent(data []byte) eventcenter.Event {
	g := gen(data)
	e := eventcenter.Event{
		Source: g.pick("mysql.loan.orders", "s", g.str(), "sourcé"),
		Key:    g.str(),
		Time:   g.time(),
		Pos:    eventcenter.Position{Log: g.u64(), Offset: g.u64()},
		Op:     eventcenter.Op(g.byte() % 8),
	}
	e.After, e.Before = g.row(), g.row()
	return e
}

// gen reads the fuzzer's bytes as choices; past their end every choice is 0.
type gen []byte

func (g *gen) byte() byte {
	if len(*g) == 0 {
		return 0
	}
	c := (*g)[0]
	*g = (*g)[1:]
	return c
}

func (g *gen) u64() uint64 {
	var b [8]byte
	for i := range b {
		b[i] = g.byte()
	}
	return binary.LittleEndian.Uint64(b[:])
}

func (g *gen) str() string {
	n := int(g.byte() % 12)
	b := make([]byte, n)
	for i := range b {
		b[i] = g.byte()
	}
	return string(b)
}

func (g *gen) pick(s ...string) string { return s[int(g.byte())%len(s)] }

func (g *gen) time() time.Time {
	t := time.Unix(0, int64(g.u64()))
	switch g.byte() % 8 {
	case 0: // out of the int64 range (or not), by up to a century
		t = t.Add(time.Duration(int64(g.u64()) % int64(100*365*24*time.Hour)))
	case 1:
		t = t.In(time.FixedZone("X", int(int8(g.byte()))*900))
	}
	return t
}

func (g *gen) row() eventcenter.Row {
	n := int(g.byte() % 8)
	switch n {
	case 0:
		return nil
	case 1:
		return eventcenter.Row{}
	}
	r := eventcenter.Row{}
	for i := 2; i < n; i++ {
		col := g.str()
		switch g.byte() % 10 {
		case 0:
			r[col] = nil
		case 1:
			r[col] = g.byte()%2 == 0
		case 2:
			r[col] = int64(g.u64())
		case 3:
			r[col] = int(int32(g.u64()))
		case 4:
			r[col] = math.Float64frombits(g.u64()) // NaN, ±Inf and −0 among them
		case 5:
			r[col] = g.str()
		case 6:
			r[col] = []byte(g.str())
		case 7:
			r[col] = eventcenter.Decimal(g.pick("0", "-12.50", "1e400", ".5", g.str()))
		case 8:
			r[col] = g.time()
		case 9:
			r[col] = int32(g.byte()) // a type a Row cannot hold
		}
	}
	return r
}
