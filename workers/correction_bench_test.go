package workers_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/correction"
	"github.com/tidemark-dev/tidemark/internal/correctiontest"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/workers"
	"github.com/tidemark-dev/tidemark/workflows"
)

// BenchmarkCorrectionWorkflow is the correction as a worker runs it: the
// Correction workflow on an in-process Temporal server, one worker (its
// activities' default options), over a table of TIDEMARK_BENCH_ROWS rows
// (default 1,000,000) that the on-disk event center holds in sync, with the
// parallelism `tidemark correction run` gives (workflows.CorrectionInFlight).
// Each iteration also runs, in turn (the order rotating), the same
// comparison without Temporal (correction.Corrector.Source, the worker's
// options) and the baseline, a bare SELECT of the same table by the same
// primary-key chunks, 4 at once. It reports each way's rows/s, the CPU
// this process spent on it per row (the workflow's includes the
// in-process server's; MariaDB's own is not counted), and the workflow's
// share of the bare scan and of the direct run. BENCH_CHUNK_ROWS
// sets the chunk size of all three (default the workflow's, 50 000);
// BENCH_WAY (bare-select, direct or temporal) runs one way alone, for a
// profile.
//
//	go test -c -o /tmp/workers.test ./workers
//	cd workers && /tmp/workers.test -test.run '^$' -test.bench CorrectionWorkflow -test.benchtime 3x
func BenchmarkCorrectionWorkflow(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("TIDEMARK_BENCH_ROWS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	cfg := testenv.MySQL(b)
	db, err := correction.Open(cfg.Addr, cfg.User, cfg.Password)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() }) // after Load's database is dropped
	st := openStore(b, b.TempDir())
	start := time.Now()
	table := correctiontest.Load(b, db, st, cfg.DB+"_corrwfbench", "mysql.benchwf.t", n)
	if err := st.AdvanceWatermark(ctx, table.Source, 0, time.Now().Add(24*time.Hour)); err != nil { // no chunk waits
		b.Fatal(err)
	}
	b.Logf("loaded %d rows in %v; the event center settled in %v", n, time.Since(start).Round(time.Millisecond), testenv.Quiesce(time.Minute).Round(time.Millisecond))
	reg, err := source.Parse(fmt.Appendf(nil, "sources:\n  - {name: 'mysql.benchwf.{table}', kind: mysql, mysql: {database: %s, table: '*'}}\n", table.Database))
	if err != nil {
		b.Fatal(err)
	}
	target := correction.Target{Source: table.Source, Database: table.Database, Table: "t"}
	schema, err := correction.LoadSchema(ctx, db, target)
	if err != nil {
		b.Fatal(err)
	}
	chunkRows, parallelism := workflows.DefaultCorrectionChunkRows, 4 // the workflow's and the worker's defaults
	if s := os.Getenv("BENCH_CHUNK_ROWS"); s != "" {
		if chunkRows, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}

	srv := server(b, false)
	c := dial(b, srv)
	queue := "correction-bench"
	startWorker(b, c, queue, workers.Deps{Store: st, Correction: &activities.Correction{DB: db, Store: st, Sources: reg}})
	direct := correction.New(db, st, correction.Options{ChunkRows: chunkRows})

	type way struct {
		name string
		run  func(i int)
	}
	ways := []way{
		{"bare-select", func(int) {
			chunks, err := correction.Plan(ctx, db, schema, chunkRows)
			if err != nil {
				b.Fatal(err)
			}
			if rows := table.BareScan(b, db, len(chunks), chunkRows, parallelism); rows != n {
				b.Fatalf("read %d rows, want %d", rows, n)
			}
		}},
		{"direct", func(int) {
			r, err := direct.Source(ctx, target, nil, nil)
			if err != nil || r.Compared != n || r.Drifted() != 0 {
				b.Fatalf("compared %d, drift %+v: %v", r.Compared, r.Drift, err)
			}
		}},
		{"temporal", func(i int) {
			t0 := time.Now()
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("corrbench-%d", i), TaskQueue: queue}, workflows.CorrectionWorkflow,
				workflows.CorrectionInput{Sources: []string{table.Source}, ChunkRows: chunkRows, Parallelism: workflows.CorrectionInFlight, NoRebackfill: true})
			if err != nil {
				b.Fatal(err)
			}
			var sum workflows.CorrectionSummary
			if err := run.Get(ctx, &sum); err != nil {
				b.Fatal(err)
			}
			logSlowRun(b, c, run.GetID(), time.Since(t0), 5*time.Second, time.Second)
			if len(sum.Entries) != 1 || sum.Entries[0].Compared != n || sum.Entries[0].Drifted() != 0 {
				b.Fatalf("summary %+v", sum.Entries)
			}
		}},
	}
	ways = onlyWay(b, ways, func(w way) string { return w.name })
	took, cpu := make([]time.Duration, len(ways)), make([]time.Duration, len(ways))
	for i := 0; b.Loop(); i++ { // b.Loop: the table is loaded once
		for k := range ways {
			w := (i + k) % len(ways)
			runtime.GC()
			t0, c0 := time.Now(), testenv.CPUTime()
			ways[w].run(i)
			took[w] += time.Since(t0)
			cpu[w] += testenv.CPUTime() - c0
		}
	}
	for w, way := range ways {
		b.ReportMetric(float64(n*b.N)/took[w].Seconds(), way.name+"-rows/s")
		b.ReportMetric(float64(cpu[w].Nanoseconds())/float64(n*b.N), way.name+"-client-cpu-ns/row")
	}
	if len(ways) < 3 {
		return
	}
	b.ReportMetric(took[0].Seconds()/took[2].Seconds(), "temporal-share-of-bare")
	b.ReportMetric(took[1].Seconds()/took[2].Seconds(), "temporal-share-of-direct")
	b.Logf("%d rounds: bare %v, direct %v, temporal %v; load average %s", b.N,
		took[0]/time.Duration(b.N), took[1]/time.Duration(b.N), took[2]/time.Duration(b.N), testenv.LoadAverage())
}
