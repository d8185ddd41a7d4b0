package bench_test

// The training-set benchmark (issue 12, item 8): a sample-table backfill to
// Parquet through Temporal beside DuckDB's ASOF JOIN of the same two
// Parquet files, in one run, with the rows checked identical:
//
//	go test ./bench -run '^$' -bench Training -benchtime 1x
//	BENCH_ENTITIES=2000 BENCH_SAMPLE_ROWS=20000 go test ./bench -run '^$' -bench Training -benchtime 1x
//
// Fixture: BENCH_ENTITIES entities (default 20,000) × 10 changes each in an
// on-disk embedded store (reopened, so reads come from its tables), the
// same events as a Parquet file; a sample table of BENCH_SAMPLE_ROWS rows
// (default 200,000) as Parquet (row_id, key, time, label; row groups of
// 10,000 rows), whose keys are 5% unknown and whose times start before the
// first change, so some rows have no state. The job fetches the row key's
// state once (one fetch per row) and outputs two of its columns. The
// sample's rows come in random order; BENCH_SAMPLE_ORDER=store sorts them in
// the store's key order first (what a table-level sort would join; see
// bench/README.md), BENCH_SAMPLE_ORDER=store:N each block of N rows.
//
// tidemark: the Backfill workflow on an in-process Temporal server, one
// worker, parallelism 2 (BENCH_PARALLELISM), the workflow's default
// sample chunks (the table over 4 × parallelism: 8 chunks of 2 or 3 row
// groups; or BENCH_CHUNK_ROWS), segments of the default size (BENCH_SEGMENT), a
// Parquet file sink;
// timed from the start of the workflow to its result (plan, chunks,
// manifest); the garbage collector set as a worker process sets it
// (gcpolicy.Apply: GOGC 400 unless GOGC is set), for the in-process
// Temporal server too. BENCH_TRACE=1 prints each timed run's workflow
// history with its events' times from the start (untimed), which shows
// what of a run is outside its chunks. DuckDB (python3 -m pip
// install duckdb): the ASOF LEFT JOIN materialised as a table, timed alone
// three times after each tidemark run, the median counted (one run's time
// moves by up to 2x here); bench/testdata/asof.py, which also compares its
// rows with tidemark's objects. Needs python3 with duckdb; skipped without.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/internal/devtemporal"
	"github.com/tidemark-dev/tidemark/internal/gcpolicy"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/workers"
	"github.com/tidemark-dev/tidemark/workflows"
)

const trainingSource = "bench.accounts"

// trainingEvent is a change as the events Parquet file holds it.
type trainingEvent struct {
	Key     string    `parquet:"key"`
	Time    time.Time `parquet:"time,timestamp(microsecond)"`
	Balance float64   `parquet:"balance"`
	Score   int64     `parquet:"score"`
}

