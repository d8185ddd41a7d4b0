package workers_test

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
)

// logSlowRun logs, for a benchmark's workflow run that took longer than
// slow, the gaps of over gap between consecutive events of its history
// (with both events' types): where a run that stalled waited.
func logSlowRun(b *testing.B, c client.Client, id string, took, slow, gap time.Duration) {
	if took <= slow {
		return
	}
	b.Logf("run %s took %v", id, took.Round(time.Millisecond))
	it := c.GetWorkflowHistory(context.Background(), id, "", false, 0)
	var prevTime time.Time
	var prevType string
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			b.Logf("its history: %v", err)
			return
		}
		t := e.GetEventTime().AsTime()
		if !prevTime.IsZero() && t.Sub(prevTime) > gap {
			b.Logf("  %v between event %d %s and %s", t.Sub(prevTime).Round(time.Millisecond), e.GetEventId()-1, prevType, e.GetEventType())
		}
		prevTime, prevType = t, e.GetEventType().String()
	}
}
