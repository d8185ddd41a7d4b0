package embedded

// Benchmarks of the embedded store, each beside a raw Pebble store doing the
// same work in the same run: opened with the store's options (first-wins
// merge operator, bloom filters, cache, memtable), writing the same keys and
// values, encoding and decoding them inside the timer with the same codec.
// The raw side leaves out only what the store adds: validation, the closed
// and context checks, the index lock, the known-at filter.
//
//	go test ./eventcenter/embedded -run '^$' -bench . -benchtime 3x
//
// Append/store            Store.Append of 1,000-event batches (synced)
// Append/raw-same-work    one synced batch per 1,000 events of the same
//                         writes (events and time-table merges, index
//                         rows), encoded in the timer: the ratio is our
//                         overhead
// Append/raw-one-write    one merge per event (events row only), encoded in
//                         the timer: the gap to it is the cost of the time
//                         and index tables
// Append/raw-preencoded   raw-same-work with its batches built outside the
//                         timer: the gap between the two is our encoding
// AsOf/store, AsOf/raw-seek   random as-of reads, the raw side seeking and
//                             decoding the row as the store does; p50/p99
// Replay/store, Replay/raw    a time-ordered scan of one source with one
//                             as-of fetch per event from another source,
//                             both decoding every row

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

// openRaw opens a bare Pebble database with the options Open gives the
// store.
func openRaw(b *testing.B) *pebble.DB {
	var cfg Config
	cfg.setDefaults()
	cache := pebble.NewCache(cfg.CacheBytes)
	defer cache.Unref()
	db, err := pebble.Open(b.TempDir(), pebbleOptions(cache))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// rawBatch builds, in a new batch of db, what Store.Append writes for evs,
// encoded here: for each event a first-wins merge of its stamped body under
// its events key and, with timeTable, under its time key, and with ix an
// index row.
func rawBatch(b *testing.B, db *pebble.DB, evs []eventcenter.Event, timeTable bool, ix *eventcenter.Index) *pebble.Batch {
	wb := db.NewBatch()
	stored := time.Now()
	var key, val []byte
	for i := range evs {
		e := &evs[i]
		key = codec.EventKey(append(key[:0], tabEvents), e.Source, e.Key, e.Time, e.Pos)
		stamped := eventcenter.Event{Op: e.Op, After: e.After, Before: e.Before, StoredAt: stored}
		val = codec.EncodeBody(val[:0], &stamped)
		if err := wb.Merge(key, val, nil); err != nil {
			b.Fatal(err)
		}
		if timeTable {
			key = codec.TimeKey(append(key[:0], tabTime), 1, e.Source, e.Key, e.Time, e.Pos)
			if err := wb.Merge(key, val, nil); err != nil {
				b.Fatal(err)
			}
		}
		if ix != nil {
			if v, ok := eventcenter.IndexValue(e.After[ix.Column]); ok {
				key = codec.IndexKey(append(key[:0], tabIndex), e.Source, ix.Name, v, e.Key, e.Time, e.Pos)
				if err := wb.Set(key, nil, nil); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	return wb
}

// commit commits and closes a batch.
func commit(b *testing.B, wb *pebble.Batch, wo *pebble.WriteOptions) {
	if err := wb.Commit(wo); err != nil {
		b.Fatal(err)
	}
	if err := wb.Close(); err != nil {
		b.Fatal(err)
	}
}

// rawWrite builds and commits a rawBatch.
func rawWrite(b *testing.B, db *pebble.DB, evs []eventcenter.Event, timeTable bool, ix *eventcenter.Index, wo *pebble.WriteOptions) {
	commit(b, rawBatch(b, db, evs, timeTable, ix), wo)
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
	raw := func(name string, timeTable bool, ix *eventcenter.Index) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				db := openRaw(b)
				b.StartTimer()
				for batch := range slices.Chunk(evs, benchBatch) {
					rawWrite(b, db, batch, timeTable, ix, pebble.Sync)
				}
			}
			b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
	raw("raw-same-work", true, &ix)
	raw("raw-one-write", false, nil)

	// The same batches built outside the timer: the gap to raw-same-work is
	// the cost of encoding, reported apart from the store's overhead.
	b.Run("raw-preencoded", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			db := openRaw(b)
			var batches []*pebble.Batch
			for batch := range slices.Chunk(evs, benchBatch) {
				batches = append(batches, rawBatch(b, db, batch, true, &ix))
			}
			b.StartTimer()
			for _, wb := range batches {
				commit(b, wb, pebble.Sync)
			}
		}
		b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
	})
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
		rawWrite(b, raw, batch, true, nil, pebble.NoSync)
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
				seek = codec.AsOfSeek(append(seek[:0], tabEvents), q.Source, q.Key, q.Time)
				it, err := raw.NewIter(&pebble.IterOptions{LowerBound: seek, UpperBound: codec.PrefixEnd(seek[:len(seek)-8])})
				if err != nil {
					b.Fatal(err)
				}
				if it.First() {
					var e eventcenter.Event
					if err := codec.DecodeBody(it.Value(), &e); err != nil {
						b.Fatal(err)
					}
					if e.Source, e.Key, e.Time, e.Pos, err = codec.ParseEventKey(it.Key()[1:]); err != nil {
						b.Fatal(err)
					}
				}
				if err := it.Close(); err != nil {
					b.Fatal(err)
				}
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
			rawWrite(b, raw, batch, true, nil, pebble.NoSync)
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
			it, err := raw.NewIter(&pebble.IterOptions{LowerBound: append([]byte{tabTime}, start...), UpperBound: append([]byte{tabTime}, end...)})
			if err != nil {
				b.Fatal(err)
			}
			var seek []byte
			n := 0
			for it.First(); it.Valid(); it.Next() {
				var e, profile eventcenter.Event
				if err := codec.DecodeBody(it.Value(), &e); err != nil {
					b.Fatal(err)
				}
				if e.Source, e.Key, e.Time, e.Pos, err = codec.ParseTimeKey(it.Key()[1:]); err != nil {
					b.Fatal(err)
				}
				seek = codec.AsOfSeek(append(seek[:0], tabEvents), "mysql.loan.users", e.After["user_id"].(string), e.Time)
				pit, err := raw.NewIter(&pebble.IterOptions{LowerBound: seek, UpperBound: codec.PrefixEnd(seek[:len(seek)-8])})
				if err != nil {
					b.Fatal(err)
				}
				if !pit.First() {
					b.Fatalf("raw: no profile for %s", e.After["user_id"])
				}
				if err := codec.DecodeBody(pit.Value(), &profile); err != nil {
					b.Fatal(err)
				}
				if profile.Source, profile.Key, profile.Time, profile.Pos, err = codec.ParseEventKey(pit.Key()[1:]); err != nil {
					b.Fatal(err)
				}
				if err := pit.Close(); err != nil {
					b.Fatal(err)
				}
				n++
			}
			if err := it.Close(); err != nil {
				b.Fatal(err)
			}
			if n != total {
				b.Fatalf("raw replayed %d", n)
			}
		}
		b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkAsOfBatch: the reads of a training-set segment, shaped like
// bench/training_test.go's: 20,000 keys × 10 changes, batches of random
// keys at random times (5% unknown keys), the tables compacted. batch=n
// answers n reads with one AsOfBatch (a wider batch seeks less far from
// one read to the next); one-by-one an AsOf per read, the first 8,192
// reads, for the ratio.
func BenchmarkAsOfBatch(b *testing.B) {
	const keys, changes, batch = 20_000, 10, 8192
	const span = 30 * 24 * time.Hour
	rng := rand.New(rand.NewPCG(4, 4))
	s := openBench(b)
	var evs []eventcenter.Event
	for k := range keys {
		for c := range changes {
			at := benchBase.Add(time.Duration(rng.Int64N(int64(span))))
			evs = append(evs, eventcenter.Event{Source: "bench.accounts", Key: fmt.Sprintf("acct-%06d", k), Time: at,
				Pos: eventcenter.Position{Log: 1, Offset: uint64(k*changes + c)}, Op: eventcenter.OpUpdate,
				After: eventcenter.Row{"balance": rng.Float64(), "score": rng.Int64N(1000), "branch": "north"}})
		}
	}
	for chunk := range slices.Chunk(evs, benchBatch) {
		if err := s.Append(context.Background(), chunk); err != nil {
			b.Fatal(err)
		}
	}
	settle(b, s.db)
	const most = 65536
	qs := make([]eventcenter.AsOf, most)
	for i := range qs {
		qs[i] = eventcenter.AsOf{Source: "bench.accounts", Key: fmt.Sprintf("acct-%06d", rng.IntN(keys+keys/20)),
			Time: benchBase.Add(-48*time.Hour + time.Duration(rng.Int64N(int64(span+48*time.Hour))))}
	}
	out := make([]eventcenter.AsOfResult, most)
	for _, n := range []int{batch, 4 * batch, most} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			for b.Loop() {
				if err := s.AsOfBatch(context.Background(), qs[:n], out[:n]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/read")
		})
	}
	qs, out = qs[:batch], out[:batch]
	b.Run("one-by-one", func(b *testing.B) {
		for b.Loop() {
			for _, q := range qs {
				if _, err := s.AsOf(context.Background(), q); err != nil && err != eventcenter.ErrNotFound {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/read")
	})
}
