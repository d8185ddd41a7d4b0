package serving

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestSelectorKeepsUp: records stored after the table was built are
// selected after a refresh; a record with an event time older than the
// lookback (a backfill) waits for the rebuild; as-of selections read the
// history.
func TestSelectorKeepsUp(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	put := func(key string, at time.Time, score float64) {
		t.Helper()
		if err := st.Append(ctx, []eventcenter.Event{{Source: "feature.j", Key: key, Time: at, Op: eventcenter.OpUpdate, After: eventcenter.Row{"score": score}}}); err != nil {
			t.Fatal(err)
		}
	}
	clk := &fakeClock{t: base}
	sel, err := NewSelector(SelectorConfig{Store: st, Now: clk.Now, Lookback: time.Minute, Rebuild: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	high, err := ParsePredicate("score > 5")
	if err != nil {
		t.Fatal(err)
	}
	count := func() int {
		t.Helper()
		s, err := sel.Select(ctx, "j", Query{Where: high, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		return s.Matched
	}
	put("a", base, 9)
	put("b", base, 1)
	if n := count(); n != 1 {
		t.Fatalf("first selection: %d matched, want 1", n)
	}
	put("b", base.Add(10*time.Minute), 8)  // a live record, later
	put("c", base.Add(-time.Hour), 7)      // a backfill's, long before
	put("a", base.Add(-10*time.Second), 0) // older than a's row: no change
	if err := sel.Warm(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Fatalf("after a refresh: %d matched, want 2 (a, b)", n)
	}
	clk.Add(2 * time.Hour)
	if err := sel.Warm(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 3 {
		t.Fatalf("after the rebuild: %d matched, want 3", n)
	}
	s, err := sel.Select(ctx, "j", Query{Where: high, Limit: 10, At: base})
	if err != nil || s.Matched != 2 { // a and c, b was 1 then
		t.Fatalf("as of base: %+v, %v; want a and c", s, err)
	}
}
