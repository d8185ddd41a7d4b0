// Package job is the SDK in which model owners write feature and decision
// jobs, and the mode-agnostic core that runs them live, in backfills and on
// calls.
//
// # Defining a job
//
// A job is one or more triggers (each a source, optionally filtered), the
// main logic, one or more outputs, declared parameters and a consistency
// level:
//
//	j, err := job.New("credit-features", logic,
//		job.Trigger("mysql.loan.applications", job.Ops(eventcenter.OpInsert)),
//		job.Version("1.0.0"),
//		job.Owner("risk-team"),
//		job.Reads("mysql.loan.orders"),
//		job.Param(params.Decl{Name: "max_open_orders", Type: params.Int, Default: 3, Min: 0, Max: 20,
//			Description: "most loans an applicant may have open"}),
//		job.Consistency(job.FetchStrong),
//		job.Outputs(outputs.FeatureStore(store, ""), rabbit),
//	)
//
// The logic receives a [Context] and returns the features (an
// eventcenter.Row) or nil for no output:
//
//	func logic(c *job.Context) (eventcenter.Row, error) {
//		user := c.Trigger().After["user_id"]
//		orders, err := c.Lookup("mysql.loan.orders", "user_id", user) // all orders of the user, as of the trigger
//		...
//		return eventcenter.Row{"open_orders": n, "eligible": n < c.Int("max_open_orders")}, nil
//	}
//
// # Fetching instead of joining
//
// The logic never joins streams: it fetches point-in-time state from the
// event center — [Context.Get] / [Context.AsOf] (state of a key),
// [Context.History] (changes of a key over a window), [Context.Lookup] (all
// keys with an index value). Every fetch reads as of the trigger's event
// time T, or an earlier time asked with [At] and/or [Ago] (Ago goes back
// from At's time); asking for a later time fails with ErrFuture. A fetch
// sees nothing after the time it reads as of, so no code path can read the
// future, in any mode. At T, the trigger's own key is bounded by the
// trigger's position too (a later change with the same time is not
// visible).
//
// # Consistency
//
// A run never reads after its trigger's time T. So of two related events
// at times t1 < t2 — an order and its repayment, on two streams — only the
// run on the later one can see the other, and the level decides whether it
// is sure to (ARCHITECTURE.md, "Fetch instead of join"). The live worker
// stores each trigger event before it runs the job on it. Under
// [Eventual], a fetch reads what is stored when it runs: of two related
// events with one event time processed concurrently, at least one run sees
// both; but when the later event is processed first (its stream ahead, a
// partition lagging), the earlier one is not stored yet when the later
// run fetches, and no run sees both. The stronger levels wait on
// watermarks: [TriggerStrong] waits for the trigger source's watermark to
// reach T before the logic, so fetches of the trigger's own source are
// complete; [FetchStrong] waits, per fetch, for the fetched source's
// watermark to reach the fetch time, so every fetch is complete, up to the
// job's WaitTimeout, and fails the fetch with a *StaleError (ErrStale)
// when it expires — the run's Outcome is then Stale and it outputs
// nothing, unless the logic handles the error; [FetchStrongNoDelay] reads
// the row from the source itself (Env.Fallback, e.g. package job/fallback
// for MySQL) when the watermark is behind, rate-limited, and waits
// otherwise. A job joining two streams therefore uses FetchStrong:
//
//	// Each repayment with its order, whichever stream is ahead.
//	j, err := job.New("repayment-with-order", func(c *job.Context) (eventcenter.Row, error) {
//		order, err := c.Get("mysql.loan.orders", c.Trigger().After["order_id"].(string))
//		if err != nil {
//			return nil, err // not found, or stale: no output
//		}
//		return eventcenter.Row{"principal": order["principal"], "paid": c.Trigger().After["amount"]}, nil
//	}, job.Trigger("mysql.loan.repayments"), job.Consistency(job.FetchStrong))
//
// (see ExampleConsistency). Each level's exact guarantee is on its constant.
//
// A job can also trigger on both streams, one job.Trigger per source (each
// with its own filters): then whichever of the two related events comes
// second in event time runs with the other one visible, and under
// FetchStrong that run is sure to see it. Every mode honours all of a job's
// trigger sources: the live worker consumes all their topics in one
// consumer group, a backfill replays them merged in event order, and a call
// runs on an event of any of them.
//
// # Errors
//
// A fetch fails with ErrNotFound (no state), ErrFuture (a time after T),
// ErrInvalidFetch (what no retry can answer: an empty key, an undeclared
// index, an unknown source, an undefined level, a read behind the store's
// retention horizon — never retried), ErrStale,
// or ErrFetch (an outage of the event center: the run may succeed when
// retried, see [Result.Retryable]). Failed, stale and skipped runs output
// nothing, in every mode.
//
// # Running: one core, every mode
//
// [Evaluate] runs a job on one trigger in an [Env] and returns a [Result]
// without writing; [Run] also writes the outputs; [RunAll] runs a job over
// a stream of events (an eventcenter Replay of a backfill chunk), evaluating
// in parallel and writing outputs in batches; [EvaluateAll] and
// [WriteOutputs] are the pieces the live worker (package live) uses per
// polled batch. The Env is what differs between modes: the store, the
// parameter source ([CurrentParams] live, [ParamsAsOfTrigger] or
// [FixedParams] in backfills), a bitemporal bound ([Env.KnownAt], e.g.
// [KnownAtTrigger] to see what a live run could see), the fallback, and
// output overrides (a backfill writes JSON Lines files instead).
//
// # Outputs
//
// Every OK run (the logic returned valid features) yields one [Record]:
// its ID (a hash of the job and the trigger event's identity), the job
// version, the parameter version, the entity and the features; failed,
// stale and skipped runs yield none. Every output of every mode gets the
// same Record for the same trigger. Outputs that are
// [Idempotent] (the feature store: one event per trigger identity; JSON
// Lines objects) absorb repeats; the others (Kafka, RabbitMQ) go through
// the [Ledger] ([EventLedger] in the event center), so a retried trigger is
// delivered once, and carry the record ID for subscribers to drop the rare
// repeat (a crash between a delivery and its ledger mark).
//
// # Parameters
//
// Declared parameters are read from a registry (package params) at every
// run, so an operator's change applies to the next run without a restart;
// every Record carries the version it used.
package job
