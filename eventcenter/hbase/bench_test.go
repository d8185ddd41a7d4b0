package hbase_test

// Benchmarks of the HBase store, each beside the embedded store doing the
// same work in the same run (so both see the same machine load):
//
//	scripts/services up hbase && eval "$(scripts/services env hbase)"
//	go test ./eventcenter/hbase -run '^$' -bench . -benchtime 1x
//
// Append/{hbase,hbase-bare-puts,embedded}
//                           Store.Append of 1,000-event batches, one index;
//                           hbase-bare-puts writes exactly the cells Append
//                           writes, batch by batch, with bare gohbase puts
//                           at the same concurrency (Config.MaxInflight) and
//                           client batching: the floor of Append
// AsOf/{hbase,embedded}     random as-of reads, one at a time; p50/p99;
//                           for hbase also raw-get-p50/p99: bare gohbase
//                           gets of events rows, the floor of one round trip
// Replay/{hbase,embedded}   a time-ordered replay of one source
// ReplayFetch/{hbase,embedded}[-job,-job-serial,-batch]
//                           a backfill's reads: a replay of orders and, for
//                           each event, the as-of state of its user. -job:
//                           through the backfill's path, job.RunAll with a
//                           job whose logic fetches the user (on HBase the
//                           runs' reads are gathered into AsOfBatch
//                           batches); -job-serial: the same runs one
//                           batch at a time (job.EvaluateAll), as RunAll
//                           did before it overlapped batches; no suffix:
//                           one AsOf per event, by
//                           TIDEMARK_BENCH_FETCHERS goroutines (default 64)
//                           over batches of 1,024 events; -batch: one
//                           eventcenter.AsOfAll per batch of 1,024
//
// TIDEMARK_BENCH_EVENTS scales the data (default 20,000 events).

import (
	"context"
	"fmt"
	"iter"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tsuna/gohbase"
	"github.com/tsuna/gohbase/hrpc"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/eventcenter/hbase"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
)

var benchBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const benchSource = "mysql.loan.orders"

