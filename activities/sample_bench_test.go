package activities_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
)

// BenchmarkSampleChunk: one training-set chunk of 50,000 sample rows
// (Parquet, row groups of 10,000; 5% unknown keys, times from before the
// first change) over an on-disk store of 20,000 keys × 10 changes, run by
// BackfillChunk in the activity test environment to a Parquet file sink,
// the job fetching the row key's state once: bench/training_test.go's
// chunks without Temporal's server, on one goroutine's worth of chunks, so
// a change to the chunk's path is measured apart from the scheduling.
//
//	go test ./activities -run '^$' -bench SampleChunk -benchtime 10x
func BenchmarkSampleChunk(b *testing.B) {
	const keys, changes, rows, src = 20_000, 10, 50_000, "bench.accounts"
	ctx := context.Background()
	dir := b.TempDir()
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	span := 30 * 24 * time.Hour
	rng := rand.New(rand.NewPCG(1, 2))
	st, err := embedded.Open(embedded.Config{Dir: filepath.Join(dir, "store"), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { st.Close() }()
	var evs []eventcenter.Event
	for k := range keys {
		key := fmt.Sprintf("acct-%06d", k)
		ts := make([]int64, changes)
		for c := range ts {
			ts[c] = rng.Int64N(int64(span / time.Microsecond))
		}
		slices.Sort(ts)
		for c, us := range ts {
			evs = append(evs, eventcenter.Event{Source: src, Key: key, Time: t0.Add(time.Duration(us)*time.Microsecond + time.Duration(c)),
				Pos: eventcenter.Position{Log: 1, Offset: uint64(len(evs))}, Op: eventcenter.OpUpdate,
				After: eventcenter.Row{"balance": float64(rng.IntN(1_000_000)) / 100, "score": rng.Int64N(1000), "branch": "north"}})
		}
	}
	for c := range slices.Chunk(evs, 10_000) {
		if err := st.Append(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.AdvanceWatermark(ctx, src, 0, t0.Add(span+24*time.Hour)); err != nil {
		b.Fatal(err)
	}
	// Reopened, as the training benchmark's, so the reads come from its
	// tables, not from the memtable that took the writes.
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	if st, err = embedded.Open(embedded.Config{Dir: filepath.Join(dir, "store"), NoSync: true}); err != nil {
		b.Fatal(err)
	}
	sample := make([]trainingSample, rows)
	for i := range sample {
		at := t0.Add(-48 * time.Hour).Add(time.Duration(rng.Int64N(int64((span+48*time.Hour)/time.Microsecond))) * time.Microsecond)
		sample[i] = trainingSample{RowID: int64(i), Key: fmt.Sprintf("acct-%06d", rng.IntN(keys+keys/20)), Time: at, Label: int64(rng.IntN(2))}
	}
	pq := filepath.Join(dir, "sample.parquet")
	writeParquetFile(b, pq, sample, parquet.MaxRowsPerRowGroup(10_000))

	j := job.MustNew("training", func(c *job.Context) (eventcenter.Row, error) {
		r, err := c.Get(src, c.Trigger().Key)
		if err != nil {
			return nil, err
		}
		return eventcenter.Row{"balance": r["balance"], "score": r["score"]}, nil
	}, job.Trigger(src), job.Version("1"))
	a := &activities.Backfill{Store: st, Jobs: activities.NewJobs(j)}
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	plan := planOf(b, env, a, activities.PlanInput{Job: "training", Sample: pq, ChunkRows: rows})
	if len(plan.Sample.Offsets) != 1 {
		b.Fatalf("plan of %d chunks, want 1", len(plan.Sample.Offsets))
	}
	out := filepath.Join(dir, "out")
	b.ReportAllocs()
	cpu0 := testenv.CPUTime()
	for i := 0; b.Loop(); i++ {
		v, err := env.ExecuteActivity(a.BackfillChunk, activities.ChunkInput{Backfill: fmt.Sprintf("bf-%d", i), Job: "training", Sample: plan.Sample.Chunk(0),
			Options: activities.Options{Sink: "file://" + out, Format: "parquet"}})
		if err != nil {
			b.Fatal(err)
		}
		var r activities.ChunkResult
		if err := v.Get(&r); err != nil {
			b.Fatal(err)
		}
		if r.Events != rows || r.WithState+r.Missing != rows || r.WithState < rows/2 || len(r.Errors) != 0 {
			b.Fatalf("result %+v", r)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
	b.ReportMetric(float64((testenv.CPUTime()-cpu0).Nanoseconds())/float64(b.N*rows), "cpu-ns/row")
}
