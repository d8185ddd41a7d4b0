package params_test

import (
	"context"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/params"
)

// The cache answers from its copy until it is MaxAge old or refreshed;
// the poll reports the versions it finds, Refresh says whether it found a
// new one.
func TestCache(t *testing.T) {
	ctx := context.Background()
	r := params.NewMemory(nil)
	var polled []params.Version
	c := params.NewCache(r, 50*time.Millisecond, func(_ string, v params.Version) { polled = append(polled, v) })
	if v, _, err := c.Current(ctx, "job"); err != nil || v != 0 {
		t.Fatalf("Current = %v, %v", v, err)
	}
	if _, err := r.Set(ctx, "job", params.Values{"x": int64(1)}, "op"); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := c.Current(ctx, "job"); v != 0 {
		t.Fatalf("a fresh copy re-read the registry: version %d", v)
	}
	if v, changed, err := c.Refresh(ctx, "job"); err != nil || v != 1 || !changed {
		t.Fatalf("Refresh = %v, %v, %v", v, changed, err)
	}
	if v, vals, _ := c.Current(ctx, "job"); v != 1 || vals["x"] != int64(1) {
		t.Fatalf("after Refresh: %v %v", v, vals)
	}
	if _, changed, _ := c.Refresh(ctx, "job"); changed {
		t.Fatal("a second Refresh reported a change")
	}
	if _, err := r.Set(ctx, "job", params.Values{"x": int64(2)}, "op"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	if v, _, _ := c.Current(ctx, "job"); v != 2 {
		t.Fatalf("the poll did not re-read: version %d", v)
	}
	if len(polled) != 1 || polled[0] != 2 {
		t.Fatalf("the poll reported %v, want [2]", polled)
	}
}
