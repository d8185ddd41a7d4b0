package cdc_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tidemark-dev/tidemark/cdc"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

const typesTable = "CREATE TABLE typed (" +
	" id BIGINT UNSIGNED NOT NULL PRIMARY KEY," +
	" amount DECIMAL(20,4) NOT NULL, rate DECIMAL(6,5) NULL," +
	" created DATETIME(6) NOT NULL, updated TIMESTAMP(3) NULL DEFAULT NULL, due DATE NULL, dur TIME(2) NULL," +
	" doc JSON NULL, note VARCHAR(64) NULL, body TEXT NULL, code CHAR(4) NULL," +
	" bin VARBINARY(16) NULL, blb BLOB NULL, fixed BINARY(4) NULL," +
	" state ENUM('new','paid','late''s') NULL, tags SET('a','b','c') NULL," +
	" f FLOAT NULL, d DOUBLE NULL, tiny TINYINT NULL, utiny TINYINT UNSIGNED NULL, med MEDIUMINT UNSIGNED NULL," +
	" i INT NULL, ui INT UNSIGNED NULL, big BIGINT NULL, y YEAR NULL, flags BIT(10) NULL, ok BOOL NULL)"

func TestCDCTypesAndDDL(t *testing.T) {
	mcfg, db, dbName := testDB(t)
	exec(t, db, typesTable)
	exec(t, db, "CREATE TABLE pairs (tenant VARCHAR(10) NOT NULL, seq INT NOT NULL, v VARCHAR(10), PRIMARY KEY (seq, tenant))")
	exec(t, db, "CREATE TABLE skipped (id INT PRIMARY KEY)")

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	reg, err := source.Parse([]byte(fmt.Sprintf(`
sources:
  - name: mysql.test.{table}
    kind: mysql
    topic: mysql.test
    mysql: {database: %s, table: "[tp]*"}
`, dbName)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// TxnMemory 1: every change of a transaction after its first is
	// spilled to disk and read back, so every type goes through the spill.
	c, err := cdc.New(cdc.Config{Addr: mcfg.Addr, User: mcfg.User, Password: mcfg.Password, Flavor: mcfg.Flavor,
		Sources: reg, Brokers: brokers, Dir: dir, Partitions: 3, Codec: wire.Binary, ProgressInterval: 100 * time.Millisecond,
		TxnMemory: 1})
	if err != nil {
		t.Fatal(err)
	}
	cdcDone := make(chan error, 1)
	go func() {
		err := c.Run(ctx)
		if err != nil {
			t.Logf("cdc.Run: %v", err)
		}
		cdcDone <- err
	}()
	st, err := embedded.Open(embedded.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	in, err := ingest.New(ingest.Config{Brokers: brokers, Sources: reg, Store: st, MarkInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	inDone := make(chan error, 1)
	go func() { inDone <- in.Run(ctx) }()
	waitFor(t, "the checkpoint", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "checkpoint.json"))
		return err == nil
	})

	exec(t, db, `INSERT INTO typed VALUES
		(1, 1234567890123456.7890, 0.12345, '2026-11-26 08:00:00.123456', '2026-11-26 08:00:01.5', '2026-11-26', '-12:34:56.78',
		 '{"a": [1, 2.5, "x"], "b": null}', 'héllo', 'long text', 'ab',
		 X'00ff10', X'deadbeef', X'01020304', 'late''s', 'a,c',
		 1.5, 2.000000000000001, -128, 255, 16777215, -2147483648, 4294967295, -9223372036854775808, 2026, b'1010101010', true),
		(18446744073709551615, -0.0001, NULL, '1999-12-31 23:59:59', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
		 'new', '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
		(3, 0, 0, '2026-01-01 00:00:00', NULL, NULL, NULL, NULL, '', '', '', '', '', NULL, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, NULL, b'0', false)`)
	exec(t, db, "INSERT INTO pairs VALUES ('acme', 1, 'x'), ('acme', 2, 'y'), ('other', 1, 'z')")
	exec(t, db, "INSERT INTO skipped VALUES (1)")
	exec(t, db, "UPDATE typed SET amount = amount + 1, doc = '[]', state = 'paid', tags = 'b' WHERE id = 1")
	exec(t, db, "UPDATE pairs SET v = 'w' WHERE tenant = 'acme'")
	exec(t, db, "DELETE FROM typed WHERE id = 3")
	// A DDL in the middle: the new column appears from here on. (Without
	// binlog_row_metadata=FULL the CDC reads a new schema from
	// information_schema, so it must read the rows before a DDL before a
	// second DDL of the table runs: wait until it did.)
	waitFor(t, "the changes before the DDL", 20*time.Second, func() bool {
		return countEvents(t, st, "mysql.test.typed") == 5 && countEvents(t, st, "mysql.test.pairs") == 5
	})
	exec(t, db, "ALTER TABLE pairs ADD COLUMN extra DECIMAL(5,2) NULL AFTER tenant")
	exec(t, db, "INSERT INTO pairs (tenant, seq, v, extra) VALUES ('acme', 3, 'n', 9.99)")
	exec(t, db, "UPDATE pairs SET extra = 1.5 WHERE seq = 1")
	// A key change: the old key is deleted, the new one inserted.
	exec(t, db, "UPDATE pairs SET seq = 7 WHERE tenant = 'other' AND seq = 1")

	// 3 + 3 inserts, 1 + 2 updates, 1 delete, 1 + 2 after the DDL, 2 for the key change.
	waitFor(t, "all changes", 20*time.Second, func() bool {
		n1, n2 := countEvents(t, st, "mysql.test.typed"), countEvents(t, st, "mysql.test.pairs")
		return n1 == 5 && n2 == 10
	})
	at := time.Now().Add(time.Hour)
	if n := verifyTable(t, db, st, "mysql.test.typed", dbName, "typed", at); n != 2 {
		t.Errorf("typed has %d rows", n)
	}
	if n := verifyTable(t, db, st, "mysql.test.pairs", dbName, "pairs", at); n != 4 {
		t.Errorf("pairs has %d rows", n)
	}
	if countEvents(t, st, "mysql.test.skipped") != 0 {
		t.Error("a table outside the pattern was captured")
	}

	// Spot checks of the mapping.
	ev, err := st.AsOf(ctx, eventcenter.AsOf{Source: "mysql.test.typed", Key: "1", Time: at})
	if err != nil {
		t.Fatal(err)
	}
	for col, want := range map[string]any{
		"amount": eventcenter.Decimal("1234567890123457.7890"), "state": "paid", "tags": "b", "doc": "[]",
		"ui": int64(4294967295), "med": int64(16777215), "flags": int64(0b1010101010), "dur": "-12:34:56.78", "f": 1.5,
	} {
		if !rowsEqual(eventcenter.Row{col: ev.After[col]}, eventcenter.Row{col: want}) {
			t.Errorf("typed.%s = %#v, want %#v", col, ev.After[col], want)
		}
	}
	if got, want := ev.After["created"], time.Date(2026, 11, 26, 8, 0, 0, 123456000, time.UTC); !want.Equal(got.(time.Time)) {
		t.Errorf("created = %v", got)
	}
	if ev.Before["amount"] != eventcenter.Decimal("1234567890123456.7890") || ev.Op != eventcenter.OpUpdate {
		t.Errorf("update before image: %v %v", ev.Op, ev.Before["amount"])
	}
	big, err := st.AsOf(ctx, eventcenter.AsOf{Source: "mysql.test.typed", Key: "18446744073709551615", Time: at})
	if err != nil || big.After["id"] != eventcenter.Decimal("18446744073709551615") {
		t.Errorf("BIGINT UNSIGNED max: %v %v", big.After["id"], err)
	}
	if _, err := st.AsOf(ctx, eventcenter.AsOf{Source: "mysql.test.pairs", Key: `"1","other"`, Time: at}); err == nil {
		t.Error("the old key of a key change still has a state")
	}
	hist, err := st.History(ctx, eventcenter.HistoryQuery{Source: "mysql.test.pairs", Key: `"1","acme"`, From: time.Unix(0, 0), To: at})
	if err != nil || len(hist) != 3 {
		t.Fatalf("history of acme/1: %d events, %v", len(hist), err)
	}
	if _, ok := hist[1].After["extra"]; ok {
		t.Error("the column added later is in the image before the DDL")
	}
	if hist[2].After["extra"] != eventcenter.Decimal("1.50") {
		t.Errorf("after the DDL: extra = %#v", hist[2].After["extra"])
	}

	// Progress reports move the watermarks close to now.
	waitFor(t, "watermarks", 20*time.Second, func() bool {
		wm, _ := st.Watermark(ctx, "mysql.test.pairs")
		return time.Since(wm) < 5*time.Second
	})

	cancel()
	if err := <-cdcDone; err != nil {
		t.Errorf("cdc: %v", err)
	}
	if err := <-inDone; err != nil {
		t.Errorf("ingest: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "checkpoint.json"))
	if !strings.Contains(string(b), `"gtid"`) || !strings.Contains(string(b), "mysql.test.pairs") {
		t.Errorf("checkpoint: %s", b)
	}
	h, _ := os.ReadFile(filepath.Join(dir, "schemas.jsonl"))
	if n := strings.Count(string(h), "\n"); n < 3 {
		t.Errorf("schema history has %d versions, want 3 (typed, pairs, pairs after the DDL):\n%s", n, h)
	}
}
