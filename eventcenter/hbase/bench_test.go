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
// ReplayFetch/{hbase,embedded}
//                           a backfill's reads: a replay of orders and, for
//                           each event, the as-of state of its user, read
//                           by TIDEMARK_BENCH_FETCHERS goroutines (default
//                           64) over batches of 1,024 events, as job.RunAll
//                           evaluates a batch in parallel
//
// TIDEMARK_BENCH_EVENTS scales the data (default 20,000 events).

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
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
	return []struct {
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
	for _, st := range benchStores(b) {
		b.Run(st.name, func(b *testing.B) {
			s := st.open(b)
			load(b, s, profiles)
			load(b, s, orders)
			ctx := context.Background()
			fetch := func(events []eventcenter.Event) {
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
					b.Fatal(*err)
				}
			}
			for b.Loop() {
				n := 0
				batch := make([]eventcenter.Event, 0, 1024)
				for e, err := range s.Replay(ctx, q) {
					if err != nil {
						b.Fatal(err)
					}
					if batch = append(batch, e); len(batch) == cap(batch) {
						fetch(batch)
						batch = batch[:0]
					}
					n++
				}
				fetch(batch)
				if n != total {
					b.Fatalf("replayed %d events, want %d", n, total)
				}
			}
			b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
