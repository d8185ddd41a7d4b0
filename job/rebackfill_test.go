package job_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
)

// TestRebackfillOption: a job is not opted in by default; Rebackfill fills
// the defaults (feature store, replace, 7 days) and keeps what is given;
// an unknown write mode or a negative range is an error.
func TestRebackfillOption(t *testing.T) {
	logic := func(*job.Context) (eventcenter.Row, error) { return nil, nil }
	if _, ok := job.MustNew("plain", logic, job.Trigger("a")).Rebackfill(); ok {
		t.Error("a job without job.Rebackfill is opted in")
	}
	o, ok := job.MustNew("dflt", logic, job.Trigger("a"), job.Rebackfill(job.RebackfillOptions{})).Rebackfill()
	if !ok || o != (job.RebackfillOptions{Sink: "featurestore", Write: "replace", MaxRange: job.DefaultRebackfillMaxRange}) {
		t.Errorf("defaults: %+v, %v", o, ok)
	}
	given := job.RebackfillOptions{Sink: "featurestore:other", Write: "fill", MaxRange: time.Hour}
	if o, _ := job.MustNew("given", logic, job.Trigger("a"), job.Rebackfill(given)).Rebackfill(); o != given {
		t.Errorf("given %+v, got %+v", given, o)
	}
	for _, bad := range []job.RebackfillOptions{{Write: "append"}, {MaxRange: -time.Hour}} {
		if _, err := job.New("bad", logic, job.Trigger("a"), job.Rebackfill(bad)); err == nil || !strings.Contains(err.Error(), "rebackfill") {
			t.Errorf("%+v: %v, want a rebackfill error", bad, err)
		}
	}
}
