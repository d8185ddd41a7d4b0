package correction

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/tidemark-dev/tidemark/cdc"
)

// TestPlanPages: a table planned in pages gets Plan's chunks, page by
// page, with the indexes running on, and the chunks tile the key space
// (each row in exactly one chunk) — for a composite key of a string and
// an integer, also when rows are inserted between pages; for a key led by
// an ENUM whose members are not in text order (MySQL orders it by
// member number); and for keys so long that a page stops at MaxPageBytes
// before its count of chunks.
func TestPlanPages(t *testing.T) {
	ctx := context.Background()
	db, name := newDatabase(t, "pages")
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	load := func(table string) *cdc.Table {
		t.Helper()
		schema, err := LoadSchema(ctx, db, Target{Source: "mysql.pages." + table, Database: name, Table: table})
		if err != nil {
			t.Fatal(err)
		}
		return schema
	}

	t.Run("composite", func(t *testing.T) {
		exec("CREATE TABLE " + name + ".t (a VARCHAR(4) NOT NULL, b INT NOT NULL, PRIMARY KEY (a, b))")
		insert := func(a string, b int) { exec(fmt.Sprintf("INSERT INTO %s.t VALUES ('%s', %d)", name, a, b)) }
		for i := range 53 {
			insert([]string{"x", "y"}[i%2], i)
		}
		schema := load("t")
		whole := planWhole(t, db, schema, 5)
		if len(whole) != 11 {
			t.Fatalf("Plan: %d chunks, want 11", len(whole))
		}
		all, n := planPages(t, db, schema, 5, 3, nil)
		if n != 4 || !reflect.DeepEqual(all, whole) {
			t.Fatalf("%d pages of\n%+v\nwant 4 of Plan's\n%+v", n, all, whole)
		}
		// Keys inserted between pages, before and after where the next
		// page starts, are each in exactly one chunk.
		changed, _ := planPages(t, db, schema, 5, 3, func(page int) {
			insert("a", 1000+page) // before every page's start
			insert("x", 1000+page) // inside the pages to come ("x" rows run to 52)
			insert("z", page)      // after every row
		})
		checkTiles(t, db, schema, changed)
	})

	t.Run("enum", func(t *testing.T) {
		exec("CREATE TABLE " + name + ".e (e ENUM('z','b','a') NOT NULL, i INT NOT NULL, PRIMARY KEY (e, i))")
		for i := range 12 {
			exec(fmt.Sprintf("INSERT INTO %s.e VALUES ('%s', %d)", name, []string{"a", "b", "z"}[i%3], i))
		}
		pagesArePlan(t, db, load("e"), 4, 3)
	})

	t.Run("enum with an empty member, set", func(t *testing.T) {
		exec("CREATE TABLE " + name + ".m (e ENUM('x','','a') NOT NULL, s SET('q','p') NOT NULL, PRIMARY KEY (e, s))")
		for _, e := range []string{"", "x", "a"} {
			for _, set := range []string{"", "q", "p", "q,p"} {
				exec("INSERT INTO "+name+".m VALUES (?, ?)", e, set)
			}
		}
		schema := load("m")
		pagesArePlan(t, db, schema, 5, 3)
		// An equality finds the row of its text, and none for a value no
		// member has.
		for _, tc := range []struct {
			e, s string
			want int
		}{{"", "q,p", 1}, {"", "", 1}, {"A", "p", 1}, {"gone", "q", 0}} {
			cond, args, err := (&Chunk{Keys: [][][]byte{{[]byte(tc.e), []byte(tc.s)}}}).where(schema)
			if err != nil {
				t.Fatal(err)
			}
			var c int
			if err := db.QueryRow("SELECT COUNT(*) FROM "+name+".m WHERE "+cond, args...).Scan(&c); err != nil || c != tc.want {
				t.Errorf("key (%q, %q): %d rows (%v), want %d", tc.e, tc.s, c, err, tc.want)
			}
		}
	})

	t.Run("long keys", func(t *testing.T) {
		exec("CREATE TABLE " + name + ".l (k VARCHAR(255) NOT NULL PRIMARY KEY) CHARACTER SET latin1")
		const rows = 600
		for i := range rows {
			exec("INSERT INTO "+name+".l VALUES (?)", fmt.Sprintf("%04d%s", i, strings.Repeat("k", 250)))
		}
		schema := load("l")
		chunks, next, err := PlanPage(ctx, db, schema, 1, Page{Chunks: rows})
		if err != nil {
			t.Fatal(err)
		}
		if size := len(chunks) * 254; next == nil || size < MaxPageBytes || size > MaxPageBytes+254 {
			t.Fatalf("a page of %d chunks of 254-byte bounds (%d bytes), next %q: want it cut at %d bytes", len(chunks), size, next, MaxPageBytes)
		}
		all, _ := planPages(t, db, schema, 1, rows, nil)
		if !reflect.DeepEqual(all, planWhole(t, db, schema, 1)) {
			t.Fatal("the pages of long keys are not Plan's chunks")
		}
	})
}

