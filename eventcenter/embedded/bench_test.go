package embedded

// Benchmarks of the embedded store, each beside the raw Pebble store doing
// the same work in the same run:
//
//	go test ./eventcenter/embedded -run '^$' -bench . -benchtime 3x
//
// Append/store            Store.Append of 1,000-event batches (synced)
// Append/raw-same-bytes   one bare batch of exactly the keys and values
//                         Store.Append writes: the ratio is our overhead
// Append/raw-one-write    one bare Set per event (events key + body): the
//                         gap to it is the cost of the time and index tables
// AsOf/store, AsOf/raw-seek   random as-of reads; p50/p99 reported
// Replay/store, Replay/raw    a time-ordered scan of one source with one
//                             as-of fetch per event from another source

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

var benchBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// benchEvents makes n order events over `keys` keys, one per millisecond,
// with rows shaped like a loan order.
func benchEvents(source string, n, keys int, seed uint64) []eventcenter.Event {
	rng := rand.New(rand.NewPCG(seed, 1))
	evs := make([]eventcenter.Event, n)
	for i := range evs {
		k := rng.IntN(keys)
		evs[i] = eventcenter.Event{
			Source: source, Key: fmt.Sprintf("order-%08d", k),
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

func openBench(b *testing.B) *Store {
	s, err := Open(Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func openRaw(b *testing.B) *pebble.DB {
	cache := pebble.NewCache(256 << 20)
	defer cache.Unref()
	db, err := pebble.Open(b.TempDir(), &pebble.Options{Cache: cache, MemTableSize: 64 << 20, Logger: quietLogger{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

const benchBatch = 1000

func BenchmarkAppend(b *testing.B) {
	const total = 200_000
	evs := benchEvents("mysql.loan.orders", total, 50_000, 1)
	ix := eventcenter.Index{Source: "mysql.loan.orders", Name: "user_id", Column: "user_id"}

	b.Run("store", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			s := openBench(b)
			if err := s.DeclareIndex(context.Background(), ix); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			for batch := range slices.Chunk(evs, benchBatch) {
				if err := s.Append(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
	})

	// The exact keys and values Store.Append writes, prepared outside the timer.
	type kv struct{ k, v []byte }
	var writes [][]kv
	var oneWrite [][]kv
	stored := time.Now()
	for batch := range slices.Chunk(evs, benchBatch) {
		var w, o []kv
		for i := range batch {
			e := batch[i]
			e.StoredAt = stored
			ek := codec.EventKey([]byte{tabEvents}, e.Source, e.Key, e.Time, e.Pos)
			body := codec.EncodeBody(nil, &e)
			w = append(w, kv{ek, body},
				kv{codec.TimeKey([]byte{tabTime}, 1, e.Source, e.Key, e.Time, e.Pos), body})
			v, _ := eventcenter.IndexValue(e.After["user_id"])
			w = append(w, kv{codec.IndexKey([]byte{tabIndex}, e.Source, ix.Name, v, e.Key, e.Time, e.Pos), nil})
			o = append(o, kv{ek, body})
		}
		writes, oneWrite = append(writes, w), append(oneWrite, o)
	}
	raw := func(name string, batches [][]kv) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				db := openRaw(b)
				b.StartTimer()
				for _, batch := range batches {
					wb := db.NewBatch()
					for _, w := range batch {
						wb.Set(w.k, w.v, nil)
					}
					if err := wb.Commit(pebble.Sync); err != nil {
						b.Fatal(err)
					}
					wb.Close()
				}
			}
			b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
	raw("raw-same-bytes", writes)
	raw("raw-one-write", oneWrite)
}

// settle compacts every table of both stores, so reads come from tables
// (not the memtable) and no compaction competes with the measurement.
func settle(b *testing.B, dbs ...*pebble.DB) {
	for _, db := range dbs {
		if err := db.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
			b.Fatal(err)
		}
	}
}

// latencies records per-op durations and reports p50/p99.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	slices.Sort(l)
	b.ReportMetric(float64(l[len(l)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(l[len(l)*99/100].Nanoseconds())/1e3, "p99-µs")
	b.ReportMetric(float64(len(l))/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkAsOf(b *testing.B) {
	const total, keys, reads = 500_000, 50_000, 200_000
	evs := benchEvents("mysql.loan.orders", total, keys, 2)
	s := openBench(b)
	raw := openRaw(b)
	for batch := range slices.Chunk(evs, benchBatch) {
		if err := s.Append(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
		wb := raw.NewBatch()
		for i := range batch {
			e := batch[i]
			wb.Set(codec.EventKey(nil, e.Source, e.Key, e.Time, e.Pos), codec.EncodeBody(nil, &e), nil)
		}
		wb.Commit(pebble.NoSync)
		wb.Close()
	}
	settle(b, s.db, raw)
	rng := rand.New(rand.NewPCG(3, 3))
	queries := make([]eventcenter.AsOf, reads)
	for i := range queries {
		queries[i] = eventcenter.AsOf{Source: "mysql.loan.orders", Key: fmt.Sprintf("order-%08d", rng.IntN(keys)),
			Time: benchBase.Add(time.Duration(rng.IntN(total)) * time.Millisecond)}
	}
	b.Run("store", func(b *testing.B) {
		lat := make(latencies, 0, reads*4)
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
	})
	b.Run("raw-seek", func(b *testing.B) {
		lat := make(latencies, 0, reads*4)
		var seek []byte
		for b.Loop() {
			for _, q := range queries {
				start := time.Now()
				seek = codec.AsOfSeek(seek[:0], q.Source, q.Key, q.Time)
				it, _ := raw.NewIter(&pebble.IterOptions{LowerBound: seek, UpperBound: codec.PrefixEnd(seek[:len(seek)-8])})
				if it.First() {
					_ = it.Value()
				}
				it.Close()
				lat = append(lat, time.Since(start))
			}
		}
		lat.report(b)
	})
}

func BenchmarkReplay(b *testing.B) {
	const total, users = 200_000, 5000
	orders := benchEvents("mysql.loan.orders", total, 50_000, 4)
	profiles := make([]eventcenter.Event, users)
	for u := range profiles {
		profiles[u] = eventcenter.Event{Source: "mysql.loan.users", Key: fmt.Sprintf("user-%06d", u),
			Time: benchBase.Add(-time.Hour), Op: eventcenter.OpInsert,
			After: eventcenter.Row{"id": int64(u), "score": int64(700), "city": "Shanghai"}}
	}
	s := openBench(b)
	raw := openRaw(b)
	for _, evs := range [][]eventcenter.Event{profiles, orders} {
		for batch := range slices.Chunk(evs, benchBatch) {
			if err := s.Append(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			wb := raw.NewBatch()
			for i := range batch {
				e := batch[i]
				wb.Set(codec.EventKey([]byte{tabEvents}, e.Source, e.Key, e.Time, e.Pos), codec.EncodeBody(nil, &e), nil)
				wb.Set(codec.TimeKey([]byte{tabTime}, 1, e.Source, e.Key, e.Time, e.Pos), codec.EncodeBody(nil, &e), nil)
			}
			wb.Commit(pebble.NoSync)
			wb.Close()
		}
	}
	settle(b, s.db, raw)
	q := eventcenter.ReplayQuery{Sources: []string{"mysql.loan.orders"}, From: benchBase, To: benchBase.Add(time.Hour)}
	b.Run("store", func(b *testing.B) {
		ctx := context.Background()
		for b.Loop() {
			n := 0
			for e, err := range s.Replay(ctx, q) {
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.AsOf(ctx, eventcenter.AsOf{Source: "mysql.loan.users", Key: e.After["user_id"].(string), Time: e.Time}); err != nil {
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
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			start, end := codec.TimeBounds(0, q.Sources[0], q.From, q.To)
			it, _ := raw.NewIter(&pebble.IterOptions{LowerBound: append([]byte{tabTime}, start...), UpperBound: append([]byte{tabTime}, end...)})
			var seek []byte
			n := 0
			for it.First(); it.Valid(); it.Next() {
				_, _, t, _, _ := codec.ParseTimeKey(it.Key()[1:])
				var e eventcenter.Event
				codec.DecodeBody(it.Value(), &e)
				seek = codec.AsOfSeek(append(seek[:0], tabEvents), "mysql.loan.users", e.After["user_id"].(string), t)
				pit, _ := raw.NewIter(&pebble.IterOptions{LowerBound: seek, UpperBound: codec.PrefixEnd(seek[:len(seek)-8])})
				if pit.First() {
					codec.DecodeBody(pit.Value(), &e)
				}
				pit.Close()
				n++
			}
			it.Close()
			if n != total {
				b.Fatalf("raw replayed %d", n)
			}
		}
		b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
