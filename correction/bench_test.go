package correction_test

import (
	"context"
	"os"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/correction"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/internal/correctiontest"
	"github.com/tidemark-dev/tidemark/internal/testenv"
)

// BenchmarkCorrection compares a table of TIDEMARK_BENCH_ROWS rows
// (default 1,000,000) whose every row the embedded event center holds, in
// sync, and beside it reads the same table by the same primary-key chunks
// with a bare SELECT (no snapshot, no typing, no event center), with the
// same parallelism. Both report rows/s; the correction's share of the bare
// scan is the figure to watch (target: at least 100k rows/s and 50%).
//
//	go test -run '^$' -bench Correction -benchtime 1x ./correction/
//
// BENCH_CPUPROFILE=file writes a CPU profile of the correction alone (not
// of the load, nor of the bare scan). BENCH_LAG=2s has the watermark trail
// the clock as the CDC's does (each chunk then waits for it), and
// BENCH_CHUNK_ROWS sets the chunk size (default correction.DefaultChunkRows).
func BenchmarkCorrection(b *testing.B) {
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
	st, err := embedded.Open(embedded.Config{Dir: b.TempDir(), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() }) // after TrailWatermark stops
	start := time.Now()
	table := correctiontest.Load(b, db, st, cfg.DB+"_corrbench", "mysql.bench.t", n)
	src, dbName := table.Source, table.Database
	// The watermark is past every chunk's point (no chunk waits), or with
	// BENCH_LAG trails the clock by that much, moved every second, as the
	// CDC moves it on an idle server (its default lateness: 2s).
	if lag := os.Getenv("BENCH_LAG"); lag != "" {
		d, err := time.ParseDuration(lag)
		if err != nil {
			b.Fatal(err)
		}
		testenv.TrailWatermark(b, st, src, d, time.Second)
	} else if err := st.AdvanceWatermark(ctx, src, 0, time.Now().Add(24*time.Hour)); err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded %d rows into MySQL and the event center in %v", n, time.Since(start).Round(time.Millisecond))
	// The store's compactions of the load would otherwise run during the
	// correction (and not during the bare scan): a nightly correction reads
	// a store written over the day before.
	b.Logf("the event center settled in %v; load average %s", testenv.Quiesce(time.Minute).Round(time.Millisecond), testenv.LoadAverage())
	target := correction.Target{Source: src, Database: dbName, Table: "t"}
	opts := correction.Options{ChunkRows: correction.DefaultChunkRows, Parallelism: 4}
	if s := os.Getenv("BENCH_CHUNK_ROWS"); s != "" {
		var err error
		if opts.ChunkRows, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	schema, err := correction.LoadSchema(ctx, db, target)
	if err != nil {
		b.Fatal(err)
	}

	b.Run("bare-select", func(b *testing.B) {
		for b.Loop() {
			chunks, err := correction.Plan(ctx, db, schema, opts.ChunkRows)
			if err != nil {
				b.Fatal(err)
			}
			if rows := table.BareScan(b, db, len(chunks), opts.ChunkRows, opts.Parallelism); rows != n {
				b.Fatalf("read %d rows, want %d", rows, n)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("correction", func(b *testing.B) {
		c := correction.New(db, st, opts)
		if path := os.Getenv("BENCH_CPUPROFILE"); path != "" { // the correction only, not the load
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				b.Fatal(err)
			}
			defer pprof.StopCPUProfile()
		}
		cpu0 := testenv.CPUTime()
		for b.Loop() {
			t0 := time.Now()
			r, err := c.Source(ctx, target, nil, func(done, total int, r correction.ChunkResult) {
				if done == 1 || done == total {
					b.Logf("chunk %d/%d done after %v", done, total, time.Since(t0).Round(time.Millisecond))
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			if r.Compared != n || r.Drifted() != 0 {
				b.Fatalf("compared %d, drift %+v", r.Compared, r.Drift)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		// This process's CPU (not MariaDB's): steadier than the rate on a
		// machine whose two cores both sides share.
		b.ReportMetric(float64((testenv.CPUTime()-cpu0).Nanoseconds())/float64(n*b.N), "client-cpu-ns/row")
	})
}
