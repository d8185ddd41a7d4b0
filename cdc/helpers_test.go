package cdc_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"reflect"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/tidemark-dev/tidemark/cdc"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/source"
)

// testDB creates a fresh database tidemark_cdc_<random> (dropped at the end)
// and returns a connection to it with time_zone UTC.
func testDB(t testing.TB) (testenv.MySQLConfig, *sql.DB, string) {
	t.Helper()
	cfg := testenv.MySQL(t)
	b := make([]byte, 4)
	rand.Read(b)
	name := cfg.DB + "_cdc_" + hex.EncodeToString(b)
	root, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/", cfg.User, cfg.Password, cfg.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := root.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/%s?time_zone=%%27%%2B00%%3A00%%27&multiStatements=true", cfg.User, cfg.Password, cfg.Addr, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Exec("DROP DATABASE " + name)
		db.Close()
	})
	return cfg, db, name
}

func exec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// verifyTable checks that the event center's state at `at` of every row of
// db.table equals the table, row by row, and that the event center holds no
// row the table does not.
func verifyTable(t testing.TB, db *sql.DB, st eventcenter.Store, srcName, dbName, table string, at time.Time) int {
	t.Helper()
	ctx := context.Background()
	schema, err := cdc.LoadTable(ctx, db, dbName, table, nil)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, "SELECT * FROM `"+table+"`")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := map[string]eventcenter.Row{}
	for rows.Next() {
		raw := make([]sql.RawBytes, len(schema.Columns))
		ptrs := make([]any, len(raw))
		for i := range raw {
			ptrs[i] = &raw[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := eventcenter.Row{}
		for i := range schema.Columns {
			c := &schema.Columns[i]
			var text []byte
			if raw[i] != nil {
				text = bytes.Clone(raw[i])
			}
			v, err := cdc.ValueFromText(c, text, time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			row[c.Name] = v
		}
		var kv []any
		for _, k := range schema.Key {
			kv = append(kv, row[schema.Columns[k].Name])
		}
		key, err := source.RowKey(kv...)
		if err != nil {
			t.Fatal(err)
		}
		want[key] = row
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for key, w := range want {
		ev, err := st.AsOf(ctx, eventcenter.AsOf{Source: srcName, Key: key, Time: at})
		if err != nil {
			t.Errorf("%s key %s: %v (want %v)", srcName, key, err, w)
			bad++
		} else if !rowsEqual(withNulls(ev.After, w), w) {
			t.Errorf("%s key %s:\n event center %#v\n mysql        %#v", srcName, key, ev.After, w)
			bad++
		}
		if bad > 10 {
			t.Fatal("too many differences")
		}
	}
	// No row the table does not have: replay everything, keep the last
	// state per key.
	state := map[string]bool{}
	for ev, err := range st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{srcName}, From: time.Unix(0, 0), To: at.Add(time.Nanosecond)}) {
		if err != nil {
			t.Fatal(err)
		}
		state[ev.Key] = ev.After != nil
	}
	for key, present := range state {
		if present && want[key] == nil {
			t.Errorf("%s key %s is in the event center, not in the table", srcName, key)
		}
	}
	return len(want)
}

// withNulls adds to got the columns of want it lacks whose value is NULL:
// a column added by a DDL is in a row's image only from the row's next
// change on (ALTER TABLE writes no row events).
func withNulls(got, want eventcenter.Row) eventcenter.Row {
	out := eventcenter.Row{}
	for k, v := range got {
		out[k] = v
	}
	for k, v := range want {
		if _, ok := out[k]; !ok && v == nil {
			out[k] = nil
		}
	}
	return out
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
		case []byte:
			y, ok := bv.([]byte)
			if !ok || !bytes.Equal(x, y) {
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

func countEvents(t testing.TB, st eventcenter.Store, src string) int {
	t.Helper()
	n := 0
	for _, err := range st.Replay(context.Background(), eventcenter.ReplayQuery{Sources: []string{src}, From: time.Unix(0, 0), To: time.Unix(1<<40, 0)}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func waitFor(t testing.TB, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
