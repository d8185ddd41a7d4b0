package app

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/workflows"
)

// TestPrintRebackfills: each re-backfill is a line with its job, range,
// ID, sink and outcome, then why; failures are counted.
func TestPrintRebackfills(t *testing.T) {
	to := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	first := to.Add(-3 * time.Hour)
	rs := []workflows.Rebackfill{
		{Job: "score", ID: "c-1/rebackfill/score", From: first, To: to, Sink: "featurestore", Write: "replace",
			Sources: []workflows.RebackfillSource{{Source: "mysql.shop.orders", Keys: 3, First: first}},
			Summary: &workflows.Summary{Events: 40, Outputs: 40, Replaced: 40}},
		{Job: "limit", ID: "c-1/rebackfill/limit", From: to.Add(-time.Hour), To: to, Clipped: true, Sink: "featurestore", Write: "fill",
			Sources: []workflows.RebackfillSource{{Source: "mysql.shop.orders", Keys: 3, First: first}, {Source: "mysql.shop.users", Keys: 1, First: to}},
			Error:   "disk on fire"},
	}
	var b bytes.Buffer
	if n := printRebackfills(&b, rs); n != 1 {
		t.Errorf("%d failed, want 1", n)
	}
	out := b.String()
	for _, want := range []string{
		"re-backfill score [2026-11-30T23:00:00Z, 2026-12-01T02:00:00Z) as c-1/rebackfill/score (sink featurestore, write replace): done: 40 events, 40 outputs, 0 written, 40 replaced, 0 errors",
		"because the run corrected mysql.shop.orders (3 keys from 2026-11-30T23:00:00Z)",
		"re-backfill limit [2026-12-01T01:00:00Z, 2026-12-01T02:00:00Z) (clipped to the job's max range) as c-1/rebackfill/limit (sink featurestore, write fill): failed: disk on fire",
		"mysql.shop.orders (3 keys from 2026-11-30T23:00:00Z), mysql.shop.users (1 keys from 2026-12-01T02:00:00Z)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

func TestCorrectionRunRebackfillFlags(t *testing.T) {
	if code, _, errOut := run(t, "correction", "run", "--rebackfill-parallelism", "0"); code != ExitUsage || !strings.Contains(errOut, "--rebackfill-parallelism must be positive") {
		t.Errorf("--rebackfill-parallelism 0: exit %d, %s", code, errOut)
	}
}
