package workers_test

// Backfill throughput with one fetch per event, through Temporal with one
// and two workers ("temporal-1", "temporal-2"), beside the same range
// without Temporal in the same run: replayed by job.RunAll over one Replay
// ("direct"), and cut into the workflow's chunks run by the same activity
// code two at a time in the SDK's activity environment, without server,
// workflow or polls ("activities": the same work as temporal-1 but the
// orchestration). Each iteration runs every way once, in turn, so that the
// machine's slow moments fall on every way; the overheads are temporal-1's
// time beyond activities' and beyond direct's:
//
//	go test ./workers -run '^$' -bench Backfill -benchtime 8x
//
// The fixture: BENCH_EVENTS applications (default 300,000) of 1,000 users
// over one day in the embedded store on disk; every application fetches its
// user as of its time (one as-of read) and writes one record. Sinks:
// "discard" counts the records (the cost of replay, fetch and logic), and
// "featurestore" appends them to the event center (the live default; synced
// appends, a feature source of its own per run). BENCH_CHUNK sets the
// chunk of every way (default the workflow's for temporal-1: 3h, 8 chunks;
// BENCH_CHUNK=1h for the hours of backfills before workflow version 3),
// BENCH_SEGMENT the events of a chunk's segments (default the workflow's); BENCH_WAY
// (direct, activities, temporal-1 or temporal-2) runs one way alone, for a
// profile. BENCH_SERVER=process runs the Temporal server in a process of
// its own, as in production, and reports its CPU per event beside each
// temporal way's (the default: in this process, its CPU counted as the
// worker's). The collector is set as a worker process sets it
// (gcpolicy.Apply: GOGC 400 unless GOGC is set), for the in-process
// server too.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	"github.com/tidemark-dev/tidemark/internal/gcpolicy"
	"github.com/tidemark-dev/tidemark/internal/testenv"
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

var bench benchState

type benchState struct {
	once    sync.Once
	err     error
	dir     string              // the prepared store, copied for each sub-benchmark
	srv     *devtemporal.Server // nil with BENCH_SERVER=process
	server  *exec.Cmd           // with BENCH_SERVER=process
	c       client.Client
	events  int
	outputs int
}

const benchSpan = 24 * time.Hour

// serverCPU is the CPU the Temporal server's process has used so far, with
// BENCH_SERVER=process; ok is false without it (the server's CPU is then
// this process's) or where /proc cannot be read.
func (bb *benchState) serverCPU() (_ time.Duration, ok bool) {
	if bb.server == nil {
		return 0, false
	}
	return processCPU(bb.server.Process.Pid)
}

// TestMain removes the benchmarks' prepared store, which outlives every
// sub-benchmark (each works on a copy of it).
func TestMain(m *testing.M) {
	code := m.Run()
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
	os.Exit(code)
}

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
		if os.Getenv("BENCH_SERVER") == "process" {
			bench.server, bench.c, bench.err = serverProcess(ctx)
			return
		}
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
	_, undo := gcpolicy.Apply() // the collector as a worker process sets it (tidemark worker)
	b.Cleanup(undo)
	benchSetup(b)
	for _, sink := range []string{"discard", "featurestore"} {
		b.Run("sink="+sink, func(b *testing.B) {
			ways := []backfillWay{directWay(b, sink), activitiesWay(b, sink), temporalWay(b, sink, 1), temporalWay(b, sink, 2)}
			ways = onlyWay(b, ways, func(w backfillWay) string { return w.name })
			// Every iteration runs each way once, in turn: a machine that
			// slows down for a while slows every way alike, so the ratios
			// are of the same moments. The order rotates from one
			// iteration to the next, so that each way follows each other
			// (and pays for what it left behind: garbage, compactions)
			// equally often over a multiple of 4 iterations, and each
			// starts after a collection.
			took := make([]time.Duration, len(ways))
			cpu, serverCPU := make([]time.Duration, len(ways)), make([]time.Duration, len(ways))
			serverRead := true // every read of the server's CPU succeeded
			for i := range b.N {
				for k := range ways {
					w := (i + k) % len(ways)
					way := ways[w]
					runtime.GC()
					s0, ok0 := bench.serverCPU()
					start, c := time.Now(), testenv.CPUTime()
					way.run(b, i)
					took[w] += time.Since(start)
					cpu[w] += testenv.CPUTime() - c
					s1, ok1 := bench.serverCPU()
					serverCPU[w] += s1 - s0
					serverRead = serverRead && ok0 && ok1
				}
			}
			n := float64(bench.events * b.N)
			for w, way := range ways {
				b.ReportMetric(n/took[w].Seconds(), way.name+"-events/s")
				b.ReportMetric(float64(cpu[w].Nanoseconds())/n, way.name+"-cpu-ns/event")
				if serverRead && strings.HasPrefix(way.name, "temporal") {
					b.ReportMetric(float64(serverCPU[w].Nanoseconds())/n, way.name+"-server-cpu-ns/event")
				}
			}
			if len(ways) < 4 {
				return
			}
			// Temporal's share: the time one worker takes beyond the same
			// chunks run by the same code without Temporal, and beyond
			// job.RunAll over one replay of the range.
			b.ReportMetric(took[2].Seconds()/took[1].Seconds()-1, "temporal-1-overhead-vs-activities")
			b.ReportMetric(took[2].Seconds()/took[0].Seconds()-1, "temporal-1-overhead-vs-direct")
			b.Logf("sink=%s, %d rounds: direct %v, activities %v, temporal-1 %v, temporal-2 %v; load average %s",
				sink, b.N, took[0]/time.Duration(b.N), took[1]/time.Duration(b.N), took[2]/time.Duration(b.N), took[3]/time.Duration(b.N), testenv.LoadAverage())
		})
	}
}

