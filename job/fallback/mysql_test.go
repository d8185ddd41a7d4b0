package fallback_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/fallback"
)

// TestMySQLFallback: with the event center's watermark behind, a
// FetchStrongNoDelay fetch reads the row from the real MySQL/MariaDB by
// primary key; rows changed after the fetch time and reads over the rate
// are refused and the fetch waits for the watermark instead.
func TestMySQLFallback(t *testing.T) {
	cfg := testenv.MySQL(t)
	ctx := context.Background()
	conn, err := client.Connect(cfg.Addr, cfg.User, cfg.Password, cfg.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	table := fmt.Sprintf("fb_orders_%d", time.Now().UnixNano())
	for _, q := range []string{
		"SET time_zone = '+00:00'",
		fmt.Sprintf("CREATE TABLE %s (id BIGINT PRIMARY KEY, user_id VARCHAR(32), amount DECIMAL(12,2), rate DOUBLE, blob_col VARBINARY(8), note TEXT, updated_at DATETIME(6) NOT NULL)", table),
		fmt.Sprintf("INSERT INTO %s VALUES (1, 'u1', 1200.50, 0.25, x'0001', NULL, '2026-11-26 07:59:00'), (2, 'u1', 10.00, 0.5, NULL, 'late', '2026-11-26 09:00:00')", table),
	} {
		if _, err := conn.Execute(q); err != nil {
			t.Fatal(q, err)
		}
	}
	defer func() { // before conn.Close (a Cleanup would run after it)
		if _, err := conn.Execute("DROP TABLE " + table); err != nil {
			t.Errorf("drop %s: %v", table, err)
		}
	}()

	fb, err := fallback.NewMySQL(fallback.Config{
		Addr: cfg.Addr, User: cfg.User, Password: cfg.Password, Rate: 0.5, Burst: 3,
		Tables: []fallback.Table{{Source: "mysql.loan.orders", Schema: cfg.DB, Table: table, Key: "id", TimeColumn: "updated_at"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	st, err := embedded.Open(embedded.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	if err := st.AdvanceWatermark(ctx, "mysql.loan.orders", 0, t0.Add(-time.Hour)); err != nil { // behind
		t.Fatal(err)
	}

	type got struct {
		row eventcenter.Row
		err error
	}
	var fetched []got
	j := job.MustNew("fb-test", func(c *job.Context) (eventcenter.Row, error) {
		for _, k := range []string{"1", "2", "3"} {
			row, err := c.Get("mysql.loan.orders", k)
			fetched = append(fetched, got{row, err})
		}
		return nil, nil
	}, job.Trigger("test.apps"), job.Consistency(job.FetchStrongNoDelay), job.WaitTimeout(50*time.Millisecond))
	trigger := eventcenter.Event{Source: "test.apps", Key: "a", Time: t0, Op: eventcenter.OpInsert, After: eventcenter.Row{"x": 1}}
	res, err := job.Run(ctx, j, trigger, &job.Env{Store: st, Fallback: fb})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Fallbacks != 1 || res.Stats.Misses != 2 || res.Stats.Stale != 2 {
		t.Fatalf("stats %+v", res.Stats)
	}
	row := fetched[0].row
	if fetched[0].err != nil || row["id"] != int64(1) || row["user_id"] != "u1" || row["amount"] != eventcenter.Decimal("1200.50") ||
		row["rate"] != 0.25 || string(row["blob_col"].([]byte)) != "\x00\x01" || row["note"] != nil ||
		!row["updated_at"].(time.Time).Equal(t0.Add(-time.Minute)) {
		t.Fatalf("row 1: %#v %v", row, fetched[0].err)
	}
	if !errors.Is(fetched[1].err, job.ErrStale) || !errors.Is(fetched[2].err, job.ErrStale) {
		t.Fatalf("row 2 (newer) and 3 (absent): %v, %v", fetched[1].err, fetched[2].err)
	}
	if s := fb.Stats(); s.Reads != 1 || s.Newer != 1 || s.Absent != 1 || s.Errors != 0 {
		t.Fatalf("fallback stats %+v", s)
	}
	// The bucket (burst 3) is empty now: the next read is refused at once.
	if _, err := fb.Read(ctx, "mysql.loan.orders", "1", t0); !errors.Is(err, job.ErrFallback) || fb.Stats().Limited != 1 {
		t.Fatalf("over the rate: %v, %+v", err, fb.Stats())
	}
	// With the watermark caught up, the event center answers, not MySQL.
	if err := st.AdvanceWatermark(ctx, "mysql.loan.orders", 0, t0); err != nil {
		t.Fatal(err)
	}
	fetched = nil
	if res, err = job.Run(ctx, j, trigger, &job.Env{Store: st, Fallback: fb}); err != nil {
		t.Fatal(err)
	}
	if res.Stats.Fallbacks != 0 || res.Stats.Waits != 0 || !errors.Is(fetched[0].err, job.ErrNotFound) {
		t.Fatalf("caught up: %+v %v", res.Stats, fetched)
	}
}
