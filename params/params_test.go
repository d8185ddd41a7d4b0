package params_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/params"
)

func decls() []params.Decl {
	return []params.Decl{
		{Name: "max_open", Type: params.Int, Default: 3, Min: 0, Max: 50, Description: "open orders allowed"},
		{Name: "ratio", Type: params.Float, Default: 0.4, Min: 0.0, Max: 1, Description: "debt to income cap"},
		{Name: "window", Type: params.Duration, Default: "2160h", Min: 24 * time.Hour, Description: "repayment window"},
		{Name: "tier", Type: params.String, Default: "std", Description: "tier"},
		{Name: "on", Type: params.Bool, Default: true, Description: "switch"},
	}
}

func TestDeclValidate(t *testing.T) {
	ds := decls()
	if err := params.ValidateDecls(ds); err != nil {
		t.Fatal(err)
	}
	if ds[0].Default != int64(3) || ds[2].Default != 2160*time.Hour || ds[1].Max != 1.0 {
		t.Fatalf("not canonical: %#v", ds)
	}
	for name, d := range map[string]params.Decl{
		"no description":  {Name: "a", Type: params.Int, Default: 1},
		"reserved":        {Name: "_a", Type: params.Int, Default: 1, Description: "x"},
		"default type":    {Name: "a", Type: params.Int, Default: "x", Description: "x"},
		"default bounds":  {Name: "a", Type: params.Int, Default: 9, Max: 5, Description: "x"},
		"min above max":   {Name: "a", Type: params.Float, Default: 1, Min: 2, Max: 1, Description: "x"},
		"string bound":    {Name: "a", Type: params.String, Default: "x", Min: "a", Description: "x"},
		"missing default": {Name: "a", Type: params.Bool, Description: "x"},
	} {
		if err := d.Validate(); !errors.Is(err, params.ErrInvalid) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	if err := params.ValidateDecls(append(decls(), decls()[0])); !errors.Is(err, params.ErrInvalid) {
		t.Errorf("duplicate: got %v", err)
	}
}

func TestResolve(t *testing.T) {
	ds := decls()
	if err := params.ValidateDecls(ds); err != nil {
		t.Fatal(err)
	}
	got, err := params.Resolve(ds, params.Values{"max_open": 7.0, "window": int64(48 * time.Hour), "gone": 1})
	if err != nil {
		t.Fatal(err)
	}
	want := params.Values{"max_open": int64(7), "ratio": 0.4, "window": 48 * time.Hour, "tier": "std", "on": true}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %#v, want %#v", k, got[k], v)
		}
	}
	if _, ok := got["gone"]; ok {
		t.Error("undeclared override kept")
	}
	if _, err := params.Resolve(ds, params.Values{"max_open": 51}); !errors.Is(err, params.ErrInvalid) {
		t.Errorf("out of bounds: got %v", err)
	}
}

