package storetest

import (
	"math"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// TestSameRow: the suite's row comparison tells apart what a store must
// keep apart, so a store that loses −0 or a nil row fails the suite.
func TestSameRow(t *testing.T) {
	zone := time.FixedZone("X", 3600)
	for _, c := range []struct {
		got, want eventcenter.Row
		same      bool
	}{
		{eventcenter.Row{"x": 0.0}, eventcenter.Row{"x": math.Copysign(0, -1)}, false},
		{eventcenter.Row{"x": math.Copysign(0, -1)}, eventcenter.Row{"x": math.Copysign(0, -1)}, true},
		{eventcenter.Row{"x": int64(1)}, eventcenter.Row{"x": 1.0}, false},
		{eventcenter.Row{"x": int64(1)}, eventcenter.Row{"x": 1}, true},
		{eventcenter.Row{"x": time.Date(2026, 1, 1, 1, 0, 0, 0, zone)}, eventcenter.Row{"x": time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, true},
		{eventcenter.Row{"x": []byte{}}, eventcenter.Row{"x": []byte(nil)}, false},
		{eventcenter.Row{}, nil, false},
		{eventcenter.Row{"x": nil}, eventcenter.Row{"y": nil}, false},
	} {
		if got := sameRow(c.got, c.want); got != c.same {
			t.Errorf("sameRow(%#v, %#v) = %v, want %v", c.got, c.want, got, c.same)
		}
	}
}
