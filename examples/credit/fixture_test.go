package credit_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/examples/credit"
)

// t0 is the tests' "now": the live test's parameter changes are stamped
// by the wall clock, so trigger times must be near it for a backfill to
// find the versions the live runs used.
var t0 = time.Now().UTC().Truncate(time.Millisecond)

const day = 24 * time.Hour

func ev(src, key string, at time.Time, op eventcenter.Op, row eventcenter.Row) eventcenter.Event {
	return eventcenter.Event{Source: src, Key: key, Time: at, Op: op, After: row}
}

// history is what the event center holds about users u1 and u2 (u2 has no
// profile), including changes after t0 that a run at t0 must not see.
func history() []eventcenter.Event {
	d := func(s string) eventcenter.Decimal { return eventcenter.Decimal(s) }
	return []eventcenter.Event{
		ev(credit.Profiles, "u1", t0.Add(-400*day), eventcenter.OpInsert, eventcenter.Row{"id": "u1", "age": int64(35), "monthly_income": d("10000.00"), "kyc_level": int64(3)}),
		ev(credit.Profiles, "u1", t0.Add(time.Hour), eventcenter.OpUpdate, eventcenter.Row{"id": "u1", "age": int64(35), "monthly_income": d("20000.00"), "kyc_level": int64(3)}),
		ev(credit.Orders, "o1", t0.Add(-100*day), eventcenter.OpInsert, eventcenter.Row{"id": int64(1), "user_id": "u1", "principal": d("6000.00"), "outstanding": d("5000.00"), "status": "open"}),
		ev(credit.Orders, "o2", t0.Add(-50*day), eventcenter.OpInsert, eventcenter.Row{"id": int64(2), "user_id": "u1", "principal": d("3000.00"), "outstanding": d("3000.00"), "status": "open"}),
		ev(credit.Orders, "o2", t0.Add(time.Hour), eventcenter.OpUpdate, eventcenter.Row{"id": int64(2), "user_id": "u1", "principal": d("3000.00"), "outstanding": d("0.00"), "status": "closed"}),
		ev(credit.Orders, "o3", t0.Add(-200*day), eventcenter.OpInsert, eventcenter.Row{"id": int64(3), "user_id": "u1", "principal": d("1000.00"), "outstanding": d("1000.00"), "status": "open"}),
		ev(credit.Orders, "o3", t0.Add(-10*day), eventcenter.OpUpdate, eventcenter.Row{"id": int64(3), "user_id": "u1", "principal": d("1000.00"), "outstanding": d("0.00"), "status": "closed"}),
		ev(credit.Orders, "o4", t0.Add(-20*day), eventcenter.OpInsert, eventcenter.Row{"id": int64(4), "user_id": "u2", "principal": d("900.00"), "outstanding": d("900.00"), "status": "open"}),
		ev(credit.Repayments, "r1", t0.Add(-100*day), eventcenter.OpInsert, eventcenter.Row{"id": int64(1), "user_id": "u1", "order_id": int64(1), "amount": d("1000.00"), "late": false, "paid_at": t0.Add(-100 * day)}),
		ev(credit.Repayments, "r2", t0.Add(-30*day), eventcenter.OpInsert, eventcenter.Row{"id": int64(2), "user_id": "u1", "order_id": int64(1), "amount": d("500.00"), "late": false, "paid_at": t0.Add(-30 * day)}),
		ev(credit.Repayments, "r3", t0.Add(-5*day), eventcenter.OpInsert, eventcenter.Row{"id": int64(3), "user_id": "u1", "order_id": int64(2), "amount": d("300.00"), "late": true, "paid_at": t0.Add(-5 * day)}),
		ev(credit.Repayments, "r4", t0.Add(day), eventcenter.OpInsert, eventcenter.Row{"id": int64(4), "user_id": "u1", "order_id": int64(2), "amount": d("700.00"), "late": true, "paid_at": t0.Add(day)}),
	}
}

// application returns application n of user at t0+n milliseconds.
func application(n int, user, amount string) eventcenter.Event {
	return applicationAt(n, user, amount, t0.Add(time.Duration(n)*time.Millisecond))
}

func applicationAt(n int, user, amount string, at time.Time) eventcenter.Event {
	e := ev(credit.Applications, fmt.Sprint("app-", n), at, eventcenter.OpInsert,
		eventcenter.Row{"id": int64(n), "user_id": user, "amount": eventcenter.Decimal(amount), "term_months": int64(12), "created_at": at})
	e.Pos = eventcenter.Position{Offset: uint64(n)}
	return e
}

// openStore returns an in-memory event center holding history, with the
// job's indexes, and every source's watermark past t0+1h (as the ingest
// would advance it).
func openStore(t testing.TB) *embedded.Store {
	t.Helper()
	st := openStoreAt(t, embedded.Config{InMemory: true, NoSync: true}, t0.Add(2*day))
	return st
}

// openStoreAt opens a store with cfg holding history, the watermarks of
// the fetched sources at wm.
func openStoreAt(t testing.TB, cfg embedded.Config, wm time.Time) *embedded.Store {
	t.Helper()
	ctx := context.Background()
	st, err := embedded.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := credit.DeclareIndexes(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(ctx, history()); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{credit.Profiles, credit.Orders, credit.Repayments} {
		if err := st.AdvanceWatermark(ctx, src, 0, wm); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
