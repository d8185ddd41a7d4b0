package job_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/params"
)

// ExampleNew defines a job — a trigger, the main logic, an output, a
// parameter and a consistency level — and runs it on one event. The logic
// fetches state as of the trigger's time; it never sees the future, and it
// does not know whether it runs live, in a backfill or for a call.
func ExampleNew() {
	ctx := context.Background()
	store, err := embedded.Open(embedded.Config{InMemory: true})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	at := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	if err := store.Append(ctx, []eventcenter.Event{
		{Source: "mysql.user.profiles", Key: "u1", Time: at.Add(-time.Hour), Op: eventcenter.OpInsert, After: eventcenter.Row{"income": int64(5000)}},
		{Source: "mysql.user.profiles", Key: "u1", Time: at.Add(time.Hour), Op: eventcenter.OpUpdate, After: eventcenter.Row{"income": int64(9000)}},
	}); err != nil {
		log.Fatal(err)
	}
	if err := store.AdvanceWatermark(ctx, "mysql.user.profiles", 0, at); err != nil { // ingest reached 08:00
		log.Fatal(err)
	}

	big := job.MustNew("big-spender",
		func(c *job.Context) (eventcenter.Row, error) {
			amount := c.Trigger().After["amount"].(int64)
			profile, err := c.Get("mysql.user.profiles", c.Trigger().After["user"].(string))
			if err != nil && !errors.Is(err, job.ErrNotFound) {
				return nil, err // stale or failed: no output
			}
			if amount < c.Int("threshold") {
				return nil, nil // nothing to say: no output
			}
			return eventcenter.Row{"amount": amount, "income": profile["income"]}, nil
		},
		job.Trigger("kafka.payments", job.Ops(eventcenter.OpMessage)),
		job.Version("2"),
		job.Param(params.Decl{Name: "threshold", Type: params.Int, Default: 1000, Min: 0, Description: "smallest amount reported"}),
		job.Consistency(job.FetchStrong), // wait for the profiles' watermark
		job.WaitTimeout(time.Second),
		job.Outputs(outputs.FeatureStore(store, "")),
	)

	payment := eventcenter.Event{Source: "kafka.payments", Key: "p-1", Time: at, Op: eventcenter.OpMessage,
		After: eventcenter.Row{"user": "u1", "amount": int64(2500)}}
	res, err := job.Run(ctx, big, payment, &job.Env{Store: store})
	fmt.Println(res.Outcome, err)
	fmt.Println(res.Record.Features, "job", res.Record.JobVersion, "params", res.Record.ParamVersion)
	// Output:
	// ok <nil>
	// map[amount:2500 income:5000] job 2 params 0
}

// ExampleConsistency joins two streams: a repayment triggers the job,
// which fetches the repaid order. The orders' stream lags: the order is
// not stored yet when the repayment is processed. Under Eventual the run
// reads what is stored and misses the order; under FetchStrong it waits
// until the orders' watermark reaches the repayment's time, then sees it.
func ExampleConsistency() {
	ctx := context.Background()
	store, err := embedded.Open(embedded.Config{InMemory: true})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	at := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	order := eventcenter.Event{Source: "mysql.loan.orders", Key: "o-1", Time: at.Add(-time.Second), Op: eventcenter.OpInsert,
		After: eventcenter.Row{"principal": int64(1000)}}
	repayment := eventcenter.Event{Source: "mysql.loan.repayments", Key: "r-1", Time: at, Op: eventcenter.OpInsert,
		After: eventcenter.Row{"order_id": "o-1", "amount": int64(100)}}
	if err := store.AdvanceWatermark(ctx, "mysql.loan.orders", 0, at.Add(-time.Hour)); err != nil { // ingest of orders behind
		log.Fatal(err)
	}

	logic := func(c *job.Context) (eventcenter.Row, error) {
		order, err := c.Get("mysql.loan.orders", c.Trigger().After["order_id"].(string))
		if err != nil {
			return nil, err // not found, or stale: no output
		}
		return eventcenter.Row{"principal": order["principal"], "paid": c.Trigger().After["amount"]}, nil
	}
	for _, level := range []job.Level{job.Eventual, job.FetchStrong} {
		j := job.MustNew("repayment-with-order", logic, job.Trigger("mysql.loan.repayments"), job.Consistency(level))
		if level == job.FetchStrong {
			go func() { // the orders' ingest catches up while the run waits
				time.Sleep(50 * time.Millisecond)
				if err := store.Append(ctx, []eventcenter.Event{order}); err != nil {
					log.Fatal(err)
				}
				if err := store.AdvanceWatermark(ctx, "mysql.loan.orders", 0, at); err != nil {
					log.Fatal(err)
				}
			}()
		}
		res, err := job.Evaluate(ctx, j, repayment, &job.Env{Store: store})
		switch {
		case errors.Is(err, job.ErrNotFound):
			fmt.Printf("%v: %v, the order is not found\n", level, res.Outcome)
		case err != nil:
			log.Fatal(err)
		default:
			fmt.Printf("%v: %v, %v\n", level, res.Outcome, res.Record.Features)
		}
	}
	// Output:
	// eventual: failed, the order is not found
	// fetch-strong: ok, map[paid:100 principal:1000]
}

// ExampleTrigger gives a job two trigger sources, each with its own filter:
// a new order or a repayment of it runs the job, whichever comes, and the
// run on the later one (here the repayment) sees the other.
func ExampleTrigger() {
	ctx := context.Background()
	store, err := embedded.Open(embedded.Config{InMemory: true})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	at := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	order := eventcenter.Event{Source: "mysql.loan.orders", Key: "o-1", Time: at, Op: eventcenter.OpInsert,
		After: eventcenter.Row{"principal": int64(1000)}}
	repayment := eventcenter.Event{Source: "mysql.loan.repayments", Key: "o-1", Time: at.Add(time.Minute), Op: eventcenter.OpInsert,
		After: eventcenter.Row{"amount": int64(100)}}
	if err := store.Append(ctx, []eventcenter.Event{order, repayment}); err != nil {
		log.Fatal(err)
	}

	j := job.MustNew("order-repayment", func(c *job.Context) (eventcenter.Row, error) {
		other := "mysql.loan.repayments"
		if c.Trigger().Source == other {
			other = "mysql.loan.orders"
		}
		if _, err := c.Get(other, c.Trigger().Key); errors.Is(err, job.ErrNotFound) {
			return nil, nil // the other is not there (yet): no output
		} else if err != nil {
			return nil, err
		}
		return eventcenter.Row{"joined": true}, nil
	},
		job.Trigger("mysql.loan.orders", job.Ops(eventcenter.OpInsert)),
		job.Trigger("mysql.loan.repayments", job.Where("amount > 0", func(e *eventcenter.Event) bool { return e.After["amount"].(int64) > 0 })),
	)
	fmt.Println(j.Sources())
	for _, e := range []eventcenter.Event{order, repayment} {
		res, err := job.Evaluate(ctx, j, e, &job.Env{Store: store})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Source, res.Outcome)
	}
	// Output:
	// [mysql.loan.orders mysql.loan.repayments]
	// mysql.loan.orders skipped
	// mysql.loan.repayments ok
}
