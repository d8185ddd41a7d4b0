package workers_test

// Backfill throughput with one fetch per event, through Temporal with one
// and two workers, beside the same range replayed without Temporal
// (job.RunAll over one Replay) in the same run:
//
//	go test ./workers -run '^$' -bench Backfill -benchtime 3x
//
// The fixture: BENCH_EVENTS applications (default 300,000) of 1,000 users
// over one day in the embedded store on disk; every application fetches its
// user as of its time (one as-of read) and writes one record. Sinks:
// "discard" counts the records (the cost of replay, fetch and logic), and
// "featurestore" appends them to the event center (the live default).

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/internal/backfilltest"
	"github.com/tidemark-dev/tidemark/internal/devtemporal"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/workers"
	"github.com/tidemark-dev/tidemark/workflows"
)

type discard struct{ n atomic.Int64 }

func (d *discard) Name() string { return "discard" }
func (d *discard) Idempotent()  {}
func (d *discard) Write(_ context.Context, recs []job.Record) error {
	d.n.Add(int64(len(recs)))
	return nil
}

var bench struct {
	once    sync.Once
	err     error
	st      *embedded.Store
	srv     *devtemporal.Server
	c       client.Client
	events  int
	outputs int
}

const benchSpan = 24 * time.Hour

func benchSetup(b *testing.B) {
	bench.once.Do(func() {
		n := 300000
		if v, err := strconv.Atoi(os.Getenv("BENCH_EVENTS")); err == nil && v > 0 {
			n = v
		}
		dir, err := os.MkdirTemp("", "tidemark-bench-*")
		if err != nil {
			bench.err = err
			return
		}
		st, err := embedded.Open(embedded.Config{Dir: dir})
		if err != nil {
			bench.err = err
			return
		}
		evs := backfilltest.Events(n, 1000, benchSpan)
		if bench.err = backfilltest.Fill(context.Background(), st, evs); bench.err != nil {
			return
		}
		// Reopened, the store reads its events from tables on disk, not
		// from the memtable they were just written to: a store that has run.
		st.Close()
		if bench.st, bench.err = embedded.Open(embedded.Config{Dir: dir}); bench.err != nil {
			return
		}
		bench.events, bench.outputs = n, backfilltest.Triggers(evs)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if bench.srv, bench.err = devtemporal.Start(ctx, devtemporal.Config{Addr: "127.0.0.1:0", UIAddr: "off", SearchAttributes: workers.SearchAttributes(), LogLevel: "error"}); bench.err != nil {
			return
		}
		bench.c, bench.err = bench.srv.NewClient(ctx, client.Options{Logger: quiet})
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
}

func BenchmarkBackfill(b *testing.B) {
	benchSetup(b)
	ctx := context.Background()
	for _, sink := range []string{"discard", "featurestore"} {
		newJob := func(out job.Output) *job.Job {
			if sink == "discard" {
				return backfilltest.Job(job.Outputs(out))
			}
			return backfilltest.Job(job.Outputs(outputs.FeatureStore(bench.st, "bench.out")))
		}
		b.Run(fmt.Sprintf("direct/sink=%s", sink), func(b *testing.B) {
			out := &discard{}
			j := newJob(out)
			start, cpu := time.Now(), cpuTime()
			for range b.N {
				replay := bench.st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{backfilltest.Apps}, From: backfilltest.T0, To: backfilltest.T0.Add(benchSpan)})
				sum, err := job.RunAll(ctx, j, &job.Env{Mode: job.Backfill, Store: bench.st}, replay, job.RunOptions{})
				if err != nil || sum.Counts[job.OK] != bench.outputs {
					b.Fatalf("%+v %v", sum.Counts, err)
				}
			}
			report(b, start, cpu)
		})
		for _, nw := range []int{1, 2} {
			b.Run(fmt.Sprintf("temporal/workers=%d/sink=%s", nw, sink), func(b *testing.B) {
				queue := fmt.Sprintf("bench-%d-%s", nw, sink)
				out := &discard{}
				for range nw {
					w := workers.New(bench.c, queue, workers.Deps{Store: bench.st, Jobs: []*job.Job{newJob(out)}}, worker.Options{})
					if err := w.Start(); err != nil {
						b.Fatal(err)
					}
					defer w.Stop()
				}
				in := workflows.BackfillInput{Job: backfilltest.JobName, From: backfilltest.T0, To: backfilltest.T0.Add(benchSpan),
					Chunk: workflows.Duration(time.Hour), Parallelism: 2 * nw}
				start, cpu := time.Now(), cpuTime()
				for i := range b.N {
					run, err := bench.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("%s-%d-%d", queue, time.Now().UnixNano(), i), TaskQueue: queue},
						workflows.BackfillWorkflow, in)
					if err != nil {
						b.Fatal(err)
					}
					var sum workflows.Summary
					if err := run.Get(ctx, &sum); err != nil || sum.Outputs != bench.outputs {
						b.Fatalf("%+v %v", sum, err)
					}
				}
				report(b, start, cpu)
			})
		}
	}
}

// report adds events/s (wall clock) and the process's CPU time per event
// (user+system, Temporal server included), which a loaded machine does not
// distort as much.
func report(b *testing.B, start time.Time, cpu time.Duration) {
	el := time.Since(start)
	n := float64(bench.events * b.N)
	b.ReportMetric(n/el.Seconds(), "events/s")
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/n, "cpu-ns/event")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
