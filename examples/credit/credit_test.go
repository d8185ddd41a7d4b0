package credit_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/params"
)

// TestFeatures: the features are computed as of the application's time:
// the order closed an hour later still counts as open, the repayment made
// a day later does not count, the raised income is not seen.
func TestFeatures(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	j, err := credit.New(job.Consistency(job.FetchStrong))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		app    eventcenter.Event
		params params.Values
		want   eventcenter.Row
	}{
		{"u1", application(1, "u1", "20000.00"), nil, eventcenter.Row{
			"user_id": "u1", "amount": 20000.0, "open_orders": int64(2), "open_outstanding": 8000.0,
			"repayments_90d": int64(2), "repaid_90d": 800.0, "late_repayments_90d": int64(1),
			"age": int64(35), "monthly_income": 10000.0, "kyc_level": int64(3), "debt_to_income": 0.2333,
			"eligible": true, "reasons": "",
		}},
		{"u1 stricter", application(2, "u1", "20000.00"), params.Values{"max_late_repayments": 0, "repayment_window": "240h"}, eventcenter.Row{
			"user_id": "u1", "amount": 20000.0, "open_orders": int64(2), "open_outstanding": 8000.0,
			"repayments_90d": int64(1), "repaid_90d": 300.0, "late_repayments_90d": int64(1),
			"age": int64(35), "monthly_income": 10000.0, "kyc_level": int64(3), "debt_to_income": 0.2333,
			"eligible": false, "reasons": "late repayments",
		}},
		{"u2 no profile", application(3, "u2", "100.00"), nil, eventcenter.Row{
			"user_id": "u2", "amount": 100.0, "open_orders": int64(1), "open_outstanding": 900.0,
			"repayments_90d": int64(0), "repaid_90d": 0.0, "late_repayments_90d": int64(0),
			"age": int64(0), "monthly_income": 0.0, "kyc_level": int64(0), "debt_to_income": -1.0,
			"eligible": false, "reasons": "no profile; debt to income; kyc level",
		}},
	} {
		res, err := job.Evaluate(ctx, j, tc.app, &job.Env{Store: st, Params: job.FixedParams(1, tc.params)})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !reflect.DeepEqual(res.Record.Features, tc.want) {
			t.Errorf("%s:\n got %v\nwant %v", tc.name, res.Record.Features, tc.want)
		}
		if res.Stats.Fetches != 3 || res.Record.Entity != tc.app.Key {
			t.Errorf("%s: %d fetches, entity %s", tc.name, res.Stats.Fetches, res.Record.Entity)
		}
	}
	// Only new applications trigger it.
	upd := application(4, "u1", "1.00")
	upd.Op = eventcenter.OpUpdate
	if res, err := job.Evaluate(ctx, j, upd, &job.Env{Store: st}); err != nil || res.Outcome != job.Skipped {
		t.Errorf("update: %v %v", res.Outcome, err)
	}
}
