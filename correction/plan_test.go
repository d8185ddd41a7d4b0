package correction

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"reflect"
	"testing"

	"github.com/tidemark-dev/tidemark/internal/testenv"
)

// TestPlanPages: a table of a composite key planned in pages of 3 chunks
// gets Plan's chunks, page by page, with the indexes running on; and the
// pages of a table that changes between them still cover every key once.
func TestPlanPages(t *testing.T) {
	ctx := context.Background()
	cfg := testenv.MySQL(t)
	db, err := Open(cfg.Addr, cfg.User, cfg.Password)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := cfg.DB + "_pages_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		db.Exec("DROP DATABASE " + name)
		db.Close()
	})
	for _, q := range []string{"CREATE DATABASE " + name, "CREATE TABLE " + name + ".t (a VARCHAR(4) NOT NULL, b INT NOT NULL, PRIMARY KEY (a, b))"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	insert := func(a string, b int) {
		t.Helper()
		if _, err := db.Exec(fmt.Sprintf("INSERT INTO %s.t VALUES ('%s', %d)", name, a, b)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 53 {
		insert([]string{"x", "y"}[i%2], i)
	}
	schema, err := LoadSchema(ctx, db, Target{Source: "mysql.pages.t", Database: name, Table: "t"})
	if err != nil {
		t.Fatal(err)
	}
	const rows = 5
	whole, err := Plan(ctx, db, schema, rows)
	if err != nil {
		t.Fatal(err)
	}
	if len(whole) != 11 {
		t.Fatalf("Plan: %d chunks, want 11", len(whole))
	}
	pages := func(change func(page int)) (all []Chunk, n int) {
		t.Helper()
		p := Page{Chunks: 3}
		for {
			chunks, next, err := PlanPage(ctx, db, schema, rows, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(chunks) == 0 || len(chunks) > p.Chunks {
				t.Fatalf("page %d: %d chunks", n, len(chunks))
			}
			all = append(all, chunks...)
			n++
			if next == nil {
				return all, n
			}
			if !reflect.DeepEqual(next, chunks[len(chunks)-1].To) {
				t.Fatalf("page %d: next %q, the last chunk's To %q", n, next, chunks[len(chunks)-1].To)
			}
			if change != nil {
				change(n)
			}
			p = Page{From: next, First: p.First + len(chunks), Chunks: p.Chunks}
		}
	}
	all, n := pages(nil)
	if n != 4 || !reflect.DeepEqual(all, whole) {
		t.Fatalf("%d pages of\n%+v\nwant 4 of Plan's\n%+v", n, all, whole)
	}

	// Keys inserted between pages, before and after where the next page
	// starts, are each in exactly one chunk: the pages still tile the key
	// space.
	changed, _ := pages(func(page int) {
		insert("a", 1000+page) // before every page's start
		insert("x", 1000+page) // inside the pages to come ("x" rows run to 52)
		insert("z", page)      // after every row
	})
	var total, covered int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + name + ".t").Scan(&total); err != nil {
		t.Fatal(err)
	}
	for i, ch := range changed {
		if ch.Index != i {
			t.Fatalf("chunk %d has index %d", i, ch.Index)
		}
		if i > 0 && !reflect.DeepEqual(ch.From, changed[i-1].To) {
			t.Fatalf("chunk %d starts at %q, the one before ends at %q", i, ch.From, changed[i-1].To)
		}
		cond, args, err := ch.where(schema)
		if err != nil {
			t.Fatal(err)
		}
		var c int
		if err := db.QueryRow("SELECT COUNT(*) FROM "+name+".t WHERE "+cond, args...).Scan(&c); err != nil {
			t.Fatal(err)
		}
		covered += c
	}
	if changed[0].From != nil || changed[len(changed)-1].To != nil || covered != total {
		t.Errorf("the chunks cover %d of %d rows (first from %q, last to %q)", covered, total, changed[0].From, changed[len(changed)-1].To)
	}
}
