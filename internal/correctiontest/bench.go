// Package correctiontest holds what the correction's benchmarks share: a
// table of n rows in MySQL whose every row the event center holds, in sync,
// and a bare chunked SELECT of it (the baseline).
package correctiontest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// Table is a benchmark table: Database.t (id BIGINT PRIMARY KEY, a INT,
// s VARCHAR(32), amount DECIMAL(12,2), at DATETIME(6)), ids 0…Rows-1,
// captured as Source.
type Table struct {
	Database, Source string
	Rows             int
}

// Load creates a database of its own (prefix_<random>, dropped when the
// benchmark ends) holding n rows, and appends to st the insert event of
// every row (stamped an hour ago), as the CDC would have: the event center
// is in sync with MySQL.
func Load(tb testing.TB, db *sql.DB, st eventcenter.Store, prefix, src string, n int) Table {
	tb.Helper()
	ctx := context.Background()
	b := make([]byte, 4)
	rand.Read(b)
	name := prefix + "_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Exec("DROP DATABASE " + name) })
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+name+".t (id BIGINT PRIMARY KEY, a INT NOT NULL, s VARCHAR(32) NOT NULL, amount DECIMAL(12,2) NOT NULL, at DATETIME(6) NOT NULL)"); err != nil {
		tb.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	evTime := time.Now().Add(-time.Hour).Truncate(time.Second)
	const batch = 2000
	for lo := 0; lo < n; lo += batch {
		var q strings.Builder
		q.WriteString("INSERT INTO " + name + ".t VALUES ")
		evs := make([]eventcenter.Event, 0, batch)
		for i := lo; i < min(lo+batch, n); i++ {
			at := base.Add(time.Duration(i) * time.Millisecond)
			amount := fmt.Sprintf("%d.%02d", i%100000, i%100)
			if i > lo {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, "(%d,%d,'s%d',%s,'%s')", i, i%1000, i, amount, at.Format("2006-01-02 15:04:05.000000"))
			evs = append(evs, eventcenter.Event{Source: src, Key: strconv.Itoa(i), Time: evTime, Pos: eventcenter.Position{Log: 1, Offset: uint64(i+1) << 16},
				Op: eventcenter.OpInsert, After: eventcenter.Row{"id": int64(i), "a": int64(i % 1000), "s": "s" + strconv.Itoa(i), "amount": eventcenter.Decimal(amount), "at": at}})
		}
		if _, err := db.ExecContext(ctx, q.String()); err != nil {
			tb.Fatal(err)
		}
		if err := st.Append(ctx, evs); err != nil {
			tb.Fatal(err)
		}
	}
	return Table{Database: name, Source: src, Rows: n}
}

// BareScan reads the table by id ranges of chunkRows (its ids are 0…n-1,
// so the ranges are the chunks the correction plans), parallelism at once,
// scanning every column as raw bytes, and returns the rows read: no
// snapshot, no typing, no event center.
func (t Table) BareScan(tb testing.TB, db *sql.DB, chunks, chunkRows, parallelism int) int {
	var (
		mu    sync.Mutex
		total int
		wg    sync.WaitGroup
		sem   = make(chan struct{}, parallelism)
	)
	for i := range chunks {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			rows, err := db.Query("SELECT * FROM `"+t.Database+"`.t WHERE id >= ? AND id < ? ORDER BY id", i*chunkRows, (i+1)*chunkRows)
			if err != nil {
				tb.Error(err)
				return
			}
			defer rows.Close()
			cols, err := rows.Columns()
			if err != nil {
				tb.Error(err)
				return
			}
			raw := make([]sql.RawBytes, len(cols))
			ptrs := make([]any, len(raw))
			for i := range raw {
				ptrs[i] = &raw[i]
			}
			n := 0
			for rows.Next() {
				if err := rows.Scan(ptrs...); err != nil {
					tb.Error(err)
					return
				}
				n++
			}
			if err := rows.Err(); err != nil {
				tb.Error(err)
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	return total
}
