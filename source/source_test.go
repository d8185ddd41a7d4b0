package source

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

func TestLoad(t *testing.T) {
	c, err := Load("testdata/sources.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"mysql.loan.orders":    "mysql.loan.orders",
		"mysql.loan.{table}":   "mysql.loan",
		"mq.loan.applications": "mq.loan.applications",
		"api.score":            "api.score",
		"kafka.risk.clicks":    "risk.clicks",
	}
	for _, s := range c.Sources {
		if s.Topic != want[s.Name] {
			t.Errorf("%s: topic %q, want %q", s.Name, s.Topic, want[s.Name])
		}
	}
	if got := c.Sources[0].Indexes[0].Name; got != "user_id" {
		t.Errorf("index name defaults to column: got %q", got)
	}
	if c.Sources[3].HTTP.MaxBytes != 4096 || time.Duration(c.Sources[4].Kafka.Lateness) != 5*time.Second {
		t.Errorf("options not read: %+v %+v", c.Sources[3].HTTP, c.Sources[4].Kafka)
	}
	s, err := c.Lookup("mysql.loan.repay_plan")
	if err != nil || s.Name != "mysql.loan.{table}" {
		t.Fatalf("Lookup pattern: %v %v", s, err)
	}
	if name, ok := s.MatchTable("loan", "repay_plan"); !ok || name != "mysql.loan.repay_plan" {
		t.Errorf("MatchTable: %q %v", name, ok)
	}
	if _, ok := s.MatchTable("loan", "orders"); ok {
		t.Error("repay_* matched orders")
	}
	if _, err := c.Lookup("nope"); !errors.Is(err, ErrUnknownSource) {
		t.Errorf("Lookup(nope): %v", err)
	}
	if got := c.Topics(); len(got) != 5 {
		t.Errorf("Topics: %v", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{`sources: [{name: a, kind: ftp}]`, "kind"},
		{`sources: [{name: a, kind: mysql}]`, "mysql.database"},
		{`sources: [{name: a, kind: mysql, mysql: {database: d, table: "t*"}}]`, "{table}"},
		{`sources: [{name: "a.{table}", kind: http}]`, "only mysql"},
		{`sources: [{name: a, kind: http, rabbitmq: {queue: q}}]`, "rabbitmq options"},
		{`sources: [{name: a, kind: rabbitmq}]`, "rabbitmq.queue"},
		{`sources: [{name: a, kind: http}, {name: a, kind: http}]`, "duplicate"},
		{`sources: [{name: a, kind: http, topic: "a b"}]`, "topic"},
		{`sources: [{name: "a b", kind: http}]`, "name"},
		{`sources: [{name: a, kind: http, colour: red}]`, "unknown field"},
		{`sources: [{name: a, kind: kafka, kafka: {format: xml}}]`, "format"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s): %v, want an error containing %q", tc.yaml, err, tc.want)
		}
	}
}

func TestRowKey(t *testing.T) {
	for _, tc := range []struct {
		in   []any
		want string
	}{
		{[]any{int64(42)}, "42"},
		{[]any{"u7"}, "u7"},
		{[]any{eventcenter.Decimal("1.50")}, "1.50"},
		{[]any{"u7", int64(42)}, `"u7","42"`},
		{[]any{"a,b", "c"}, `"a,b","c"`},
		{[]any{[]byte{0, 0xff}, int64(1)}, `"\x00\xff","1"`},
		{[]any{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, "2026-01-02T03:04:05Z"},
	} {
		got, err := RowKey(tc.in...)
		if err != nil || got != tc.want {
			t.Errorf("RowKey(%v) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := RowKey(nil); err == nil {
		t.Error("RowKey(nil) is not an error")
	}
	if _, err := RowKey(); err == nil {
		t.Error("RowKey() is not an error")
	}
}

func TestRowFromJSON(t *testing.T) {
	row, err := RowFromJSON([]byte(`{"i": 42, "big": 123456789012345678901, "amt": 1200.50, "s": "x", "n": null,
		"b": true, "d": {"$d": "0.10"}, "f": {"$f": 0.25}, "bin": {"$b": "AAE="}, "t": {"$t": "2026-11-26T08:00:00+08:00"},
		"obj": {"a": [1, 2]}, "arr": [1, "x"]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := eventcenter.Row{
		"i": int64(42), "big": eventcenter.Decimal("123456789012345678901"), "amt": eventcenter.Decimal("1200.50"),
		"s": "x", "n": nil, "b": true, "d": eventcenter.Decimal("0.10"), "f": 0.25, "bin": []byte{0, 1},
		"t": time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), "obj": `{"a":[1,2]}`, "arr": `[1,"x"]`,
	}
	for k, w := range want {
		g := row[k]
		if gb, ok := g.([]byte); ok {
			if string(gb) != string(w.([]byte)) {
				t.Errorf("%s: %v, want %v", k, g, w)
			}
			continue
		}
		if gt, ok := g.(time.Time); ok {
			if !gt.Equal(w.(time.Time)) {
				t.Errorf("%s: %v, want %v", k, g, w)
			}
			continue
		}
		if g != w {
			t.Errorf("%s: %#v, want %#v", k, g, w)
		}
	}
	if len(row) != len(want) {
		t.Errorf("%d columns, want %d", len(row), len(want))
	}
	for _, bad := range []string{`[1]`, `"x"`, ``, `{"a": }`, `{"d": {"$d": "abc"}}`, `{"b": {"$b": "!!"}}`} {
		if _, err := RowFromJSON([]byte(bad)); err == nil {
			t.Errorf("RowFromJSON(%s) is not an error", bad)
		}
	}
}
