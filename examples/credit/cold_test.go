package credit_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/eventcenter/tiered"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/job"
)

// TestBackfillOverColdRange: the credit job run over a month of
// applications gives the same records, field for field, before tiering and
// after every event (applications, orders, repayments, profiles) has moved
// to the cold tier, so its as-of reads and index lookups are all answered
// from segments.
func TestBackfillOverColdRange(t *testing.T) {
	ctx := context.Background()
	stamp := t0.Add(2 * day)
	now := func() time.Time { return stamp }
	hot, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	st, err := tiered.New(tiered.Config{Hot: hot, Cold: tiered.Dir(t.TempDir()), Now: now, HotWindow: time.Hour, EvictGrace: tiered.EvictGraceNone})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := credit.DeclareIndexes(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(ctx, coldHistory(300)); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{credit.Profiles, credit.Orders, credit.Repayments} {
		if err := st.AdvanceWatermark(ctx, src, 0, t0.Add(day)); err != nil {
			t.Fatal(err)
		}
	}
	j, err := credit.New(job.Consistency(job.FetchStrong))
	if err != nil {
		t.Fatal(err)
	}
	run := func() []job.Result {
		t.Helper()
		var apps []eventcenter.Event
		for e, err := range st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{credit.Applications}, From: t0.Add(-31 * day), To: t0}) {
			if err != nil {
				t.Fatal(err)
			}
			apps = append(apps, e)
		}
		res := make([]job.Result, len(apps))
		job.EvaluateAll(ctx, j, &job.Env{Store: st, Params: job.FixedParams(1, nil)}, apps, res, 0)
		return res
	}
	start := time.Now()
	before := run()
	t.Logf("%d runs before tiering: %v", len(before), time.Since(start))

	stamp = stamp.Add(2 * time.Hour)
	if _, err := st.Tier(ctx); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{credit.Applications, credit.Orders, credit.Repayments, credit.Profiles} {
		if n, _, err := st.Backlog(ctx, src); err != nil || n != 0 {
			t.Fatalf("%s: %d events left in hot (%v)", src, n, err)
		}
		if m, err := st.Manifest(ctx, src); err != nil || len(m.Segments) == 0 {
			t.Fatalf("%s: no segments (%v)", src, err)
		}
	}
	start = time.Now()
	after := run()
	t.Logf("%d runs over the cold range: %v", len(after), time.Since(start))

	if len(after) != len(before) || len(before) < 1000 {
		t.Fatalf("%d results after tiering, %d before (want over 1,000)", len(after), len(before))
	}
	withOrders := 0
	for i := range before {
		b, a := before[i], after[i]
		if b.Record != nil && b.Record.Features["open_orders"] != int64(0) {
			withOrders++
		}
		if b.Err != nil || a.Err != nil {
			t.Fatalf("run %d: errors %v before, %v after", i, b.Err, a.Err)
		}
		if !reflect.DeepEqual(b.Record, a.Record) {
			t.Fatalf("run %d (%v): before tiering\n%+v\nafter\n%+v", i, b.Trigger, b.Record, a.Record)
		}
	}
	if withOrders < len(before)/4 {
		t.Errorf("only %d of %d runs saw open orders: the fixture does not exercise the lookups", withOrders, len(before))
	}
}

// coldHistory returns profiles, orders (opened, some repaid and closed) and
// repayments of users over the past year, and five applications per user
// over the past month.
func coldHistory(users int) []eventcenter.Event {
	rng := rand.New(rand.NewPCG(1, 2))
	d := func(f float64) eventcenter.Decimal { return eventcenter.Decimal(fmt.Sprintf("%.2f", f)) }
	var evs []eventcenter.Event
	order, repay, app := 0, 0, 0
	for u := range users {
		user := fmt.Sprint("user-", u)
		evs = append(evs, ev(credit.Profiles, user, t0.Add(-400*day), eventcenter.OpInsert, eventcenter.Row{
			"id": user, "age": int64(20 + u%50), "monthly_income": d(float64(3000 + 100*(u%70))), "kyc_level": int64(1 + u%3)}))
		for range rng.IntN(4) {
			order++
			at := t0.Add(-time.Duration(rng.IntN(300*24)) * time.Hour)
			principal := float64(500 + rng.IntN(5000))
			key := fmt.Sprint("order-", order)
			evs = append(evs, ev(credit.Orders, key, at, eventcenter.OpInsert, eventcenter.Row{
				"id": int64(order), "user_id": user, "principal": d(principal), "outstanding": d(principal), "status": "open"}))
			for k := range rng.IntN(3) {
				repay++
				paid := at.Add(time.Duration(k+1) * 20 * day)
				evs = append(evs, ev(credit.Repayments, fmt.Sprint("repay-", repay), paid, eventcenter.OpInsert, eventcenter.Row{
					"id": int64(repay), "user_id": user, "order_id": int64(order), "amount": d(principal / 4), "late": rng.IntN(4) == 0, "paid_at": paid}))
				status := "open"
				if k == 2 {
					status = "closed"
				}
				evs = append(evs, ev(credit.Orders, key, paid, eventcenter.OpUpdate, eventcenter.Row{
					"id": int64(order), "user_id": user, "principal": d(principal), "outstanding": d(principal * float64(3-k) / 4), "status": status}))
			}
		}
		for range 5 {
			app++
			evs = append(evs, applicationAt(app, user, fmt.Sprintf("%d.00", 100+rng.IntN(20000)), t0.Add(-time.Duration(1+rng.IntN(30*24))*time.Hour)))
		}
	}
	return evs
}
