package correction_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark-dev/tidemark/cdc"
	"github.com/tidemark-dev/tidemark/correction"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/eventcenter/hbase"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/source"
)

// env is MariaDB + Kafka + CDC + ingest + an event center, for one test.
type env struct {
	t        *testing.T
	mcfg     testenv.MySQLConfig
	db       *sql.DB // the test's database, for writes
	read     *sql.DB // correction.Open: what the corrector reads with
	dbName   string
	reg      *source.Config
	store    eventcenter.Store
	brokers  []string
	progress string
	id       string
	cdcStop  func()
}

// source is the event source name of one of the test database's tables.
func (e *env) source(table string) string { return "mysql.corr" + e.id + "." + table }

func randHex() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newEnv creates a fresh database tidemark_corr_<random> (dropped at the
// end) and a registry capturing all its tables into a fresh topic.
func newEnv(t *testing.T, store eventcenter.Store) *env {
	t.Helper()
	cfg := testenv.MySQL(t)
	brokers := testenv.KafkaBrokers(t)
	id := randHex()
	name := cfg.DB + "_corr_" + id
	root, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/", cfg.User, cfg.Password, cfg.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := root.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/%s?time_zone=%%27%%2B00%%3A00%%27", cfg.User, cfg.Password, cfg.Addr, name))
	if err != nil {
		t.Fatal(err)
	}
	read, err := correction.Open(cfg.Addr, cfg.User, cfg.Password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Exec("DROP DATABASE " + name)
		db.Close()
		read.Close()
	})
	reg, err := source.Parse([]byte(fmt.Sprintf(`
sources:
  - name: mysql.corr%s.{table}
    kind: mysql
    topic: tidemark.test.corr.%s
    mysql: {database: %s, table: "*"}
`, id, id, name)))
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, mcfg: cfg, db: db, read: read, dbName: name, reg: reg, store: store, brokers: brokers,
		progress: "tidemark.test.corr.progress." + id, id: id}
}

func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.db.Exec(q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

// startCDC runs a CDC with a fresh checkpoint folder: it starts at the
// server's current position, so whatever was written while no CDC ran is
// never read (a stretch of binlog lost, as if purged). Every start is the
// same progress producer, so a restart's claims replace the stopped one's
// instead of waiting for ingest to time it out.
func (e *env) startCDC() {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := cdc.New(cdc.Config{Addr: e.mcfg.Addr, User: e.mcfg.User, Password: e.mcfg.Password, Flavor: e.mcfg.Flavor,
		Sources: e.reg, Brokers: e.brokers, Dir: e.t.TempDir(), Partitions: 3, ProgressTopic: e.progress, ProducerID: "cdc-corr-" + e.id,
		ProgressInterval: 100 * time.Millisecond, CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			e.t.Errorf("cdc.Run: %v", err)
		}
	})
	e.cdcStop = stop
	e.t.Cleanup(stop)
	time.Sleep(time.Second) // the CDC has read its start position
}

func (e *env) stopCDC() {
	e.cdcStop()
	e.cdcStop = nil
}

func (e *env) startIngest() {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in, err := ingest.New(ingest.Config{Brokers: e.brokers, Sources: e.reg, Store: e.store, MarkInterval: 100 * time.Millisecond,
		Group: "tidemark-test-corr-" + randHex(), ProgressTopic: e.progress})
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			e.t.Errorf("ingest.Run: %v", err)
		}
	})
}

// waitIngested waits until the watermark of each source passes now.
func (e *env) waitIngested(sources ...string) {
	e.t.Helper()
	now := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, s := range sources {
		if err := e.store.WaitWatermark(ctx, s, now); err != nil {
			e.t.Fatalf("%s: %v", s, err)
		}
	}
}

