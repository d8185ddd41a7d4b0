package testenv_test

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/canal"
	"github.com/go-mysql-org/go-mysql/client"

	"github.com/tidemark-dev/tidemark/internal/testenv"
)

type rowCatcher struct {
	canal.DummyEventHandler
	rows chan *canal.RowsEvent
}

func (h *rowCatcher) OnRow(e *canal.RowsEvent) error {
	h.rows <- e
	return nil
}

// TestMySQLBinlogSmoke: an INSERT reaches a go-mysql canal as a row event.
func TestMySQLBinlogSmoke(t *testing.T) {
	cfg := testenv.MySQL(t)
	table := fmt.Sprintf("smoke_%d", time.Now().UnixNano())

	conn, err := client.Connect(cfg.Addr, cfg.User, cfg.Password, cfg.DB)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close()
	if _, err := conn.Execute("CREATE TABLE " + table + " (id BIGINT PRIMARY KEY, amount DECIMAL(12,2) NOT NULL, note VARCHAR(64))"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	defer conn.Execute("DROP TABLE IF EXISTS " + table) //nolint:errcheck

	cc := canal.NewDefaultConfig()
	cc.Addr, cc.User, cc.Password, cc.Flavor = cfg.Addr, cfg.User, cfg.Password, cfg.Flavor
	cc.ServerID = uint32(100000 + time.Now().UnixNano()%100000)
	cc.Dump.ExecutionPath = "" // no mysqldump: binlog only
	cc.IncludeTableRegex = []string{regexp.QuoteMeta(cfg.DB + "." + table)}
	c, err := canal.NewCanal(cc)
	if err != nil {
		t.Fatalf("canal: %v", err)
	}
	defer c.Close()
	h := &rowCatcher{rows: make(chan *canal.RowsEvent, 16)}
	c.SetEventHandler(h)
	pos, err := c.GetMasterPos()
	if err != nil {
		t.Fatalf("master pos: %v", err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- c.RunFrom(pos) }()

	if _, err := conn.Execute("INSERT INTO "+table+" (id, amount, note) VALUES (?, ?, ?)", 7, "123.45", "hello"); err != nil {
		t.Fatalf("insert: %v", err)
	}
	select {
	case e := <-h.rows:
		if e.Action != canal.InsertAction || e.Table.Name != table || len(e.Rows) != 1 {
			t.Fatalf("unexpected event: action=%s table=%s rows=%v", e.Action, e.Table.Name, e.Rows)
		}
		row := e.Rows[0]
		if fmt.Sprint(row[0]) != "7" || fmt.Sprint(row[1]) != "123.45" || fmt.Sprint(row[2]) != "hello" {
			t.Fatalf("unexpected row %#v", row)
		}
		if e.Header == nil || e.Header.LogPos == 0 {
			t.Fatalf("row event without a binlog position: %+v", e.Header)
		}
	case err := <-runErr:
		t.Fatalf("canal stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no row event within 30s")
	}
}
