package tiered_test

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
	"github.com/tidemark-dev/tidemark/eventcenter/tiered"
)

// TestDuckDBReadsSegments: DuckDB reads the segments of a source as they
// are (read_parquet over the folder) and gets the events the store holds:
// keys, times, positions, operations, stored-at stamps and row bytes.
func TestDuckDBReadsSegments(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil || exec.Command("python3", "-c", "import duckdb").Run() != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("DuckDB is not installed (scripts/tools installs it: python3 -m pip install duckdb)")
		}
		t.Skip("DuckDB (python3 -m pip install duckdb) is not installed")
	}
	ctx := t.Context()
	dir := t.TempDir()
	stamp := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return stamp }
	hot := openEmbedded(t, now)
	s, err := tiered.New(tiered.Config{Hot: hot, Cold: tiered.Dir(dir), Now: now, HotWindow: time.Hour, RowGroupRows: 64, EvictGrace: tiered.EvictGraceNone})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	var evs []eventcenter.Event
	for i := range 500 {
		e := eventcenter.Event{Source: "shop.orders", Key: fmt.Sprintf("o%03d", i%97), Time: t0.Add(time.Duration(i) * 7 * time.Minute),
			Pos: eventcenter.Position{Log: 1, Offset: uint64(i)}, Op: eventcenter.OpUpdate,
			After: eventcenter.Row{"amount": eventcenter.Decimal(fmt.Sprintf("%d.50", i)), "user": int64(i % 13), "note": "x"}}
		if i%50 == 49 {
			e.Op, e.After = eventcenter.OpDelete, nil
		}
		evs = append(evs, e)
	}
	if err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	stamp = stamp.Add(2 * time.Hour)
	if rep, err := s.Tier(ctx); err != nil || rep.Events != len(evs) {
		t.Fatalf("Tier: %+v %v", rep, err)
	}

	glob := filepath.Join(dir, "segments", "shop.orders", "*", "*.parquet")
	out, err := exec.Command("python3", "-c", `import duckdb
for r in duckdb.sql("""select key, epoch_ns(time), pos_log, pos_offset, op, epoch_ns(stored_at), coalesce(hex(after), '-')
    from read_parquet('`+glob+`') order by time, pos_log, pos_offset""").fetchall():
    print(*r, sep=",")`).CombinedOutput()
	if err != nil {
		t.Fatalf("duckdb: %v\n%s", err, out)
	}
	var want []string
	for _, e := range evs {
		after := "-"
		if e.After != nil {
			after = strings.ToUpper(hex.EncodeToString(codec.AppendRow(nil, e.After)))
		}
		want = append(want, fmt.Sprintf("%s,%d,%d,%d,%s,%d,%s", e.Key, e.Time.UnixNano(), e.Pos.Log, e.Pos.Offset, e.Op, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano(), after))
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if !slices.Equal(got, want) {
		n := min(len(got), len(want), 3)
		t.Fatalf("DuckDB read %d rows, want %d; first rows\n got %q\nwant %q", len(got), len(want), got[:n], want[:n])
	}
	t.Logf("DuckDB read the %d events back from %s", len(got), glob)
}