// pagesArePlan checks that Plan's chunks of a row each tile the table
// and that the table planned in pages of size such chunks is planned in
// pages pages holding Plan's chunks.
func pagesArePlan(t *testing.T, db *sql.DB, schema *cdc.Table, size, pages int) {
	t.Helper()
	whole := planWhole(t, db, schema, 1)
	checkTiles(t, db, schema, whole)
	all, n := planPages(t, db, schema, 1, size, nil)
	if n != pages || !reflect.DeepEqual(all, whole) {
		t.Fatalf("%d pages of\n%+v\nwant %d of Plan's\n%+v", n, all, pages, whole)
	}
}

// planWhole is Plan of the table in chunks of rows.
func planWhole(t *testing.T, db *sql.DB, schema *cdc.Table, rows int) []Chunk {
	t.Helper()
	chunks, err := Plan(context.Background(), db, schema, rows)
	if err != nil {
		t.Fatal(err)
	}
	return chunks
}

// planPages plans the table in pages of at most size chunks of rows,
// calling change (if not nil) between pages, and returns the chunks and
// the number of pages. Each page must start where the last ended.
func planPages(t *testing.T, db *sql.DB, schema *cdc.Table, rows, size int, change func(page int)) (all []Chunk, n int) {
	t.Helper()
	p := Page{Chunks: size}
	for {
		chunks, next, err := PlanPage(context.Background(), db, schema, rows, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(chunks) == 0 || len(chunks) > size {
			t.Fatalf("page %d: %d chunks", n, len(chunks))
		}
		all = append(all, chunks...)
		n++
		if next == nil {
			return all, n
		}
		if n > 1000 {
			t.Fatal("the pages do not end")
		}
		if !reflect.DeepEqual(next, chunks[len(chunks)-1].To) {
			t.Fatalf("page %d: next %q, the last chunk's To %q", n, next, chunks[len(chunks)-1].To)
		}
		if change != nil {
			change(n)
		}
		p = Page{From: next, First: p.First + len(chunks), Chunks: size}
	}
}

// checkTiles checks that chunks, in order, are indexed from 0, each
// starts where the one before ended, the first and last are open, and
// MySQL finds each row of the table in exactly one of them.
func checkTiles(t *testing.T, db *sql.DB, schema *cdc.Table, chunks []Chunk) {
	t.Helper()
	table := qualified(schema)
	var total, covered int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&total); err != nil {
		t.Fatal(err)
	}
	for i, ch := range chunks {
		if ch.Index != i {
			t.Fatalf("chunk %d has index %d", i, ch.Index)
		}
		if i > 0 && !reflect.DeepEqual(ch.From, chunks[i-1].To) {
			t.Fatalf("chunk %d starts at %q, the one before ends at %q", i, ch.From, chunks[i-1].To)
		}
		cond, args, err := ch.where(schema)
		if err != nil {
			t.Fatal(err)
		}
		var c int
		if err := db.QueryRow("SELECT COUNT(*) FROM "+table+" WHERE "+cond, args...).Scan(&c); err != nil {
			t.Fatal(err)
		}
		covered += c
	}
	if chunks[0].From != nil || chunks[len(chunks)-1].To != nil || covered != total {
		t.Errorf("the chunks cover %d of %d rows (first from %q, last to %q)", covered, total, chunks[0].From, chunks[len(chunks)-1].To)
	}
}
