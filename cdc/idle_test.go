package cdc_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tidemark-dev/tidemark/cdc"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/source"
)

// An idle CDC that has processed everything moves the watermarks of all
// its sources on, including those of tables it has never read a change of
// (written before it started, or only with sql_log_bin=0): a reader waiting
// for a time after the last write (the nightly correction waits for its
// chunk's snapshot time) is not left waiting for a write that may never
// come.
func TestIdleWatermarkAdvances(t *testing.T) {
	mcfg, db, dbName := testDB(t)
	exec(t, db, "CREATE TABLE quiet (id INT PRIMARY KEY, v INT)")
	exec(t, db, "CREATE TABLE early (id INT PRIMARY KEY)")
	exec(t, db, "CREATE TABLE hidden (id INT PRIMARY KEY)")
	exec(t, db, "INSERT INTO early VALUES (1)") // before the CDC starts
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(2))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	reg, err := source.Parse([]byte(fmt.Sprintf(`
sources:
  - name: mysql.idle.{table}
    kind: mysql
    topic: mysql.idle
    mysql: {database: %s, table: "*"}
`, dbName)))
	if err != nil {
		t.Fatal(err)
	}
	st, err := embedded.Open(embedded.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := cdc.New(cdc.Config{Addr: mcfg.Addr, User: mcfg.User, Password: mcfg.Password, Flavor: mcfg.Flavor,
		Sources: reg, Brokers: brokers, Dir: t.TempDir(), Partitions: 2, ProgressInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cdcDone := make(chan error, 1)
	go func() { cdcDone <- c.Run(ctx) }()
	in, err := ingest.New(ingest.Config{Brokers: brokers, Sources: reg, Store: st, MarkInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	inDone := make(chan error, 1)
	go func() { inDone <- in.Run(ctx) }()

	time.Sleep(time.Second) // the CDC has read its start position
	exec(t, db, "INSERT INTO quiet VALUES (1, 1), (2, 2)")
	exec(t, db, "UPDATE quiet SET v = 3 WHERE id = 1")
	// Behind the CDC's back: no binlog event (needs BINLOG ADMIN, which
	// scripts/services.d/mariadb.sh grants).
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SET SESSION sql_log_bin = 0", "INSERT INTO hidden VALUES (1)", "UPDATE early SET id = 2", "SET SESSION sql_log_bin = 1"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn.Close()
	waitFor(t, "the changes", 20*time.Second, func() bool { return countEvents(t, st, "mysql.idle.quiet") == 3 })

	// From here on MySQL is idle: no write at all, logged or not.
	after := time.Now()
	const within = 8 * time.Second // Lateness (2s) + heartbeats + progress and mark intervals, with room
	wctx, wcancel := context.WithTimeout(ctx, within)
	defer wcancel()
	for _, src := range []string{"mysql.idle.quiet", "mysql.idle.early", "mysql.idle.hidden"} {
		if err := st.WaitWatermark(wctx, src, after); err != nil {
			wm, _ := st.Watermark(ctx, src)
			t.Errorf("the watermark of %s did not pass %v within %v of an idle, caught-up CDC (at %v): %v", src, after, within, wm, err)
		}
	}

	cancel()
	if err := <-cdcDone; err != nil {
		t.Errorf("cdc: %v", err)
	}
	if err := <-inDone; err != nil {
		t.Errorf("ingest: %v", err)
	}
}
