package workers_test

// Backfill throughput with one fetch per event, through Temporal with one
// and two workers, beside the same range without Temporal in the same run:
// replayed by job.RunAll over one Replay ("direct"), and cut into the
// workflow's chunks run by the same activity code two at a time in the
// SDK's activity environment, without server, workflow or polls
// ("activities": the same work as temporal/workers=1 but the
// orchestration):
//
//	go test ./workers -run '^$' -bench Backfill -benchtime 3x
//
// The fixture: BENCH_EVENTS applications (default 300,000) of 1,000 users
// over one day in the embedded store on disk; every application fetches its
// user as of its time (one as-of read) and writes one record. Sinks:
// "discard" counts the records (the cost of replay, fetch and logic), and
// "featurestore" appends them to the event center (the live default; synced
// appends, a feature source of its own per run).

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
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/tidemark-dev/tidemark/activities"
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
	dir     string // the prepared store, copied for each sub-benchmark
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
		if bench.dir, bench.err = os.MkdirTemp("", "tidemark-bench-*"); bench.err != nil {
			return
		}
		st, err := embedded.Open(embedded.Config{Dir: bench.dir})
		if err != nil {
			bench.err = err
			return
		}
		evs := backfilltest.Events(n, 1000, benchSpan)
		if bench.err = backfilltest.Fill(context.Background(), st, evs); bench.err != nil {
			return
		}
		st.Close()
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

// freshStore opens a copy of the prepared store for one sub-benchmark, so
// that none pays for the compactions of another's writes. Reopened, the
// store reads the events from tables on disk: a store that has run.
func freshStore(b *testing.B) *embedded.Store {
	b.Helper()
	dir := b.TempDir()
	if err := os.CopyFS(dir+"/store", os.DirFS(bench.dir)); err != nil {
		b.Fatal(err)
	}
	st, err := embedded.Open(embedded.Config{Dir: dir + "/store"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

func BenchmarkBackfill(b *testing.B) {
	benchSetup(b)
	ctx := context.Background()
	for _, sink := range []string{"discard", "featurestore"} {
		// Each run writes its records under a feature source of its own:
		// appending the same records again would only add merge operands,
		// which later runs would pay for in compactions.
		runs := 0
		featureSource := func() string {
			runs++
			return fmt.Sprintf("bench.out.%d", runs)
		}
		b.Run(fmt.Sprintf("direct/sink=%s", sink), func(b *testing.B) {
			st := freshStore(b)
			out := &discard{}
			j := backfilltest.Job(job.Outputs(out))
			start, cpu := time.Now(), cpuTime()
			for range b.N {
				env := &job.Env{Mode: job.Backfill, Store: st}
				if sink == "featurestore" {
					// As the backfill writes it: fill mode reads before it writes.
					env.Outputs = []job.Output{outputs.FeatureStore(st, featureSource()).Backfill(st, outputs.Fill, "bench")}
				}
				replay := st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{backfilltest.Apps}, From: backfilltest.T0, To: backfilltest.T0.Add(benchSpan)})
				sum, err := job.RunAll(ctx, j, env, replay, job.RunOptions{})
				if err != nil || sum.Counts[job.OK] != bench.outputs {
					b.Fatalf("%+v %v", sum.Counts, err)
				}
			}
			report(b, start, cpu)
		})
		// The same chunks through the same activity code, two at a time
		// as the workflow runs them with one worker, without Temporal's
		// server, workflow or polls (the SDK's activity environment
		// only): the gap to temporal/workers=1 is the orchestration's.
		b.Run(fmt.Sprintf("activities/sink=%s", sink), func(b *testing.B) {
			st := freshStore(b)
			out := &discard{}
			a := &activities.Backfill{Store: st, Jobs: activities.NewJobs(backfilltest.Job(job.Outputs(out)))}
			chunks := eventcenter.Chunks{From: backfilltest.T0, To: backfilltest.T0.Add(benchSpan), Size: workflows.DefaultChunk}
			start, cpu := time.Now(), cpuTime()
			for i := range b.N {
				var opts activities.Options
				if sink == "featurestore" {
					opts.Sink = "featurestore:" + featureSource()
				}
				next := make(chan int)
				var outputs atomic.Int64
				var wg sync.WaitGroup
				errs := make(chan error, 2)
				for range 2 {
					wg.Go(func() {
						var ts testsuite.WorkflowTestSuite
						ts.SetLogger(quiet)
						for c := range next {
							env := ts.NewTestActivityEnvironment()
							env.RegisterActivity(a)
							r := chunks.At(c)
							v, err := env.ExecuteActivity(a.BackfillChunk, activities.ChunkInput{Backfill: fmt.Sprintf("bench-activities-%d", i), Job: backfilltest.JobName,
								Index: c, From: r.From, To: r.To, Options: opts})
							var res activities.ChunkResult
							if err == nil {
								err = v.Get(&res)
							}
							if err != nil {
								errs <- err
								return
							}
							outputs.Add(int64(res.Outputs))
						}
					})
				}
				for c := range chunks.Len() {
					next <- c
				}
				close(next)
				wg.Wait()
				close(errs)
				if err := <-errs; err != nil || outputs.Load() != int64(bench.outputs) {
					b.Fatalf("%d outputs, want %d: %v", outputs.Load(), bench.outputs, err)
				}
			}
			report(b, start, cpu)
		})
		for _, nw := range []int{1, 2} {
			b.Run(fmt.Sprintf("temporal/workers=%d/sink=%s", nw, sink), func(b *testing.B) {
				queue := fmt.Sprintf("bench-%d-%s", nw, sink)
				st := freshStore(b)
				out := &discard{}
				for range nw {
					w := workers.New(bench.c, queue, workers.Deps{Store: st, Jobs: []*job.Job{backfilltest.Job(job.Outputs(out))}}, worker.Options{})
					if err := w.Start(); err != nil {
						b.Fatal(err)
					}
					defer w.Stop()
				}
				in := workflows.BackfillInput{Job: backfilltest.JobName, From: backfilltest.T0, To: backfilltest.T0.Add(benchSpan),
					Chunk: workflows.Duration(time.Hour), Parallelism: 2 * nw}
				start, cpu := time.Now(), cpuTime()
				for i := range b.N {
					if sink == "featurestore" {
						in.Sink = "featurestore:" + featureSource()
					}
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