// tableRows reads db.table as the CDC maps it: event key → row.
func (e *env) tableRows(table string) map[string]eventcenter.Row {
	e.t.Helper()
	ctx := context.Background()
	schema, err := cdc.LoadTable(ctx, e.db, e.dbName, table, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	rows, err := e.db.QueryContext(ctx, "SELECT * FROM `"+table+"`")
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]eventcenter.Row{}
	for rows.Next() {
		raw := make([]sql.RawBytes, len(schema.Columns))
		ptrs := make([]any, len(raw))
		for i := range raw {
			ptrs[i] = &raw[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			e.t.Fatal(err)
		}
		row := eventcenter.Row{}
		for i := range schema.Columns {
			var text []byte
			if raw[i] != nil {
				text = bytes.Clone(raw[i])
			}
			v, err := cdc.ValueFromText(&schema.Columns[i], text, time.UTC)
			if err != nil {
				e.t.Fatal(err)
			}
			row[schema.Columns[i].Name] = v
		}
		var kv []any
		for _, k := range schema.Key {
			kv = append(kv, row[schema.Columns[k].Name])
		}
		key, err := source.RowKey(kv...)
		if err != nil {
			e.t.Fatal(err)
		}
		out[key] = row
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// stateAt returns the event center's present keys of src at time at, as
// known at knownAt (zero: now), from a replay.
func stateAt(t *testing.T, st eventcenter.Store, src string, at, knownAt time.Time) map[string]eventcenter.Row {
	t.Helper()
	out := map[string]eventcenter.Row{}
	for ev, err := range st.Replay(context.Background(), eventcenter.ReplayQuery{Sources: []string{src}, From: eventcenter.MinTime, To: at.Add(time.Nanosecond), KnownAt: knownAt}) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.After == nil {
			delete(out, ev.Key)
		} else {
			out[ev.Key] = ev.After
		}
	}
	return out
}

// duckCount counts the rows of the Parquet files in dir with DuckDB's
// Python package (scripts/tools installs it; without it the test fails
// under CI=true and otherwise counts with parquet-go).
func duckCount(t *testing.T, dir string) int {
	t.Helper()
	if _, err := osexec.LookPath("python3"); err != nil || osexec.Command("python3", "-c", "import duckdb").Run() != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("DuckDB is not installed (scripts/tools installs it: python3 -m pip install duckdb)")
		}
		t.Log("DuckDB is not installed: counting with parquet-go")
		files, _ := filepath.Glob(filepath.Join(dir, "*.parquet"))
		n := 0
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			pf, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			n += int(pf.NumRows())
		}
		return n
	}
	out, err := osexec.Command("python3", "-c", `import duckdb
print(duckdb.sql("select count(*) from read_parquet('`+dir+`/*.parquet')").fetchall()[0][0])`).CombinedOutput()
	if err != nil {
		t.Fatalf("duckdb: %v\n%s", err, out)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("duckdb: %q", out)
	}
	return n
}

func rowsEqual(a, b eventcenter.Row) bool {
	if len(a) != len(b) {
		return false
	}
	for k, av := range a {
		bv, ok := b[k]
		if !ok {
			return false
		}
		switch x := av.(type) {
		case time.Time:
			y, ok := bv.(time.Time)
			if !ok || !x.Equal(y) {
				return false
			}
		default:
			if !reflect.DeepEqual(av, bv) {
				return false
			}
		}
	}
	return true
}

// TestEndToEnd creates drift of every kind behind the CDC's back — rows
// written before the CDC started, a stretch of binlog the CDC never read
// (inserts, updates and deletes while it was stopped; it restarts at the
// server's current position, as after a purge), and sql_log_bin=0 inserts,
// updates and deletes — then runs the correction and checks: the
// ledger names exactly the drifted keys by kind; the event center's as-of
// state at each chunk's point equals MySQL row by row; reads as known
// before the correction are unchanged; a second run writes nothing; a
// table without a primary key is skipped with ErrNoKey while the others
// are corrected.
func TestEndToEnd(t *testing.T) {
	st, err := embedded.Open(embedded.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	runEndToEnd(t, st, 0)
}

// TestEndToEndHBase is TestEndToEnd on HBase as the event center.
func TestEndToEndHBase(t *testing.T) {
	cfg := hbase.Config{ZooKeeper: testenv.HBaseZK(t), Namespace: "tidemark_corr_" + randHex(), Regions: 1, MaxAppend: 2 * time.Second, KnownAtLag: 3 * time.Second}
	st, err := hbase.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.Close()
		if err := hbase.DropNamespace(context.Background(), cfg); err != nil {
			t.Logf("drop namespace %s: %v", cfg.Namespace, err)
		}
	})
	runEndToEnd(t, st, cfg.KnownAtLag)
}

