package parity_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/parity"
)

// benchWorld stores users users (a profile, three orders, three
// repayments each) and apps applications over an hour after t0.
func benchWorld(b *testing.B, users, apps int) (*embedded.Store, []eventcenter.Event) {
	b.Helper()
	ctx := context.Background()
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := credit.DeclareIndexes(ctx, st); err != nil {
		b.Fatal(err)
	}
	var evs []eventcenter.Event
	for i := range users {
		u := user(i)
		at := t0.Add(-24 * time.Hour)
		evs = append(evs, eventcenter.Event{Source: credit.Profiles, Key: u, Time: at, Op: eventcenter.OpInsert,
			After: eventcenter.Row{"id": u, "age": int64(30), "monthly_income": dec("5000.00"), "kyc_level": int64(3)}})
		for k := range 3 {
			evs = append(evs,
				eventcenter.Event{Source: credit.Orders, Key: fmt.Sprint("o", i, "-", k), Time: at, Op: eventcenter.OpInsert,
					After: eventcenter.Row{"id": int64(i*3 + k), "user_id": u, "principal": dec("500.00"), "outstanding": dec("400.00"), "status": "open"}},
				eventcenter.Event{Source: credit.Repayments, Key: fmt.Sprint("r", i, "-", k), Time: at, Op: eventcenter.OpInsert,
					After: eventcenter.Row{"id": int64(i*3 + k), "user_id": u, "order_id": int64(i*3 + k), "amount": dec("50.00"), "late": k == 0, "paid_at": at}})
		}
	}
	var triggers []eventcenter.Event
	for n := range apps {
		e := application(n, user(n%users))
		e.Time = t0.Add(time.Duration(n) * time.Hour / time.Duration(apps))
		triggers = append(triggers, e)
	}
	if err := st.Append(ctx, append(evs, triggers...)); err != nil {
		b.Fatal(err)
	}
	return st, triggers
}

// BenchmarkLiveLineage measures the live path (job.EvaluateAll on a batch
// of 256 triggers, then the feature store append, as live.Worker does per
// polled batch) of the example job without and with fetch lineage, on two
// embedded stores, alternating batches so that both see the same machine
// load: outputs/s of each, their ratio, and the lineage bytes per output.
func BenchmarkLiveLineage(b *testing.B) {
	ctx := context.Background()
	type side struct {
		j        *job.Job
		st       *embedded.Store
		triggers []eventcenter.Event
		took     time.Duration
		outs     int
	}
	var sides [2]*side
	for k, lineage := range []bool{false, true} {
		st, triggers := benchWorld(b, 200, 2048)
		opts := []job.Option{job.Outputs(outputs.FeatureStore(st, ""))}
		if lineage {
			opts = append(opts, job.Lineage())
		}
		j, err := credit.New(opts...)
		if err != nil {
			b.Fatal(err)
		}
		sides[k] = &side{j: j, st: st, triggers: triggers}
	}
	results := make([]job.Result, 256)
	bytes := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, s := range sides {
			batch := s.triggers[(i*256)%len(s.triggers):][:256]
			start := time.Now()
			job.EvaluateAll(ctx, s.j, &job.Env{Mode: job.Live, Store: s.st}, batch, results, 0)
			recs := make([]job.Record, 0, len(batch))
			for k := range batch {
				if r := results[k].Record; r != nil {
					recs = append(recs, *r)
				}
			}
			if err := job.WriteOutputs(ctx, s.j.Outputs(), nil, recs); err != nil {
				b.Fatal(err)
			}
			s.took += time.Since(start)
			s.outs += len(recs)
			for k := range recs {
				if l := recs[k].Lineage; l != nil {
					bytes += len(l.MarshalBinary())
				}
			}
		}
	}
	off := float64(sides[0].outs) / sides[0].took.Seconds()
	on := float64(sides[1].outs) / sides[1].took.Seconds()
	b.ReportMetric(off, "outputs/s-without")
	b.ReportMetric(on, "outputs/s-lineage")
	b.ReportMetric(on/off*100, "%-of-without")
	b.ReportMetric(float64(bytes)/float64(sides[1].outs), "lineage-B/output")
}

// BenchmarkParityVsBackfill runs, over the same hour of 2048 applications,
// the plain backfill core (job.RunAll of the replay, outputs discarded) and
// a parity comparison (live outputs written once before), in events/s.
func BenchmarkParityVsBackfill(b *testing.B) {
	ctx := context.Background()
	st, triggers := benchWorld(b, 200, 2048)
	j, err := credit.New()
	if err != nil {
		b.Fatal(err)
	}
	fs := outputs.FeatureStore(st, "")
	env := &job.Env{Mode: job.Live, Store: st}
	results := make([]job.Result, len(triggers))
	job.EvaluateAll(ctx, j, env, triggers, results, 0)
	var recs []job.Record
	for _, r := range results {
		recs = append(recs, *r.Record)
	}
	if err := fs.Write(ctx, recs); err != nil {
		b.Fatal(err)
	}
	from, to := t0, t0.Add(time.Hour)
	b.Run("backfill", func(b *testing.B) {
		benv := &job.Env{Mode: job.Backfill, Store: st, KnownAt: job.KnownAtTrigger, Outputs: []job.Output{}}
		events := 0
		for range b.N {
			sum, err := job.RunAll(ctx, j, benv, st.Replay(ctx, eventcenter.ReplayQuery{Sources: j.Sources(), From: from, To: to}), job.RunOptions{})
			if err != nil {
				b.Fatal(err)
			}
			events += sum.Events
		}
		b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("parity", func(b *testing.B) {
		events := 0
		for range b.N {
			rep, err := parity.Compare(ctx, parity.Config{Job: j, Store: st}, from, to)
			if err != nil {
				b.Fatal(err)
			}
			if rep.Differences() != 0 {
				b.Fatalf("differences %v", rep.Counts)
			}
			events += rep.Events
		}
		b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	})
}
