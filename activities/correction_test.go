package activities

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/correction"
	"github.com/tidemark-dev/tidemark/internal/testenv"
)

// TestCorrectionSharesItsCorrector: every activity of a worker's
// Correction uses one Corrector, whose index of a source (a replay of the
// whole source) serves all of a run's chunks on that worker. A Corrector
// per activity rebuilt the index for every chunk.
func TestCorrectionSharesItsCorrector(t *testing.T) {
	a := &Correction{}
	first := a.corrector()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if c := a.corrector(); c != first {
				t.Error("a second Corrector was made")
			}
		})
	}
	wg.Wait()
}

// TestCorrectionSchemaReused: chunks reuse a table's schema read less than
// schemaTTL ago, and read it again after: a column added meanwhile is seen
// by the chunks after, and a dropped table fails them as not there.
func TestCorrectionSchemaReused(t *testing.T) {
	ctx := context.Background()
	cfg := testenv.MySQL(t)
	db, err := correction.Open(cfg.Addr, cfg.User, cfg.Password)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	name := cfg.DB + "_schema_" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	for _, q := range []string{"CREATE DATABASE " + name, "CREATE TABLE " + name + ".t (id INT PRIMARY KEY)"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	defer db.Exec("DROP DATABASE " + name)
	a := &Correction{DB: db}
	target := CorrectionTarget{Source: "mysql.schema.t", Database: name, Table: "t"}
	first, err := a.schema(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("ALTER TABLE " + name + ".t ADD COLUMN v INT"); err != nil {
		t.Fatal(err)
	}
	if again, err := a.schema(ctx, target); err != nil || again != first {
		t.Fatalf("within %v: a schema read anew (%v)", schemaTTL, err)
	}
	time.Sleep(schemaTTL)
	later, err := a.schema(ctx, target)
	if err != nil || len(later.Columns) != 2 {
		t.Fatalf("after %v: %+v (%v), want the added column", schemaTTL, later, err)
	}
	if _, err := db.Exec("DROP TABLE " + name + ".t"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(schemaTTL)
	if _, err := a.schema(ctx, target); !errors.Is(err, correction.ErrNoTable) {
		t.Fatalf("a dropped table: %v, want ErrNoTable", err)
	}
}