// runEndToEnd is TestEndToEnd on st, whose known-at horizon trails now by
// knownAtLag.
func runEndToEnd(t *testing.T, st eventcenter.Store, knownAtLag time.Duration) {
	e := newEnv(t, st)
	ctx := context.Background()
	e.exec("CREATE TABLE orders (id BIGINT PRIMARY KEY, amount DECIMAL(10,2) NOT NULL, note VARCHAR(20) NULL, at DATETIME(6) NULL)")
	e.exec("CREATE TABLE items (tenant VARCHAR(8) NOT NULL, seq INT NOT NULL, qty INT NOT NULL, PRIMARY KEY (tenant, seq))")
	e.exec("CREATE TABLE nopk (a INT, b INT)")
	e.exec("INSERT INTO nopk VALUES (1, 2)")
	// Written before the CDC started: missing.
	for i := 1; i <= 5; i++ {
		e.exec("INSERT INTO orders VALUES (?, ?, 'early', '2026-01-01 00:00:00.5')", i, fmt.Sprintf("%d.50", i))
	}
	e.startIngest()
	e.startCDC()
	for i := 6; i <= 40; i++ {
		e.exec("INSERT INTO orders VALUES (?, ?, NULL, NOW(6))", i, fmt.Sprintf("%d.25", i))
	}
	for _, tenant := range []string{"acme", "beta"} {
		for seq := 1; seq <= 10; seq++ {
			e.exec("INSERT INTO items VALUES (?, ?, ?)", tenant, seq, seq*10)
		}
	}
	e.exec("UPDATE orders SET note = 'seen' WHERE id BETWEEN 10 AND 12")
	e.exec("DELETE FROM orders WHERE id = 13")
	orders, lines := e.source("orders"), e.source("items")
	e.waitIngested(orders, lines)

	want := map[string][]string{} // kind → keys, orders and lines alike (their keys do not collide)
	add := func(kind string, keys ...string) { want[kind] = append(want[kind], keys...) }
	add(correction.KindMissing, "1", "2", "3", "4", "5")

	// Writes behind the CDC's back, which leave no binlog event:
	// sql_log_bin=0 needs BINLOG ADMIN (or SUPER), which
	// scripts/services.d/mariadb.sh grants the harness's user.
	conn, err := e.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"SET SESSION sql_log_bin = 0",
		"INSERT INTO orders VALUES (100, 1.00, 'hidden', NULL)",
		"UPDATE orders SET amount = 99.99 WHERE id = 20",
		"DELETE FROM orders WHERE id = 21",
		"INSERT INTO items VALUES ('zeta', 1, 5)",
		"UPDATE items SET qty = 77 WHERE tenant = 'beta' AND seq = 5",
		"DELETE FROM items WHERE tenant = 'beta' AND seq = 6",
		"SET SESSION sql_log_bin = 1", // the connection goes back to the pool
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s (as %s; the harness grants BINLOG ADMIN): %v", q, e.mcfg.User, err)
		}
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	add(correction.KindMissing, "100", `"zeta","1"`)
	add(correction.KindDifferent, "20", `"beta","5"`)
	add(correction.KindExtra, "21", `"beta","6"`)

	// A stretch of binlog the CDC never reads.
	e.stopCDC()
	e.exec("INSERT INTO orders VALUES (41, 41.00, 'lost', NULL)")
	e.exec("UPDATE orders SET amount = 7.77, note = 'lost' WHERE id = 7")
	e.exec("UPDATE orders SET at = '2030-01-01 00:00:00' WHERE id = 8")
	e.exec("DELETE FROM orders WHERE id = 9")
	e.exec("INSERT INTO items VALUES ('acme', 11, 1)")
	e.exec("UPDATE items SET qty = 0 WHERE tenant = 'beta' AND seq = 3")
	e.exec("DELETE FROM items WHERE tenant = 'acme' AND seq = 4")
	add(correction.KindMissing, "41", `"acme","11"`)
	add(correction.KindDifferent, "7", "8", `"beta","3"`)
	add(correction.KindExtra, "9", `"acme","4"`)
	// The restarted CDC reads no change of either table from here on:
	// MySQL is idle, and its heartbeats move both sources' watermarks past
	// every chunk's point.
	e.startCDC()
	e.waitIngested(orders, lines)

	// What was known before the correction.
	time.Sleep(10 * time.Millisecond)
	before := time.Now()
	time.Sleep(10*time.Millisecond + knownAtLag) // reads as known at before are repeatable from now on
	far := time.Now().Add(time.Hour)
	knownBefore := map[string]map[string]eventcenter.Row{orders: stateAt(t, st, orders, far, before), lines: stateAt(t, st, lines, far, before)}

	s3cfg := testenv.S3(t)
	s3c := s3.New(s3.Options{
		BaseEndpoint: aws.String(s3cfg.Endpoint), Region: s3cfg.Region, UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s3cfg.AccessKey, s3cfg.SecretKey, ""),
	})
	archive := outputs.S3{Client: s3c, Bucket: s3cfg.Bucket, Prefix: "test/correction-" + e.id + "/"}
	cor := correction.New(e.read, st, correction.Options{ChunkRows: 7, KeyChunk: 2, Parallelism: 3, MaxKeys: -1, WatermarkTimeout: 30 * time.Second,
		Archive: archive})
	reg := prometheus.NewRegistry()
	metrics := correction.NewMetrics(reg)
	run, err := cor.Run(ctx, e.reg, correction.RunInput{ID: "run-1"}, metrics, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	results := map[string]correction.SourceResult{}
	for _, r := range run.Sources {
		results[r.Target.Source] = r
		for kind, keys := range r.Keys {
			got[kind] = append(got[kind], keys...)
		}
		if r.Corrections != r.Drifted() {
			t.Errorf("%s: %d corrections for %d drifted keys", r.Target.Source, r.Corrections, r.Drifted())
		}
		// Most keys are in sync, and the index finds them so (the rows'
		// stored encodings hash like MySQL's typed rows) without a read.
		unread := 0
		for _, ch := range r.Chunks {
			unread += ch.Unread
		}
		if unread == 0 || unread > r.Compared-r.Drifted() {
			t.Errorf("%s: %d keys found in sync unread, of %d compared (%d drifted)", r.Target.Source, unread, r.Compared, r.Drifted())
		}
	}
	if len(results) != 2 {
		t.Fatalf("corrected %d sources, want orders and items: %+v", len(results), run.Entries)
	}
	if sk := run.Skipped(); len(sk) != 1 || sk[0].Source != e.source("nopk") || !strings.Contains(sk[0].Skipped, correction.ErrNoKey.Error()) {
		t.Errorf("skipped %+v, want nopk for its missing key", sk)
	}
	// The ledger, read back from the event center, and the metrics.
	ledger, err := correction.ReadLedger(ctx, st, correction.LedgerQuery{Run: "run-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ledger) != 3 {
		t.Errorf("ledger of run-1: %d entries, want 3", len(ledger))
	}
	for _, l := range ledger {
		t.Logf("ledger: %s", &l)
		if r, ok := results[l.Source]; ok && !reflect.DeepEqual(l.Drift, r.Drift) {
			t.Errorf("ledger entry of %s: %+v, want %+v", l.Source, l.Drift, r.Drift)
		}
	}
	if n := testutil.ToFloat64(metrics.Rows.WithLabelValues(orders, correction.KindMissing)); n != float64(len(results[orders].Keys[correction.KindMissing])) {
		t.Errorf("tidemark_drift_rows{source=orders,kind=missing} = %v", n)
	}
	for kind := range want {
		slices.Sort(want[kind])
		slices.Sort(got[kind])
		if !slices.Equal(want[kind], got[kind]) {
			t.Errorf("%s keys: got %q, want %q", kind, got[kind], want[kind])
		}
	}
	if len(got) > len(want) {
		t.Errorf("kinds found %v, want %v", got, want)
	}

	// At each chunk's point the event center's state of the keys the chunk
	// corrected equals MySQL's (the database is quiet now, so MySQL's rows
	// are the rows at every point), and at the last chunk's point so does
	// the state of every key of the table.
	for src, table := range map[string]string{orders: "orders", lines: "items"} {
		my := e.tableRows(table)
		r := results[src]
		var last correction.Point
		for _, ch := range r.Chunks {
			if ch.Point.Time.After(last.Time) {
				last = ch.Point
			}
			for _, keys := range ch.Keys {
				for _, key := range keys {
					ev, err := st.AsOf(ctx, eventcenter.AsOf{Source: src, Key: key, Time: ch.Point.Time})
					if row, ok := my[key]; ok && (err != nil || !rowsEqual(ev.After, row)) || !ok && !errors.Is(err, eventcenter.ErrNotFound) {
						t.Errorf("%s chunk %d at %v: key %s: event center %v (%v), mysql %v", src, ch.Chunk, ch.Point, key, ev.After, err, row)
					}
				}
			}
		}
		ec := stateAt(t, st, src, last.Time, time.Time{})
		if len(ec) != len(my) {
			t.Errorf("%s at the last point: %d keys, mysql %d", src, len(ec), len(my))
		}
		for key, row := range my {
			if !rowsEqual(ec[key], row) {
				t.Errorf("%s at the last point: key %s: event center %v, mysql %v", src, key, ec[key], row)
			}
		}
		// Known-at reads from before the correction are unchanged.
		if again := stateAt(t, st, src, far, before); !reflect.DeepEqual(again, knownBefore[src]) {
			t.Errorf("%s: the state as known before the correction changed:\nbefore %v\nnow    %v", src, knownBefore[src], again)
		}
	}

	// The archive: one Parquet object per chunk under
	// snapshots/<source>/<date>/, holding every row of the table, as DuckDB
	// reads them.
	for src, table := range map[string]string{orders: "orders", lines: "items"} {
		objects := results[src].Objects
		if len(objects) != len(results[src].Chunks) {
			t.Errorf("%s: %d objects for %d chunks", src, len(objects), len(results[src].Chunks))
		}
		dir := t.TempDir()
		for i, name := range objects {
			if want := "snapshots/" + src + "/" + run.Started.Format(time.DateOnly) + "/"; !strings.HasPrefix(name, want) {
				t.Errorf("object %s is not under %s", name, want)
			}
			obj, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(archive.Bucket), Key: aws.String(archive.Prefix + name)})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("chunk-%d.parquet", i)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if n := duckCount(t, dir); n != len(e.tableRows(table)) {
			t.Errorf("%s: DuckDB reads %d rows from the archive, the table has %d", src, n, len(e.tableRows(table)))
		}
	}

	// A second run finds nothing and writes nothing.
	run2, err := cor.Run(ctx, e.reg, correction.RunInput{ID: "run-2"}, metrics, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range run2.Sources {
		if r.Corrections != 0 || r.Drifted() != 0 {
			t.Errorf("%s second run: %d corrections, drift %+v", r.Target.Source, r.Corrections, r.Drift)
		}
	}
	if n := testutil.ToFloat64(metrics.Rows.WithLabelValues(orders, correction.KindMissing)); n != 0 {
		t.Errorf("after the second run tidemark_drift_rows{source=orders,kind=missing} = %v", n)
	}
	hist, err := correction.ReadLedger(ctx, st, correction.LedgerQuery{Source: orders})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Run != "run-1" || hist[1].Run != "run-2" {
		t.Errorf("ledger of %s: %+v, want run-1 and run-2", orders, hist)
	}
}
