// Package bench_test measures the source → event center path beside the raw
// store, in one run (see README.md, section "Sources and ingest"):
//
//	eval "$(scripts/services env)"
//	go test ./bench -run '^$' -bench Ingest -benchtime 1x -count 3
//
// The benchmarks:
//
//	Ingest/store         Store.Append of 1,000-event batches (synced, on
//	                     disk): the raw store rate of the core issue
//	Ingest/kafka-json    the same events in Kafka (wire json/v1, 4
//	                     partitions) → an Ingester → the same kind of store
//	Ingest/kafka-binary  the same with wire binary/v1
//	Ingest/cdc           MariaDB binlog row changes → cdc → Kafka,
//	                     acknowledged and checkpointed (binary/v1)
package bench_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/cdc"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// events are shaped like the core issue's benchmark: loan orders over 50k keys.
func events(src string, n int) []eventcenter.Event {
	evs := make([]eventcenter.Event, n)
	for i := range evs {
		k := (i * 7919) % 50_000
		evs[i] = eventcenter.Event{
			Source: src, Key: fmt.Sprintf("order-%08d", k),
			Time: base.Add(time.Duration(i) * time.Millisecond),
			Pos:  eventcenter.Position{Log: 1, Offset: uint64(i)},
			Op:   eventcenter.OpUpdate,
			After: eventcenter.Row{
				"id": int64(k), "user_id": fmt.Sprintf("user-%06d", k%5000),
				"amount": eventcenter.Decimal("1250.00"), "status": "open",
				"term": int64(12), "rate": 0.125, "created_at": base,
			},
		}
	}
	return evs
}

func suffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func openStore(b *testing.B) *embedded.Store {
	st, err := embedded.Open(embedded.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// counting counts the events appended to a store.
type counting struct {
	eventcenter.Store
	n atomic.Int64
}

func (c *counting) Append(ctx context.Context, evs []eventcenter.Event) error {
	err := c.Store.Append(ctx, evs)
	if err == nil {
		c.n.Add(int64(len(evs)))
	}
	return err
}

func BenchmarkIngest(b *testing.B) {
	const total = 200_000
	const src = "mysql.loan.orders"
	evs := events(src, total)
	ix := eventcenter.Index{Source: src, Name: "user_id", Column: "user_id"}
	ctx := context.Background()

	b.Run("store", func(b *testing.B) {
		var d time.Duration
		for b.Loop() {
			d += runStore(b, evs, ix)
		}
		b.ReportMetric(float64(total*b.N)/d.Seconds(), "events/s")
	})
	for _, codec := range []wire.Codec{wire.JSON, wire.Binary} {
		b.Run("kafka-"+strings.TrimSuffix(codec.Name(), "/v1"), func(b *testing.B) {
			var r kafkaRun
			for b.Loop() {
				r.add(runKafka(b, evs, codec))
			}
			r.report(b, total)
		})
	}
	// The machine is shared: store and ingest alternate within each
	// iteration, so both see the same load; the ratio is per pair.
	b.Run("pair-binary", func(b *testing.B) {
		var r kafkaRun
		var d time.Duration
		var ratios []float64
		for b.Loop() {
			sd := runStore(b, evs, ix)
			k := runKafka(b, evs, wire.Binary)
			d += sd
			r.add(k)
			ratios = append(ratios, sd.Seconds()/k.total.Seconds())
		}
		b.ReportMetric(float64(total*b.N)/d.Seconds(), "store-events/s")
		r.report(b, total)
		slices.Sort(ratios)
		b.ReportMetric(ratios[len(ratios)/2], "median-ingest/store")
	})

	b.Run("cdc", func(b *testing.B) {
		mcfg := testenv.MySQL(b)
		brokers := testenv.KafkaBrokers(b)
		const rows = 50_000 // inserted, then updated: 100k row changes
		for b.Loop() {
			b.StopTimer()
			dbName := mcfg.DB + "_bench_" + suffix()
			db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/", mcfg.User, mcfg.Password, mcfg.Addr))
			if err != nil {
				b.Fatal(err)
			}
			mustExec(b, db, "CREATE DATABASE "+dbName)
			mustExec(b, db, "CREATE TABLE "+dbName+`.orders (id BIGINT PRIMARY KEY, user_id VARCHAR(16) NOT NULL,
				amount DECIMAL(12,2) NOT NULL, status VARCHAR(10) NOT NULL, term INT NOT NULL, rate DOUBLE NOT NULL,
				created_at DATETIME(6) NOT NULL)`)
			var file string
			var pos uint32
			var ignore1, ignore2 sql.NullString
			if err := db.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &ignore1, &ignore2); err != nil {
				b.Fatal(err)
			}
			for i := 0; i < rows; i += 1000 {
				var vals []string
				for k := i; k < i+1000; k++ {
					vals = append(vals, fmt.Sprintf("(%d, 'user-%06d', 1250.00, 'open', 12, 0.125, '2026-01-01 00:00:00.000000')", k, k%5000))
				}
				mustExec(b, db, "INSERT INTO "+dbName+".orders VALUES "+strings.Join(vals, ","))
			}
			for i := 0; i < rows; i += 1000 {
				mustExec(b, db, fmt.Sprintf("UPDATE %s.orders SET amount = amount + 1, status = 'paid' WHERE id >= %d AND id < %d", dbName, i, i+1000))
			}
			var endFile string
			var endPos uint32
			if err := db.QueryRow("SHOW MASTER STATUS").Scan(&endFile, &endPos, &ignore1, &ignore2); err != nil {
				b.Fatal(err)
			}
			reg, err := source.Parse(fmt.Appendf(nil, "sources: [{name: mysql.bench.orders, kind: mysql, topic: bench.cdc.%s, mysql: {database: %s, table: orders}}]", dbName, dbName))
			if err != nil {
				b.Fatal(err)
			}
			dir := b.TempDir()
			c, err := cdc.New(cdc.Config{Addr: mcfg.Addr, User: mcfg.User, Password: mcfg.Password, Flavor: mcfg.Flavor,
				Sources: reg, Brokers: brokers, Dir: dir, Start: fmt.Sprintf("%s:%d", file, pos), NoGTID: true,
				Partitions: 4, CheckpointInterval: 20 * time.Millisecond})
			if err != nil {
				b.Fatal(err)
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			b.StartTimer()
			go func() { done <- c.Run(rctx) }()
			for {
				cp, _ := os.ReadFile(filepath.Join(dir, "checkpoint.json"))
				if f, p := checkpointAt(cp); f > endFile || f == endFile && p >= endPos {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			mustExec(b, db, "DROP DATABASE "+dbName)
			db.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(2*rows*b.N)/b.Elapsed().Seconds(), "rowchanges/s")
	})
}

// checkpointAt reads the file and position of a CDC checkpoint (binlog
// file names of one server sort by their fixed-width sequence number).
// runStore appends the events to a fresh on-disk store in 1,000-event
// batches and returns the time it took.
func runStore(b *testing.B, evs []eventcenter.Event, ix eventcenter.Index) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	ctx := context.Background()
	st := openStore(b)
	if err := st.DeclareIndex(ctx, ix); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	b.StartTimer()
	for batch := range slices.Chunk(evs, 1000) {
		if err := st.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	return time.Since(start)
}

// kafkaResult is one ingest of the events from Kafka.
type kafkaResult struct {
	total, toFirst time.Duration // Run to everything stored; to the first batch stored
	steady         float64       // events/s from the first batch stored on
}

type kafkaRun struct {
	n       int
	total   time.Duration
	toFirst time.Duration
	steady  float64
}

func (r *kafkaRun) add(k kafkaResult) {
	r.n++
	r.total += k.total
	r.toFirst += k.toFirst
	r.steady += k.steady
}

func (r *kafkaRun) report(b *testing.B, events int) {
	b.ReportMetric(float64(events*r.n)/r.total.Seconds(), "events/s")
	b.ReportMetric(r.steady/float64(r.n), "steady-events/s")
	b.ReportMetric(r.toFirst.Seconds()/float64(r.n), "s-to-first-batch")
}

// runKafka produces the events to a fresh 4-partition topic (untimed), then
// times an Ingester storing them into a fresh on-disk store.
func runKafka(b *testing.B, evs []eventcenter.Event, codec wire.Codec) kafkaResult {
	b.StopTimer()
	defer b.StartTimer()
	ctx := context.Background()
	brokers := testenv.KafkaBrokers(b)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(10*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	topic := "bench.ingest." + suffix()
	if err := source.EnsureTopics(ctx, cl, 4, topic); err != nil {
		b.Fatal(err)
	}
	recs := make([]*kgo.Record, len(evs))
	for i := range evs {
		v, err := codec.Append(nil, &evs[i])
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(evs[i].Key), Value: v,
			Headers: []kgo.RecordHeader{{Key: wire.HeaderCodec, Value: []byte(codec.Name())}}}
	}
	for chunk := range slices.Chunk(recs, 20000) {
		if err := cl.ProduceSync(ctx, chunk...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	reg, err := source.Parse(fmt.Appendf(nil, "sources: [{name: %s, kind: mysql, topic: %s, mysql: {database: loan, table: orders}, indexes: [{column: user_id}]}]", evs[0].Source, topic))
	if err != nil {
		b.Fatal(err)
	}
	st := &counting{Store: openStore(b)}
	met := ingest.NewMetrics(nil)
	in, err := ingest.New(ingest.Config{Brokers: brokers, Sources: reg, Store: st, Group: topic, Metrics: met, MaxPollRecords: pollRecords()})
	if err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	total := int64(len(evs))
	b.StartTimer()
	t0 := time.Now()
	go func() { done <- in.Run(rctx) }()
	var first time.Time
	var firstN int64
	for n := st.n.Load(); n < total; n = st.n.Load() {
		if first.IsZero() && n > 0 {
			first, firstN = time.Now(), n
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	res := kafkaResult{total: time.Since(t0), toFirst: first.Sub(t0), steady: float64(total-firstN) / time.Since(first).Seconds()}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	var am, bm dto.Metric
	met.AppendSeconds.Write(&am)
	met.BatchRecords.Write(&bm)
	b.Logf("%s: appends %d taking %.3fs in all; %.0f records per batch", codec.Name(), am.Histogram.GetSampleCount(), am.Histogram.GetSampleSum(),
		bm.Histogram.GetSampleSum()/float64(bm.Histogram.GetSampleCount()))
	return res
}

func checkpointAt(cp []byte) (string, uint32) {
	var c cdc.Checkpoint
	if json.Unmarshal(cp, &c) != nil {
		return "", 0
	}
	return c.File, c.Pos
}

func mustExec(b *testing.B, db *sql.DB, q string) {
	b.Helper()
	if _, err := db.Exec(q); err != nil {
		b.Fatalf("%.80s: %v", q, err)
	}
}

// pollRecords is the ingest batch size (TIDEMARK_BENCH_POLL, default the
// ingest default).
func pollRecords() int {
	n, _ := strconv.Atoi(os.Getenv("TIDEMARK_BENCH_POLL"))
	return n
}