// trainingRow is a sample row.
type trainingRow struct {
	RowID int64     `parquet:"row_id"`
	Key   string    `parquet:"key"`
	Time  time.Time `parquet:"time,timestamp(microsecond)"`
	Label int64     `parquet:"label"`
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// sortByStoreKey sorts rows in the order of their as-of reads' keys in the
// event center (codec.AsOfSeek: salt, source, key, newest first): the
// sample a table-level sort would join (orderSample).
func sortByStoreKey(rows []trainingRow) {
	type keyed struct {
		seek []byte
		row  trainingRow
	}
	ks := make([]keyed, len(rows))
	for i, r := range rows {
		ks[i] = keyed{codec.AsOfSeek(nil, trainingSource, r.Key, r.Time), r}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int { return bytes.Compare(a.seek, b.seek) })
	for i := range ks {
		rows[i] = ks[i].row
	}
}

// orderSample orders the sample as BENCH_SAMPLE_ORDER says: "" keeps the
// random order; "store" sorts the rows in the store's key order
// (sortByStoreKey); "store:N" sorts each block of N rows so (what a chunk
// of N rows sorted by the runtime would join); the rows are numbered
// again in their new order.
func orderSample(rows []trainingRow, order string) error {
	block := len(rows)
	switch n, err := strconv.Atoi(strings.TrimPrefix(order, "store:")); {
	case order == "":
		return nil
	case order == "store":
	case strings.HasPrefix(order, "store:") && err == nil && n > 0:
		block = n
	default:
		return fmt.Errorf("BENCH_SAMPLE_ORDER %q: want \"\", \"store\" or \"store:<rows>\"", order)
	}
	for rs := range slices.Chunk(rows, max(block, 1)) {
		sortByStoreKey(rs)
	}
	for i := range rows {
		rows[i].RowID = int64(i)
	}
	return nil
}

func writeParquet[T any](path string, rows []T, opts ...parquet.WriterOption) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := parquet.NewGenericWriter[T](f, opts...)
	if _, err := w.Write(rows); err != nil {
		f.Close()
		return err
	}
	if err := w.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// trainingFixture writes the store, the events file and the sample table
// under dir.
func trainingFixture(b *testing.B, dir string, entities, changes, rows int) (storeDir, eventsPath, samplePath string) {
	b.Helper()
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	span := 30 * 24 * time.Hour
	rng := rand.New(rand.NewPCG(1, 2))
	storeDir = filepath.Join(dir, "store")
	st, err := embedded.Open(embedded.Config{Dir: storeDir, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	var evs []eventcenter.Event
	var recs []trainingEvent
	ctx := context.Background()
	for i := range entities {
		key := fmt.Sprintf("acct-%06d", i)
		ts := make([]int64, 0, changes)
		for len(ts) < changes {
			if t := rng.Int64N(int64(span / time.Microsecond)); !slices.Contains(ts, t) {
				ts = append(ts, t)
			}
		}
		slices.Sort(ts)
		for c, us := range ts {
			at := t0.Add(time.Duration(us) * time.Microsecond)
			bal, score := float64(rng.IntN(10_000_00))/100, rng.Int64N(1000)
			op := eventcenter.OpUpdate
			if c == 0 {
				op = eventcenter.OpInsert
			}
			evs = append(evs, eventcenter.Event{Source: trainingSource, Key: key, Time: at, Pos: eventcenter.Position{Log: 1, Offset: uint64(len(recs))},
				Op: op, After: eventcenter.Row{"balance": bal, "score": score, "branch": "north"}})
			recs = append(recs, trainingEvent{Key: key, Time: at, Balance: bal, Score: score})
			if len(evs) == 10_000 {
				if err := st.Append(ctx, evs); err != nil {
					b.Fatal(err)
				}
				evs = evs[:0]
			}
		}
	}
	if err := st.Append(ctx, evs); err != nil {
		b.Fatal(err)
	}
	if err := st.AdvanceWatermark(ctx, trainingSource, 0, t0.Add(span+24*time.Hour)); err != nil {
		b.Fatal(err)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	eventsPath = filepath.Join(dir, "events.parquet")
	if err := writeParquet(eventsPath, recs); err != nil {
		b.Fatal(err)
	}
	sample := make([]trainingRow, rows)
	for i := range sample {
		// 5% of the keys are unknown; times start two days before the
		// first change.
		k := rng.IntN(entities + entities/20)
		at := t0.Add(-48 * time.Hour).Add(time.Duration(rng.Int64N(int64((span+48*time.Hour)/time.Microsecond))) * time.Microsecond)
		sample[i] = trainingRow{RowID: int64(i), Key: fmt.Sprintf("acct-%06d", k), Time: at, Label: int64(rng.IntN(2))}
	}
	if err := orderSample(sample, os.Getenv("BENCH_SAMPLE_ORDER")); err != nil {
		b.Fatal(err)
	}
	samplePath = filepath.Join(dir, "sample.parquet")
	if err := writeParquet(samplePath, sample, parquet.MaxRowsPerRowGroup(10_000)); err != nil {
		b.Fatal(err)
	}
	return storeDir, eventsPath, samplePath
}

// trainingJob fetches the row key's state once and outputs two columns.
func trainingJob() *job.Job {
	return job.MustNew("training", func(c *job.Context) (eventcenter.Row, error) {
		r, err := c.Get(trainingSource, c.Trigger().Key)
		if err != nil {
			return nil, err
		}
		return eventcenter.Row{"balance": r["balance"], "score": r["score"]}, nil
	}, job.Trigger(trainingSource), job.Version("1"))
}

type asofResult struct {
	Seconds      float64   `json:"seconds"` // the median of Runs
	Runs         []float64 `json:"runs"`
	DuckDBRows   int       `json:"duckdb_rows"`
	TidemarkRows int       `json:"tidemark_rows"`
	Mismatches   int       `json:"mismatches"`
	Nulls        int       `json:"nulls"`
	OutOfOrder   int       `json:"out_of_order"`
}

func BenchmarkTraining(b *testing.B) {
	if err := exec.Command("python3", "-c", "import duckdb").Run(); err != nil {
		b.Skip("needs python3 with duckdb (python3 -m pip install duckdb)")
	}
	// The collector as a worker process sets it (tidemark worker).
	gc, undo := gcpolicy.Apply()
	defer undo()
	entities, rows := envInt("BENCH_ENTITIES", 20_000), envInt("BENCH_SAMPLE_ROWS", 200_000)
	dir := b.TempDir()
	storeDir, eventsPath, samplePath := trainingFixture(b, dir, entities, 10, rows)
	st, err := embedded.Open(embedded.Config{Dir: storeDir})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()

	ctx := context.Background()
	srv, err := devtemporal.Start(ctx, devtemporal.Config{Addr: "127.0.0.1:0", UIAddr: "off", SearchAttributes: workers.SearchAttributes(), LogLevel: "error"})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	quiet := sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	c, err := srv.NewClient(ctx, client.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const queue = "bench-training"
	w := workers.New(c, queue, workers.Deps{Store: st, Jobs: []*job.Job{trainingJob()}}, worker.Options{})
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	defer w.Stop()

	out := filepath.Join(dir, "out")
	backfill := func(id string) workflows.Summary {
		in := workflows.BackfillInput{Job: "training", Sample: samplePath, ChunkRows: envInt("BENCH_CHUNK_ROWS", 0), Parallelism: envInt("BENCH_PARALLELISM", 2)}
		in.SegmentEvents = envInt("BENCH_SEGMENT", 0)
		in.Sink, in.Format = "file://"+out, "parquet"
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, workflows.BackfillWorkflow, in)
		if err != nil {
			b.Fatal(err)
		}
		var sum workflows.Summary
		if err := run.Get(ctx, &sum); err != nil {
			b.Fatal(err)
		}
		return sum
	}
	// A warm-up run, untimed (as DuckDB's file reads): the store's
	// compactions after its reopening, the worker's first polls.
	backfill("training-warmup")
	var tidemark, duck, cpu time.Duration
	var duckRuns []float64 // seconds, every DuckDB join timed
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("training-%d", i)
		start, cpu0 := time.Now(), testenv.CPUTime()
		sum := backfill(id)
		tidemark += time.Since(start)
		cpu += testenv.CPUTime() - cpu0
		if sum.Events != rows || sum.WithState+sum.Missing != rows || sum.Errors != 0 {
			b.Fatalf("summary %+v", sum)
		}

		b.StopTimer()
		if os.Getenv("BENCH_TRACE") != "" {
			traceHistory(b, c, id, start)
		}
		objs, err := filepath.Glob(filepath.Join(out, id, "training", "chunk-*.parquet"))
		if err != nil {
			b.Fatal(err)
		}
		slices.Sort(objs)
		listing := filepath.Join(dir, "objects.txt")
		if err := os.WriteFile(listing, []byte(strings.Join(objs, "\n")), 0o644); err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command("python3", "testdata/asof.py", samplePath, eventsPath, listing)
		cmd.Stderr = os.Stderr
		got, err := cmd.Output()
		if err != nil {
			b.Fatal(err)
		}
		var r asofResult
		if err := json.Unmarshal(got, &r); err != nil {
			b.Fatalf("%s: %v", got, err)
		}
		if r.DuckDBRows != rows || r.TidemarkRows != rows || r.Mismatches != 0 || r.OutOfOrder != 0 || r.Nulls != sum.Missing {
			b.Fatalf("rows differ: %+v; tidemark summary %+v", r, sum)
		}
		duck += time.Duration(r.Seconds * float64(time.Second))
		duckRuns = append(duckRuns, r.Runs...)
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(rows * b.N)
	tmRate, duckRate := n/tidemark.Seconds(), n/duck.Seconds()
	b.ReportMetric(tmRate, "tidemark-rows/s")
	b.ReportMetric(duckRate, "duckdb-rows/s")
	b.ReportMetric(tmRate/duckRate, "ratio")
	b.ReportMetric(float64(cpu.Microseconds())/n, "tidemark-cpu-µs/row")
	b.Logf("%d sample rows over %d entities × 10 changes, GC %+v: tidemark %v (%.0f rows/s; %.1f cpu-µs/row, %.2f cores busy), DuckDB ASOF JOIN %v (%.0f rows/s; its runs %.0f–%.0f ms), ratio %.3f; load average %s",
		rows, entities, gc, tidemark/time.Duration(b.N), tmRate, float64(cpu.Microseconds())/n, cpu.Seconds()/tidemark.Seconds(),
		duck/time.Duration(b.N), duckRate, slices.Min(duckRuns)*1000, slices.Max(duckRuns)*1000, tmRate/duckRate, testenv.LoadAverage())
}

// traceHistory prints the history of the workflow id to stderr, each
// event's time as milliseconds since start.
func traceHistory(b *testing.B, c client.Client, id string, start time.Time) {
	it := c.GetWorkflowHistory(context.Background(), id, "", false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "%s %8.1f ms %v\n", id, float64(ev.GetEventTime().AsTime().Sub(start).Microseconds())/1000, ev.GetEventType())
	}
}
