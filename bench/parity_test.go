package bench_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tidemark-dev/tidemark/devstack"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/parity"
	"github.com/tidemark-dev/tidemark/source"
)

// BenchmarkParityDemoDay compares, over a day of the demo's data, a parity
// run of the example job with the plain backfill of the same range, in
// one run (see README.md, "Parity"):
//
//	go test ./bench -run '^$' -bench ParityDemoDay -benchtime 1x
//
// The day is what `tidemark dev` stores: devstack.Demo's history (200
// users' profiles, orders and repayments, 5,000 applications over the day
// before its start) produced to Kafka (in-process, kfake) and ingested
// into an embedded store, then the job's live outputs written as its live
// worker writes them. Both sides replay the day's applications; the
// backfill evaluates each once (as known at its trigger, outputs
// discarded), parity evaluates each as known now and compares with the
// live record (in parity: one evaluation; a difference costs more).
func BenchmarkParityDemoDay(b *testing.B) {
	ctx := context.Background()
	st, from, to := demoDay(b)
	j, err := credit.New()
	if err != nil {
		b.Fatal(err)
	}
	var triggers []eventcenter.Event
	for e, err := range st.Replay(ctx, eventcenter.ReplayQuery{Sources: j.Sources(), From: from, To: to}) {
		if err != nil {
			b.Fatal(err)
		}
		triggers = append(triggers, e)
	}
	results := make([]job.Result, len(triggers))
	job.EvaluateAll(ctx, j, &job.Env{Mode: job.Live, Store: st}, triggers, results, 0)
	var recs []job.Record
	for _, r := range results {
		if r.Record != nil {
			recs = append(recs, *r.Record)
		}
	}
	if err := outputs.FeatureStore(st, "").Write(ctx, recs); err != nil {
		b.Fatal(err)
	}
	b.Logf("demo day [%s, %s): %d applications, %d live records", from.Format(time.RFC3339), to.Format(time.RFC3339), len(triggers), len(recs))
	b.Run("backfill", func(b *testing.B) {
		env := &job.Env{Mode: job.Backfill, Store: st, KnownAt: job.KnownAtTrigger, Outputs: []job.Output{}}
		events := 0
		for range b.N {
			sum, err := job.RunAll(ctx, j, env, st.Replay(ctx, eventcenter.ReplayQuery{Sources: j.Sources(), From: from, To: to}), job.RunOptions{})
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
			if rep.Differences() != 0 || rep.Triggers != len(triggers) {
				b.Fatalf("parity: %d triggers, differences %v; want %d in parity", rep.Triggers, rep.Counts, len(triggers))
			}
			events += rep.Events
		}
		b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	})
}

// demoDay runs the demo against an in-process Kafka, ingests its history
// into an in-memory store and returns the store and the day its
// applications cover.
func demoDay(b *testing.B) (st *embedded.Store, from, to time.Time) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srcs := devstack.DemoSources()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, append(srcs.Topics(), source.DefaultProgressTopic, "tidemark.deadletter")...))
	if err != nil {
		b.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	st, err = embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := credit.DeclareIndexes(ctx, st); err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	in, err := ingest.New(ingest.Config{Brokers: brokers, Sources: srcs, Store: st, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	ingested := make(chan error, 1)
	go func() { ingested <- in.Run(ctx) }()
	// The demo's history ends 24h/5000 before its start, which is after
	// now; its live applications are at or after its start.
	to = time.Now().UTC()
	from = to.Add(-25 * time.Hour)
	demo := &devstack.Demo{Brokers: brokers, Logger: quiet}
	produced := make(chan error, 1)
	go func() { produced <- demo.Run(ctx) }()
	const apps = 5000 // devstack.Demo's default HistoryApps
	deadline := time.Now().Add(2 * time.Minute)
	for n := 0; n < apps; {
		if time.Now().After(deadline) {
			b.Fatalf("%d of the demo's %d applications ingested in time", n, apps)
		}
		time.Sleep(100 * time.Millisecond)
		n = 0
		for _, err := range st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{credit.Applications}, From: from, To: to}) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	cancel()
	if err := <-produced; err != nil {
		b.Fatal(err)
	}
	if err := <-ingested; err != nil && ctx.Err() == nil {
		b.Fatal(err)
	}
	return st, from, to
}