// backfillWay is one way of running the benchmark's backfill, over a store
// of its own (a copy of the prepared one).
type backfillWay struct {
	name string
	run  func(b *testing.B, i int)
}

// featureSource names the feature source of one run: appending the same
// records again would only add merge operands, which later runs would pay
// for in compactions.
func featureSource(way string, i int) string { return fmt.Sprintf("bench.out.%s.%d", way, i) }

// directWay replays the range by job.RunAll over one Replay.
func directWay(b *testing.B, sink string) backfillWay {
	st := freshStore(b)
	j := backfilltest.Job(job.Outputs(&discard{}))
	return backfillWay{name: "direct", run: func(b *testing.B, i int) {
		ctx := context.Background()
		env := &job.Env{Mode: job.Backfill, Store: st}
		if sink == "featurestore" {
			// As the backfill writes it: fill mode reads before it writes.
			env.Outputs = []job.Output{outputs.FeatureStore(st, featureSource("direct", i)).Backfill(st, outputs.Fill, "bench")}
		}
		replay := st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{backfilltest.Apps}, From: backfilltest.T0, To: backfilltest.T0.Add(benchSpan)})
		sum, err := job.RunAll(ctx, j, env, replay, job.RunOptions{})
		if err != nil || sum.Counts[job.OK] != bench.outputs {
			b.Fatalf("%+v %v", sum.Counts, err)
		}
	}}
}

// activitiesWay runs the workflow's chunks through the same activity code,
// two at a time as the workflow runs them with one worker, without
// Temporal's server, workflow or polls (the SDK's activity environment
// only): its gap to temporal-1 is the orchestration's.
func activitiesWay(b *testing.B, sink string) backfillWay {
	st := freshStore(b)
	a := &activities.Backfill{Store: st, Jobs: activities.NewJobs(backfilltest.Job(job.Outputs(&discard{})))}
	chunks := eventcenter.Chunks{From: backfilltest.T0, To: backfilltest.T0.Add(benchSpan), Size: benchChunk}
	return backfillWay{name: "activities", run: func(b *testing.B, i int) {
		opts := activities.Options{SegmentEvents: benchSegment}
		if sink == "featurestore" {
			opts.Sink = "featurestore:" + featureSource("activities", i)
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
						for range next { // let the feeder finish
						}
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
	}}
}

// temporalWay runs the Backfill workflow on the in-process Temporal server
// with nw workers of this process polling its task queue.
func temporalWay(b *testing.B, sink string, nw int) backfillWay {
	name := fmt.Sprintf("temporal-%d", nw)
	queue := fmt.Sprintf("bench-%d-%s", nw, sink)
	st := freshStore(b)
	for range nw {
		w := workers.New(bench.c, queue, workers.Deps{Store: st, Jobs: []*job.Job{backfilltest.Job(job.Outputs(&discard{}))}}, worker.Options{})
		if err := w.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(w.Stop)
	}
	in := workflows.BackfillInput{Job: backfilltest.JobName, From: backfilltest.T0, To: backfilltest.T0.Add(benchSpan),
		Chunk: workflows.Duration(benchChunk), Parallelism: 2 * nw, Options: activities.Options{SegmentEvents: benchSegment}}
	return backfillWay{name: name, run: func(b *testing.B, i int) {
		ctx := context.Background()
		if sink == "featurestore" {
			in.Sink = "featurestore:" + featureSource(name, i)
		}
		start := time.Now()
		run, err := bench.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("%s-%d-%d", queue, time.Now().UnixNano(), i), TaskQueue: queue},
			workflows.BackfillWorkflow, in)
		if err != nil {
			b.Fatal(err)
		}
		var sum workflows.Summary
		if err := run.Get(ctx, &sum); err != nil || sum.Outputs != bench.outputs {
			b.Fatalf("%+v %v", sum, err)
		}
		logSlowRun(b, bench.c, run.GetID(), time.Since(start), 5*time.Second, time.Second)
	}}
}

// benchSegment is the segment of the workflow's and the activities way's
// chunks: BENCH_SEGMENT events, default (0) the workflow's.
var benchSegment, _ = strconv.Atoi(os.Getenv("BENCH_SEGMENT"))

// benchChunk is the chunk of the workflow and of the activities way:
// BENCH_CHUNK (a Go duration), default the workflow's for the range at
// temporal-1's parallelism (2): 3h, 8 chunks.
var benchChunk = func() time.Duration {
	d, err := time.ParseDuration(os.Getenv("BENCH_CHUNK"))
	if err != nil {
		in, err := workflows.BackfillInput{Job: backfilltest.JobName, From: backfilltest.T0, To: backfilltest.T0.Add(benchSpan), Parallelism: 2}.WithDefaults()
		if err != nil {
			panic(err)
		}
		return time.Duration(in.Chunk)
	}
	return d
}()
