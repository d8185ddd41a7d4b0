package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tsuna/gohbase"
	"github.com/tsuna/gohbase/hrpc"

	"github.com/tidemark-dev/tidemark/internal/testenv"
)

const hbaseSmokeTable = "tidemark_smoke"

// TestHBaseSmoke runs against the real HBase of the harness with gohbase: the admin client
// creates the table if it is absent, then rows are put, read back with a get and with a scan.
func TestHBaseSmoke(t *testing.T) {
	zk := testenv.HBaseZK(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	admin := gohbase.NewAdminClient(zk)
	ltn, err := hrpc.NewListTableNames(ctx, hrpc.ListRegex("^"+hbaseSmokeTable+"$"))
	if err != nil {
		t.Fatal(err)
	}
	names, err := admin.ListTableNames(ltn)
	if err != nil {
		t.Fatalf("list tables via %s: %v", zk, err)
	}
	if len(names) == 0 {
		ct := hrpc.NewCreateTable(ctx, []byte(hbaseSmokeTable), map[string]map[string]string{"cf": nil})
		// another run may have created it meanwhile
		if err := admin.CreateTable(ct); err != nil && !strings.Contains(err.Error(), "TableExistsException") {
			t.Fatalf("create table %s: %v", hbaseSmokeTable, err)
		}
	}

	client := gohbase.NewClient(zk)
	defer client.Close()

	prefix := fmt.Sprintf("smoke-%d-", time.Now().UnixNano())
	for i := 0; i < 3; i++ {
		row := fmt.Sprintf("%s%d", prefix, i)
		put, err := hrpc.NewPutStr(ctx, hbaseSmokeTable, row, map[string]map[string][]byte{
			"cf": {"n": []byte(fmt.Sprint(i)), "row": []byte(row)},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Put(put); err != nil {
			t.Fatalf("put %s: %v", row, err)
		}
	}

	get, err := hrpc.NewGetStr(ctx, hbaseSmokeTable, prefix+"1",
		hrpc.Families(map[string][]string{"cf": {"n"}}))
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Get(get)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if len(res.Cells) != 1 || string(res.Cells[0].Value) != "1" {
		t.Fatalf("get %s1 cf:n returned %d cells %v, want the value 1", prefix, len(res.Cells), res.Cells)
	}

	scan, err := hrpc.NewScanRangeStr(ctx, hbaseSmokeTable, prefix, prefix+"~")
	if err != nil {
		t.Fatal(err)
	}
	sc := client.Scan(scan)
	defer sc.Close()
	var rows []string
	for {
		r, err := sc.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		if len(r.Cells) != 2 {
			t.Fatalf("scanned row %s has %d cells, want 2", r.Cells[0].Row, len(r.Cells))
		}
		rows = append(rows, string(r.Cells[0].Row))
	}
	want := []string{prefix + "0", prefix + "1", prefix + "2"}
	if strings.Join(rows, ",") != strings.Join(want, ",") {
		t.Fatalf("scan returned rows %v, want %v", rows, want)
	}
}