func benchSize() int {
	if n, err := strconv.Atoi(os.Getenv("TIDEMARK_BENCH_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 20_000
}

// benchEvents makes n order events over keys keys, one per millisecond,
// shaped like the embedded store's benchmark rows.
func benchEvents(n, keys int, seed uint64) []eventcenter.Event {
	rng := rand.New(rand.NewPCG(seed, 1))
	evs := make([]eventcenter.Event, n)
	for i := range evs {
		k := rng.IntN(keys)
		evs[i] = eventcenter.Event{
			Source: benchSource, Key: fmt.Sprintf("order-%08d", k),
			Time: benchBase.Add(time.Duration(i) * time.Millisecond),
			Pos:  eventcenter.Position{Log: 1, Offset: uint64(i)},
			Op:   eventcenter.OpUpdate,
			After: eventcenter.Row{
				"id": int64(k), "user_id": fmt.Sprintf("user-%06d", k%5000),
				"amount": eventcenter.Decimal("1250.00"), "status": "open",
				"term": int64(12), "rate": 0.125, "created_at": benchBase,
			},
		}
	}
	return evs
}

// stores returns the two stores of a benchmark, each fresh.
func benchStores(b *testing.B) []struct {
	name string
	open func(b *testing.B) eventcenter.Store
} {
	stores := []struct {
		name string
		open func(b *testing.B) eventcenter.Store
	}{
		{"hbase", func(b *testing.B) eventcenter.Store {
			s := open(b, testConfig(b))
			b.Cleanup(func() { s.Close() })
			return s
		}},
		{"embedded", func(b *testing.B) eventcenter.Store {
			s, err := embedded.Open(embedded.Config{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
	}
	// TIDEMARK_BENCH_STORES=hbase (or embedded) loads and runs one store
	// only: a profile then holds no other store's load.
	if only := os.Getenv("TIDEMARK_BENCH_STORES"); only != "" {
		stores = slices.DeleteFunc(stores, func(s struct {
			name string
			open func(b *testing.B) eventcenter.Store
		}) bool {
			return !slices.Contains(strings.Split(only, ","), s.name)
		})
	}
	return stores
}

func load(b *testing.B, s eventcenter.Store, evs []eventcenter.Event) {
	b.Helper()
	for batch := range slices.Chunk(evs, 1000) {
		if err := s.Append(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	total := benchSize()
	evs := benchEvents(total, total/4, 1)
	ix := eventcenter.Index{Source: benchSource, Name: "user_id", Column: "user_id"}
	for _, st := range benchStores(b) {
		b.Run(st.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				s := st.open(b)
				if err := s.DeclareIndex(context.Background(), ix); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				load(b, s, evs)
			}
			b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
		})
		if st.name != "hbase" {
			continue
		}
		b.Run("hbase-bare-puts", func(b *testing.B) {
			c := gohbase.NewClient(testenv.HBaseZK(b),
				gohbase.FlushInterval(hbase.DefaultFlushInterval), gohbase.RpcQueueSize(hbase.DefaultRPCQueueSize))
			defer c.Close()
			cells := 0
			for b.Loop() {
				b.StopTimer()
				s := st.open(b).(*hbase.Store)
				if err := s.DeclareIndex(context.Background(), ix); err != nil {
					b.Fatal(err)
				}
				var batches [][]hbase.Cell
				for batch := range slices.Chunk(evs, 1000) {
					bc, err := s.AppendCells(context.Background(), batch, time.Now())
					if err != nil {
						b.Fatal(err)
					}
					batches = append(batches, bc)
					cells += len(bc)
				}
				b.StartTimer()
				for _, bc := range batches {
					barePuts(b, c, bc, hbase.DefaultMaxInflight)
				}
			}
			b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(cells)/float64(total*b.N), "cells/event")
		})
	}
}

// barePuts writes cells with one gohbase put each, at most inflight at a
// time, and waits for them all.
func barePuts(b *testing.B, c gohbase.Client, cells []hbase.Cell, inflight int) {
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for _, cell := range cells {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			p, err := hrpc.NewPut(context.Background(), cell.Table, cell.Row,
				map[string]map[string][]byte{"d": {cell.Qualifier: cell.Value}})
			if err == nil {
				_, err = c.Put(p)
			}
			if err != nil {
				failed.Store(&err)
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
}

type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	slices.Sort(l)
	b.ReportMetric(float64(l[len(l)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(l[len(l)*99/100].Nanoseconds())/1e3, "p99-µs")
	b.ReportMetric(float64(len(l))/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkAsOf(b *testing.B) {
	total := benchSize()
	keys := total / 10
	evs := benchEvents(total, keys, 2)
	rng := rand.New(rand.NewPCG(3, 3))
	queries := make([]eventcenter.AsOf, 5000)
	rows := make([][]byte, len(queries)) // events rows, for the raw gets
	for i := range queries {
		queries[i] = eventcenter.AsOf{Source: benchSource, Key: fmt.Sprintf("order-%08d", rng.IntN(keys)),
			Time: benchBase.Add(time.Duration(rng.IntN(total)) * time.Millisecond)}
		e := evs[rng.IntN(len(evs))]
		rows[i] = codec.EventKey(nil, e.Source, e.Key, e.Time, e.Pos)
	}
	for _, st := range benchStores(b) {
		b.Run(st.name, func(b *testing.B) {
			s := st.open(b)
			load(b, s, evs)
			for _, q := range queries[:100] { // warm the client's region cache
				s.AsOf(context.Background(), q)
			}
			lat := make(latencies, 0, len(queries))
			for b.Loop() {
				for _, q := range queries {
					start := time.Now()
					_, err := s.AsOf(context.Background(), q)
					lat = append(lat, time.Since(start))
					if err != nil && err != eventcenter.ErrNotFound {
						b.Fatal(err)
					}
				}
			}
			lat.report(b)
			if hs, ok := s.(*hbase.Store); ok {
				rawGets(b, hs.Namespace()+":events", rows)
			}
		})
	}
}

// rawGets reports the latency of bare gohbase gets of events rows, one at
// a time, beside the as-of reads: the floor of one HBase round trip here.
func rawGets(b *testing.B, table string, rows [][]byte) {
	c := gohbase.NewClient(testenv.HBaseZK(b))
	defer c.Close()
	get := func(row []byte) {
		g, err := hrpc.NewGet(context.Background(), []byte(table), row, hrpc.SkipBatch())
		if err != nil {
			b.Fatal(err)
		}
		if r, err := c.Get(g); err != nil || len(r.Cells) == 0 {
			b.Fatalf("get: %v, %v", r, err)
		}
	}
	for _, row := range rows[:100] {
		get(row)
	}
	lat := make(latencies, 0, len(rows))
	for _, row := range rows {
		start := time.Now()
		get(row)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "raw-get-p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "raw-get-p99-µs")
}

func BenchmarkReplay(b *testing.B) {
	total := benchSize()
	evs := benchEvents(total, total/4, 4)
	q := eventcenter.ReplayQuery{Sources: []string{benchSource}, From: benchBase, To: benchBase.Add(24 * time.Hour)}
	for _, st := range benchStores(b) {
		b.Run(st.name, func(b *testing.B) {
			s := st.open(b)
			load(b, s, evs)
			for b.Loop() {
				n := 0
				for _, err := range s.Replay(context.Background(), q) {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n != total {
					b.Fatalf("replayed %d events, want %d", n, total)
				}
			}
			b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func BenchmarkReplayFetch(b *testing.B) {
	total := benchSize()
	const users = 5000
	orders := benchEvents(total, total/4, 5)
	profiles := make([]eventcenter.Event, users)
	for u := range profiles {
		profiles[u] = eventcenter.Event{Source: "mysql.loan.users", Key: fmt.Sprintf("user-%06d", u),
			Time: benchBase.Add(-time.Hour), Op: eventcenter.OpInsert,
			After: eventcenter.Row{"id": int64(u), "score": int64(700), "city": "Shanghai"}}
	}
	fetchers := 64
	if n, err := strconv.Atoi(os.Getenv("TIDEMARK_BENCH_FETCHERS")); err == nil && n > 0 {
		fetchers = n
	}
	q := eventcenter.ReplayQuery{Sources: []string{benchSource}, From: benchBase, To: benchBase.Add(24 * time.Hour)}
	// per-read: one AsOf per event on fetchers goroutines; batch: one
	// eventcenter.AsOfAll of the batch's reads (AsOfBatch).
	perRead := func(ctx context.Context, s eventcenter.Store, events []eventcenter.Event) error {
		var next atomic.Int64
		var wg sync.WaitGroup
		var failed atomic.Pointer[error]
		for range min(fetchers, len(events)) {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < int64(len(events)); i = next.Add(1) - 1 {
					e := &events[i]
					_, err := s.AsOf(ctx, eventcenter.AsOf{Source: "mysql.loan.users", Key: e.After["user_id"].(string), Time: e.Time})
					if err != nil {
						failed.Store(&err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err := failed.Load(); err != nil {
			return *err
		}
		return nil
	}
	var qs []eventcenter.AsOf
	var out []eventcenter.AsOfResult
	batched := func(ctx context.Context, s eventcenter.Store, events []eventcenter.Event) error {
		qs = qs[:0]
		for i := range events {
			qs = append(qs, eventcenter.AsOf{Source: "mysql.loan.users", Key: events[i].After["user_id"].(string), Time: events[i].Time})
		}
		out = slices.Grow(out[:0], len(qs))[:len(qs)]
		if err := eventcenter.AsOfAll(ctx, s, qs, out); err != nil {
			return err
		}
		for i := range qs {
			if out[i].Err != nil {
				return out[i].Err
			}
		}
		return nil
	}
	// job: the backfill's path, job.RunAll over the replay with a job
	// whose logic fetches the order's user (no outputs).
	fetchUser := job.MustNew("bench.fetch", func(c *job.Context) (eventcenter.Row, error) {
		u, err := c.Get("mysql.loan.users", c.Trigger().After["user_id"].(string))
		if err != nil {
			return nil, err
		}
		return eventcenter.Row{"score": u["score"]}, nil
	}, job.Trigger(benchSource))
	for _, st := range benchStores(b) {
		s := st.open(b)
		load(b, s, profiles)
		load(b, s, orders)
		// One untimed pass first, so that the first timed way does not
		// alone pay for what follows the load (cold caches, flushes).
		if _, err := job.RunAll(context.Background(), fetchUser, &job.Env{Store: s, Mode: job.Backfill, Outputs: []job.Output{}}, s.Replay(context.Background(), q), job.RunOptions{}); err != nil {
			b.Fatal(err)
		}
		b.Run(st.name+"-job", func(b *testing.B) {
			ctx := context.Background()
			env := &job.Env{Store: s, Mode: job.Backfill, Outputs: []job.Output{}}
			cpu0 := testenv.CPUTime()
			for b.Loop() {
				sum, err := job.RunAll(ctx, fetchUser, env, s.Replay(ctx, q), job.RunOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if sum.Events != total || sum.Counts[job.OK] != total {
					b.Fatalf("summary %+v, failures %v", sum, sum.Failures)
				}
			}
			b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
			// This process's CPU per event (HBase's own is not in it): on
			// two cores shared with the region server, what bounds the rate.
			b.ReportMetric(float64((testenv.CPUTime()-cpu0).Microseconds())/float64(total*b.N), "client-cpu-µs/event")
		})
		b.Run(st.name+"-job-serial", func(b *testing.B) {
			ctx := context.Background()
			env := &job.Env{Store: s, Mode: job.Backfill, Outputs: []job.Output{}}
			for b.Loop() {
				if n := evaluateSerially(b, fetchUser, env, s.Replay(ctx, q)); n != total {
					b.Fatalf("%d runs OK, want %d", n, total)
				}
			}
			b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
		})
		for _, way := range []struct {
			name  string
			fetch func(context.Context, eventcenter.Store, []eventcenter.Event) error
		}{{"", perRead}, {"-batch", batched}} {
			b.Run(st.name+way.name, func(b *testing.B) {
				ctx := context.Background()
				for b.Loop() {
					n := 0
					batch := make([]eventcenter.Event, 0, 1024)
					for e, err := range s.Replay(ctx, q) {
						if err != nil {
							b.Fatal(err)
						}
						if batch = append(batch, e); len(batch) == cap(batch) {
							if err := way.fetch(ctx, s, batch); err != nil {
								b.Fatal(err)
							}
							batch = batch[:0]
						}
						n++
					}
					if err := way.fetch(ctx, s, batch); err != nil {
						b.Fatal(err)
					}
					if n != total {
						b.Fatalf("replayed %d events, want %d", n, total)
					}
				}
				b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// evaluateSerially runs j over events as RunAll did before it overlapped
// batches: the replay is read one batch ahead, and each batch is
// evaluated (job.EvaluateAll, its reads gathered) only once the previous
// one is done. It returns how many runs were OK.
func evaluateSerially(b *testing.B, j *job.Job, env *job.Env, events iter.Seq2[eventcenter.Event, error]) int {
	width := 1024
	if r, ok := env.Store.(eventcenter.RemoteBatchReader); ok {
		width = max(width, r.GatherWidth())
	}
	batches := make(chan []eventcenter.Event, 1)
	var failed error
	go func() {
		defer close(batches)
		batch := make([]eventcenter.Event, 0, width)
		for e, err := range events {
			if err != nil {
				failed = err
				return
			}
			if batch = append(batch, e); len(batch) == width {
				batches <- batch
				batch = make([]eventcenter.Event, 0, width)
			}
		}
		batches <- batch
	}()
	ok := 0
	results := make([]job.Result, width)
	for batch := range batches {
		job.EvaluateAll(context.Background(), j, env, batch, results, 0)
		for _, r := range results[:len(batch)] {
			if r.Outcome == job.OK {
				ok++
			}
		}
	}
	if failed != nil {
		b.Fatal(failed)
	}
	return ok
}