func TestRegistries(t *testing.T) {
	for name, open := range map[string]func(t *testing.T, now func() time.Time) params.Registry{
		"memory": func(t *testing.T, now func() time.Time) params.Registry { return params.NewMemory(now) },
		"eventcenter": func(t *testing.T, now func() time.Time) params.Registry {
			st, err := embedded.Open(embedded.Config{InMemory: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return params.NewEventCenter(st, now)
		},
	} {
		t.Run(name, func(t *testing.T) { testRegistry(t, open) })
	}
}

func testRegistry(t *testing.T, open func(t *testing.T, now func() time.Time) params.Registry) {
	ctx := context.Background()
	clock := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	r := open(t, now)
	v, vals, err := r.Current(ctx, "job")
	if err != nil || v != 0 || len(vals) != 0 {
		t.Fatalf("empty: %v %v %v", v, vals, err)
	}
	if err := r.(params.Declarer).Declare(ctx, "job", decls()); err != nil {
		t.Fatal(err)
	}
	got, err := r.(params.Declarer).Declarations(ctx, "job")
	if err != nil || len(got) != 5 || got[2].Default != 2160*time.Hour || got[0].Max != int64(50) {
		t.Fatalf("declarations: %#v %v", got, err)
	}
	if _, err := r.Set(ctx, "job", params.Values{"max_open": 99}, "op"); !errors.Is(err, params.ErrInvalid) {
		t.Fatalf("out of bounds set: %v", err)
	}
	if _, err := r.Set(ctx, "job", params.Values{"nope": 1}, "op"); !errors.Is(err, params.ErrInvalid) {
		t.Fatalf("undeclared set: %v", err)
	}
	t1 := clock
	if v, err := r.Set(ctx, "job", params.Values{"max_open": 5, "window": "72h"}, "op"); err != nil || v != 1 {
		t.Fatalf("set 1: %v %v", v, err)
	}
	clock = clock.Add(time.Hour)
	if v, err := r.Set(ctx, "job", params.Values{"max_open": nil, "tier": "gold"}, "op"); err != nil || v != 2 {
		t.Fatalf("set 2: %v %v", v, err)
	}
	v, vals, err = r.Current(ctx, "job")
	if err != nil || v != 2 {
		t.Fatalf("current: %v %v", v, err)
	}
	res, err := params.Resolve(got, vals)
	if err != nil || res["max_open"] != int64(3) || res["tier"] != "gold" || res["window"] != 72*time.Hour {
		t.Fatalf("current values: %#v %v", res, err)
	}
	pit := r.(params.PointInTime)
	if v, vals, err = pit.AsOf(ctx, "job", t1.Add(time.Minute)); err != nil {
		t.Fatalf("as of t1: %v", err)
	}
	if res, err := params.Resolve(got, vals); err != nil || v != 1 || res["max_open"] != int64(5) || res["tier"] != "std" {
		t.Fatalf("as of t1: %v %#v %v", v, res, err)
	}
	if v, _, err := pit.AsOf(ctx, "job", t1.Add(-time.Second)); err != nil || v != 0 {
		t.Fatalf("before any: %v %v", v, err)
	}
	// A clock that stands still still orders versions.
	if v, err := r.Set(ctx, "job", params.Values{"on": false}, "op"); err != nil || v != 3 {
		t.Fatalf("set 3: %v %v", v, err)
	}
	if v, vals, err := r.Current(ctx, "job"); err != nil || v != 3 || vals["on"] != false {
		t.Fatalf("current after set 3: %v %v %v", v, vals, err)
	}
}

// SetIf stores only on the base version, refuses a stale base with
// ErrConflict (storing nothing), and answers a retry of the change that
// made the current version with that version.
func TestCompareAndSet(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) params.Registry{
		"memory": func(t *testing.T) params.Registry { return params.NewMemory(nil) },
		"eventcenter": func(t *testing.T) params.Registry {
			st, err := embedded.Open(embedded.Config{InMemory: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return params.NewEventCenter(st, nil)
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			r := open(t)
			cas := r.(params.CompareAndSet)
			if err := r.(params.Declarer).Declare(ctx, "job", decls()); err != nil {
				t.Fatal(err)
			}
			if v, err := cas.SetIf(ctx, "job", 0, params.Values{"max_open": 7}, "ops", "param-job-1"); err != nil || v != 1 {
				t.Fatalf("SetIf on 0: %v, %v", v, err)
			}
			// Another change based on version 0 lost the race.
			if _, err := cas.SetIf(ctx, "job", 0, params.Values{"max_open": 9}, "ops", "param-job-2"); !errors.Is(err, params.ErrConflict) {
				t.Fatalf("stale SetIf: %v, want ErrConflict", err)
			}
			// The first change's retry is answered with its version.
			if v, err := cas.SetIf(ctx, "job", 0, params.Values{"max_open": 7}, "ops", "param-job-1"); err != nil || v != 1 {
				t.Fatalf("retried SetIf: %v, %v", v, err)
			}
			if v, vals, err := r.Current(ctx, "job"); err != nil || v != 1 || vals["max_open"] != int64(7) {
				t.Fatalf("current: %v %v %v", v, vals, err)
			}
			if _, err := cas.SetIf(ctx, "job", 1, params.Values{"max_open": 99}, "ops", "param-job-3"); !errors.Is(err, params.ErrInvalid) {
				t.Fatalf("out of bounds SetIf: %v", err)
			}
			if v, err := cas.SetIf(ctx, "job", 1, params.Values{"max_open": nil}, "ops", "param-job-3"); err != nil || v != 2 {
				t.Fatalf("SetIf on 1: %v, %v", v, err)
			}
			vs := r.(params.Versions)
			if vals, err := vs.Version(ctx, "job", 1); err != nil || vals["max_open"] != int64(7) {
				t.Errorf("Version(1) = %v, %v", vals, err)
			}
			if vals, err := vs.Version(ctx, "job", 2); err != nil || len(vals) != 0 {
				t.Errorf("Version(2) = %v, %v", vals, err)
			}
			if _, err := vs.Version(ctx, "job", 3); !errors.Is(err, params.ErrNoVersion) {
				t.Errorf("Version(3) = %v, want ErrNoVersion", err)
			}
		})
	}
}

// Values keep integers exact through JSON, as Temporal's payloads carry
// them: an Int value above 2^53 once reached the registry rounded to the
// nearest float64 (9007199254740993 stored as 9007199254740992).
func TestValuesJSONKeepsIntegers(t *testing.T) {
	d := params.Decl{Name: "n", Type: params.Int, Default: 0, Max: int64(1) << 62, Description: "a big count"}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	in := params.Values{"n": int64(1)<<53 + 1, "f": 0.45, "big": 1e300, "s": "720h", "off": nil}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out params.Values
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("%s read back as %#v, want %#v", b, out, in)
	}
	if v, err := d.Check(out["n"]); err != nil || v != int64(1)<<53+1 {
		t.Fatalf("Check: %v, %v; want %d", v, err, int64(1)<<53+1)
	}
	var none params.Values
	if err := json.Unmarshal([]byte("null"), &none); err != nil || none != nil {
		t.Fatalf("null: %v, %v", none, err)
	}
	if err := json.Unmarshal([]byte(`{"n": 1e400}`), &none); err == nil {
		t.Fatal("1e400: no error")
	}
}

// Check refuses every value that is not a finite number of its type:
// NaN passes every bound (no comparison with it is true), so it must be
// refused before the bounds are checked, whatever Go type carries it.
func TestCheckRefusesNonFinite(t *testing.T) {
	ds := decls()
	if err := params.ValidateDecls(ds); err != nil {
		t.Fatal(err)
	}
	ratio := &ds[1]
	for _, v := range []any{math.NaN(), math.Inf(1), float32(math.NaN()), float32(math.Inf(-1)), "NaN", "+Inf", 1.5, float32(2)} {
		if got, err := ratio.Check(v); !errors.Is(err, params.ErrInvalid) {
			t.Errorf("ratio %#v: accepted as %#v, want ErrInvalid", v, got)
		}
	}
	if got, err := ratio.Check(float32(0.5)); err != nil || got != 0.5 {
		t.Errorf("ratio float32(0.5): %#v, %v", got, err)
	}
}
