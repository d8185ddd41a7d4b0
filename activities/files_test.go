package activities_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/internal/backfilltest"
	"github.com/tidemark-dev/tidemark/job"
)

// parquetRow is a row of a backfill's Parquet object (of the fixture job).
type parquetRow struct {
	ID           string    `parquet:"id"`
	Job          string    `parquet:"job"`
	JobVersion   string    `parquet:"job_version"`
	ParamVersion int64     `parquet:"param_version"`
	Entity       string    `parquet:"entity"`
	Time         time.Time `parquet:"time,timestamp(nanosecond)"`
	TriggerKey   string    `parquet:"trigger_key"`
	User         *string   `parquet:"user,optional"`
	Amount       *int64    `parquet:"amount,optional"`
	Limit        *int64    `parquet:"limit,optional"`
	Score        *int64    `parquet:"score,optional"`
}

// A Parquet file sink holds the records a JSON Lines one holds; when the
// backfill ends, the manifest lists every object with the inputs, versions
// and counts, then _SUCCESS marks it done. DuckDB reads the objects back
// when it is installed (pip install duckdb); parquet-go always does.
func TestParquetSinkManifestAndSuccess(t *testing.T) {
	_, a, _ := fixture(t, 2000)
	jsonl, pq := t.TempDir(), t.TempDir()
	var results [2]activities.ChunkResult
	for i, o := range []activities.Options{{Sink: "file://" + jsonl}, {Sink: "file://" + pq, Format: "parquet"}} {
		o.SegmentEvents = 700
		for c := range 2 {
			in := activities.ChunkInput{Backfill: "bf-pq", Job: backfilltest.JobName, Index: c, Options: o,
				From: backfilltest.T0.Add(time.Duration(c) * span / 2), To: backfilltest.T0.Add(time.Duration(c+1) * span / 2)}
			r, _, err := runChunk(t, a, in, nil)
			if err != nil {
				t.Fatal(err)
			}
			results[i].Outputs += r.Outputs
			results[i].Written += r.Written
		}
	}
	if results[1].Written != results[0].Written || results[1].Written == 0 || results[1].Written != results[1].Outputs {
		t.Fatalf("written: jsonl %+v, parquet %+v", results[0], results[1])
	}
	want, _, err := backfilltest.ReadDir(jsonl)
	if err != nil {
		t.Fatal(err)
	}
	// The metadata columns of every record, as DuckDB is to read them
	// from the Parquet objects below (some dictionary or delta encoded).
	var meta []string
	for _, r := range want {
		meta = append(meta, fmt.Sprintf("%s|%s|%s|%d|%s|%d|%d", r.ID, r.Job, r.JobVersion, r.ParamVersion, r.Trigger.Source, r.Trigger.Pos.Log, r.Trigger.Pos.Offset))
	}
	slices.Sort(meta)

	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	summary := fmt.Sprintf(`{"written":%d}`, results[1].Written)
	v, err := env.ExecuteActivity(a.BackfillFinish, activities.FinishInput{Backfill: "bf-pq", Job: backfilltest.JobName,
		Options: activities.Options{Sink: "file://" + pq, Format: "parquet"}, Status: "done", Input: json.RawMessage(`{"job":"test-score"}`), Summary: json.RawMessage(summary)})
	if err != nil {
		t.Fatal(err)
	}
	var res activities.FinishResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(pq, "bf-pq", backfilltest.JobName)
	if _, err := os.Stat(filepath.Join(dir, activities.SuccessName)); err != nil {
		t.Fatalf("no _SUCCESS: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, activities.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk activities.Manifest
	if err := json.Unmarshal(b, &onDisk); err != nil {
		t.Fatal(err)
	}
	var counts struct{ Written int }
	if err := json.Unmarshal(onDisk.Summary, &counts); err != nil || counts.Written != results[1].Written ||
		onDisk.Status != "done" || onDisk.Format != "parquet" || onDisk.JobVersion != "1" || len(onDisk.Objects) != res.Objects || !res.Success || res.Manifest != "bf-pq/test-score/_manifest.json" {
		t.Fatalf("manifest %s", b)
	}

	// The objects, read back with parquet-go.
	var got []job.Record
	var names []string
	for _, o := range onDisk.Objects {
		names = append(names, o.Name)
		if !strings.HasSuffix(o.Name, ".parquet") || o.Size == 0 {
			t.Fatalf("object %+v", o)
		}
		rows, err := parquet.ReadFile[parquetRow](filepath.Join(pq, filepath.FromSlash(o.Name)))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			got = append(got, job.Record{ID: r.ID, Job: r.Job, JobVersion: r.JobVersion, Entity: r.Entity,
				Trigger:  eventcenter.ID{Source: backfilltest.Apps, Key: r.TriggerKey, Time: r.Time},
				Features: eventcenter.Row{"user": *r.User, "amount": *r.Amount, "limit": *r.Limit, "score": *r.Score}})
		}
	}
	if !slices.IsSorted(names) || len(names) != 4 {
		t.Fatalf("objects %v, want 2 chunks × 2 segments", names)
	}
	for i := range want {
		want[i].Trigger.Pos = eventcenter.Position{} // not compared: Parquet has them as columns
	}
	for i := range got {
		got[i].ParamVersion = want[0].ParamVersion
	}
	if d := backfilltest.Diff(got, want); len(d) > 0 {
		t.Fatalf("parquet records differ from JSON Lines:\n%s", strings.Join(d, "\n"))
	}

	// DuckDB, as an analyst would.
	if _, err := exec.LookPath("python3"); err != nil || exec.Command("python3", "-c", "import duckdb").Run() != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("DuckDB is not installed (scripts/tools installs it: python3 -m pip install duckdb)")
		}
		t.Log("DuckDB (python3 -m pip install duckdb) is not installed: read back with parquet-go only")
		return
	}
	out, err := exec.Command("python3", "-c", `import duckdb, sys
r = duckdb.sql("select count(*), count(distinct id), sum(score), min(time)::varchar from read_parquet('`+dir+`/chunk-*.parquet')").fetchall()[0]
print(*r, sep=",")
for (m,) in duckdb.sql("select concat_ws('|', id, job, job_version, param_version, trigger_source, trigger_log, trigger_offset) m from read_parquet('`+dir+`/chunk-*.parquet') order by m").fetchall():
    print(m)`).CombinedOutput()
	if err != nil {
		t.Fatalf("duckdb: %v\n%s", err, out)
	}
	first, rest, _ := strings.Cut(string(out), "\n")
	if got := strings.Split(strings.TrimSpace(rest), "\n"); !slices.Equal(got, meta) {
		t.Fatalf("duckdb read the metadata columns %q…, want %q…", got[:min(3, len(got))], meta[:min(3, len(meta))])
	}
	out = []byte(first)
	var sum int64
	for _, r := range want {
		sum += int64(r.Features["score"].(float64)) // JSON Lines read back: float64
	}
	if wantOut := fmt.Sprintf("%d,%d,%d,%s", len(want), len(want), sum, "2026-11-01 00:00:00+00"); strings.TrimSpace(string(out)) != wantOut {
		t.Fatalf("duckdb read %s, want %s", out, wantOut)
	}
	t.Logf("DuckDB read back %s", strings.TrimSpace(string(out)))
}

// appsSample writes a CSV sample table of the applications among evs, a
// row each a second after it was made, with a label column of label's value
// unless label is "", and returns its path and text.
func appsSample(t *testing.T, evs []eventcenter.Event, label string) (path, text string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("key,time")
	if label != "" {
		b.WriteString(",label")
	}
	b.WriteString("\n")
	for _, e := range evs {
		if e.Source == backfilltest.Apps {
			fmt.Fprintf(&b, "%s,%s", e.Key, e.Time.Add(time.Second).Format(time.RFC3339Nano))
			if label != "" {
				b.WriteString("," + label)
			}
			b.WriteString("\n")
		}
	}
	path = filepath.Join(t.TempDir(), "sample.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b.String()
}

// A sample table changed after the plan fails its chunks as
// SampleChanged (non-retryable), instead of mixing two tables.
func TestSampleChangedMidBackfill(t *testing.T) {
	_, a, evs := fixture(t, 200)
	path, text := appsSample(t, evs, "")
	plan := planSample(t, a, activities.PlanInput{Job: backfilltest.JobName, Sample: path, ChunkRows: 50})
	sp := plan.Sample
	if sp.Version == "" || sp.Size != int64(len(text)) || sp.Latest.IsZero() {
		t.Fatalf("plan %+v", sp)
	}
	if c := sp.Chunk(1); c.End != sp.Offsets[2] || c.Version != sp.Version {
		t.Fatalf("chunk 1 %+v: want it to end where chunk 2 starts", c)
	}
	if _, _, err := runChunk(t, a, activities.ChunkInput{Backfill: "bf-pin", Job: backfilltest.JobName, Index: 0, Sample: sp.Chunk(0)}, nil); err != nil {
		t.Fatal(err)
	}
	// The table is replaced (same rows, one more).
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(path, []byte(text+"app-1,2026-11-01T00:00:00Z\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := runChunk(t, a, activities.ChunkInput{Backfill: "bf-pin", Job: backfilltest.JobName, Index: 1, Sample: sp.Chunk(1)}, nil)
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != activities.ErrTypeSampleChanged || !ae.NonRetryable() {
		t.Fatalf("after the table changed: %v, want SampleChanged", err)
	}
}

// A local table written over in place while a chunk reads it (same name,
// same size: the open's check passes) fails the chunk as SampleChanged at
// its next segment, instead of mixing the two tables' rows.
func TestSampleWrittenOverMidChunk(t *testing.T) {
	_, a, evs := fixture(t, 200)
	path, text := appsSample(t, evs, "A")
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	sp := planOf(t, env, a, activities.PlanInput{Job: backfilltest.JobName, Sample: path, ChunkRows: 1000}).Sample
	if sp.Rows < 30 || len(sp.Offsets) != 1 {
		t.Fatalf("plan %+v: want one chunk of 30 rows or more", sp)
	}
	segments := 0
	a.OnSegment = func(activities.ChunkInput, activities.Cursor) {
		if segments++; segments == 1 { // the other table, as large
			if err := os.WriteFile(path, []byte(strings.ReplaceAll(text, ",A\n", ",B\n")), 0o644); err != nil {
				t.Error(err)
			}
			later := time.Now().Add(time.Hour)
			if err := os.Chtimes(path, later, later); err != nil { // a new version even where mtimes are coarse
				t.Error(err)
			}
		}
	}
	env = s.NewTestActivityEnvironment() // runChunk would set its own OnSegment
	env.RegisterActivity(a)
	_, err := env.ExecuteActivity(a.BackfillChunk, activities.ChunkInput{Backfill: "bf-over", Job: backfilltest.JobName, Sample: sp.Chunk(0),
		Options: activities.Options{Sink: "file://" + t.TempDir(), SegmentEvents: 10}})
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != activities.ErrTypeSampleChanged || !ae.NonRetryable() {
		t.Fatalf("a table written over after the first segment: %v (%d segments), want SampleChanged", err, segments)
	}
	if segments != 1 {
		t.Fatalf("%d segments committed, want the first only", segments)
	}
}

// A plan too large for MaxChunks is refused.
func TestPlanRefusesTooManyChunks(t *testing.T) {
	_, a, _ := fixture(t, 10)
	if testing.Short() {
		t.Skip("writes a table of a million rows")
	}
	var b strings.Builder
	b.WriteString("key,time\n")
	for range activities.MaxChunks + 1 {
		b.WriteString("k,2026-11-01\n")
	}
	path := filepath.Join(t.TempDir(), "big.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err := env.ExecuteActivity(a.BackfillPlan, activities.PlanInput{Job: backfilltest.JobName, Sample: path, ChunkRows: 1})
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != activities.ErrTypeTooManyChunks || !strings.Contains(err.Error(), "more than 1000000 chunks") {
		t.Fatalf("%v, want TooManyChunks", err)
	}
}

// Backfill IDs that differ only where a folder name cannot hold the
// character ("team/x" and "team_x", "a\\b" and "a_b") get folders of
// their own: clearing one (the start of a backfill that replaces an
// earlier one of its ID) leaves the other's objects, and object names
// never share a folder.
func TestFileSinkFolderPerBackfillID(t *testing.T) {
	_, a, _ := fixture(t, 500)
	out := t.TempDir()
	o := activities.Options{Sink: "file://" + out}
	in := activities.ChunkInput{Backfill: "team/x", Job: backfilltest.JobName, Options: o, From: backfilltest.T0, To: backfilltest.T0.Add(span)}
	if _, _, err := runChunk(t, a, in, nil); err != nil {
		t.Fatal(err)
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(a.BackfillClear, activities.ClearInput{Backfill: "team_x", Job: backfilltest.JobName, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	var removed int
	if err := v.Get(&removed); err != nil {
		t.Fatal(err)
	}
	if removed != 0 {
		t.Fatalf("clearing backfill team_x removed %d objects of backfill team/x", removed)
	}
	folder := func(id string) string {
		name := activities.ObjectName(id, backfilltest.JobName, 0, 0, "jsonl")
		return name[:strings.Index(name, "/")]
	}
	seen := map[string]string{}
	for _, id := range []string{"team/x", "team_x", `a\b`, "a_b", "a%2Fb", "a/b", "..", "."} {
		f := folder(id)
		if other, ok := seen[f]; ok {
			t.Errorf("backfills %q and %q share the folder %q", other, id, f)
		}
		seen[f] = id
		if f == "." || f == ".." || strings.ContainsAny(f, `/\`) {
			t.Errorf("backfill %q: folder %q is not one path segment of its own", id, f)
		}
	}
}

// writeSampleTables writes the same sample table of rows rows (key "k<i>",
// time 2026-11-01, label i%2) as CSV and as Parquet in row groups of
// 1 000 rows, in a folder of the test's, and returns their paths and the
// CSV's text.
func writeSampleTables(t *testing.T, rows int) (csvPath, csvText, pqPath string) {
	t.Helper()
	dir := t.TempDir()
	type sampleRow struct {
		Key   string    `parquet:"key"`
		Time  time.Time `parquet:"time,timestamp(microsecond)"`
		Label int64     `parquet:"label"`
	}
	var b strings.Builder
	b.WriteString("key,time,label\n")
	prows := make([]sampleRow, rows)
	for i := range rows {
		fmt.Fprintf(&b, "k%d,2026-11-01,%d\n", i, i%2)
		prows[i] = sampleRow{Key: fmt.Sprintf("k%d", i), Time: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Label: int64(i % 2)}
	}
	csvPath, csvText, pqPath = filepath.Join(dir, "sample.csv"), b.String(), filepath.Join(dir, "sample.parquet")
	if err := os.WriteFile(csvPath, []byte(csvText), 0o644); err != nil {
		t.Fatal(err)
	}
	writeParquetFile(t, pqPath, prows, parquet.MaxRowsPerRowGroup(1000))
	return csvPath, csvText, pqPath
}

// Without rows per chunk, a plan cuts a table into about the chunks it is
// asked for, of about DefaultChunkRows to MaxSizedChunkRows rows: a CSV
// table in multiples of DefaultChunkRows, a Parquet table in whole row
// groups. Rows per chunk, when given, win.
func TestPlanSizesChunks(t *testing.T) {
	_, a, _ := fixture(t, 10)
	const rows = 150_000
	csvPath, csvText, pqPath := writeSampleTables(t, rows)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	tens := func(n int) []int { return slices.Repeat([]int{10_000}, n) }
	for _, c := range []struct {
		path              string
		chunkRows, chunks int
		want              []int // rows of each chunk
	}{
		// 150 000 over 2: CSV in 8 chunks of 10 000 and the rest, Parquet
		// at the row group nearest the half.
		{csvPath, 0, 2, []int{80_000, 70_000}},
		{pqPath, 0, 2, []int{75_000, 75_000}},
		// Over 7: each chunk ends at the group whose middle row is nearest
		// the end of the next share: six of 2/13 of the rows (23 076.9,
		// 46 153.8, ...), the last one, half as large, of 1/13 (a share of
		// 21 428 rows: its half is DefaultChunkRows or more).
		{pqPath, 0, 7, []int{23_000, 23_000, 23_000, 23_000, 23_000, 23_000, 12_000}},
		// Over 11: 15 CSV chunks of 10 000 joined two at a time make 8,
		// nearer 11 than the 15 not joined.
		{csvPath, 0, 11, append(slices.Repeat([]int{20_000}, 7), 10_000)},
		// Over 3: joined 5 or 6 at a time both make 3; the evener 5.
		{csvPath, 0, 3, []int{50_000, 50_000, 50_000}},
		// Many chunks asked: DefaultChunkRows a chunk, not fewer.
		{csvPath, 0, 32, tens(15)},
		{pqPath, 0, 32, tens(15)},
		// One chunk asked: MaxSizedChunkRows a chunk at most.
		{csvPath, 0, 1, []int{80_000, 70_000}},
		{pqPath, 0, 1, []int{75_000, 75_000}},
		// Rows per chunk given: the chunk count is not consulted.
		{csvPath, 30_000, 2, []int{30_000, 30_000, 30_000, 30_000, 30_000}},
		// Neither: DefaultChunkRows.
		{pqPath, 0, 0, tens(15)},
		{csvPath, 0, 0, tens(15)},
	} {
		p := planOf(t, env, a, activities.PlanInput{Job: backfilltest.JobName, Sample: c.path, ChunkRows: c.chunkRows, Chunks: c.chunks})
		var got []int
		total := 0
		for i := range p.Sample.Offsets {
			ch := p.Sample.Chunk(i)
			if ch.FirstRow != total {
				t.Errorf("%s, %d rows, %d chunks: chunk %d starts at row %d, want %d", filepath.Base(c.path), c.chunkRows, c.chunks, i, ch.FirstRow, total)
			}
			// The chunk's bytes start at its first row.
			if ch.Format == "" && !strings.HasPrefix(csvText[ch.Offset:], fmt.Sprintf("k%d,", ch.FirstRow)) {
				t.Errorf("%s, %d rows, %d chunks: chunk %d's bytes start at %.12q, want row %d", filepath.Base(c.path), c.chunkRows, c.chunks, i, csvText[ch.Offset:], ch.FirstRow)
			}
			if ch.Format != "" && (ch.FirstGroup*1000 != ch.FirstRow || ch.RowGroups*1000 < ch.Rows) {
				t.Errorf("%s, %d rows, %d chunks: chunk %d is row groups %d+%d, want the groups of rows %d+%d", filepath.Base(c.path), c.chunkRows, c.chunks, i, ch.FirstGroup, ch.RowGroups, ch.FirstRow, ch.Rows)
			}
			got = append(got, ch.Rows)
			total += ch.Rows
		}
		if !slices.Equal(got, c.want) || p.Sample.Rows != rows {
			t.Errorf("%s, %d rows, %d chunks: chunks of %v rows (%d in all), want %v", filepath.Base(c.path), c.chunkRows, c.chunks, got, p.Sample.Rows, c.want)
		}
	}
}

// A sized plan of a Parquet table whose row groups differ in size: no
// chunk of less than half a share while the next group fits, none above
// MaxSizedChunkRows unless one group is, and a chunk ends at the group
// whose middle row is nearest the next share.
func TestPlanSizesUnevenRowGroups(t *testing.T) {
	_, a, _ := fixture(t, 10)
	dir := t.TempDir()
	type row struct {
		Key  string    `parquet:"key"`
		Time time.Time `parquet:"time,timestamp(microsecond)"`
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	for i, c := range []struct {
		groups []int // rows of each row group
		chunks int
		want   []int // rows of each chunk
	}{
		{[]int{1, 50_000, 3, 70_000}, 8, []int{50_001, 70_003}},
		{append([]int{60_000}, slices.Repeat([]int{1000}, 60)...), 8, []int{60_000, 15_000, 15_000, 15_000, 15_000}},
		{[]int{60_000, 60_000, 60_000}, 1, []int{60_000, 60_000, 60_000}},
		{[]int{150_000, 1000}, 1, []int{150_000, 1000}},
		// 25 000 rows a chunk asked: six shares of 28 571 and two of half
		// that (ends at 28 571, 57 142, ... 171 428, then 185 714 and
		// 200 000); a group's middle row on a share's end starts the next
		// chunk.
		{slices.Repeat([]int{10_000}, 20), 8, []int{30_000, 30_000, 30_000, 20_000, 30_000, 30_000, 20_000, 10_000}},
		// 15 000 rows a chunk asked: halves would be less than
		// DefaultChunkRows, so all shares are equal.
		{slices.Repeat([]int{5_000}, 24), 8, []int{15_000, 15_000, 15_000, 15_000, 15_000, 15_000, 15_000, 15_000}},
		// 100 000 rows a chunk (MaxSizedChunkRows): whole shares beside
		// halves would be larger than that, so all are equal.
		{slices.Repeat([]int{10_000}, 160), 16, slices.Repeat([]int{100_000}, 16)},
		// 87 500 rows a chunk asked (1 400 000 over 16): the whole shares
		// beside the halves would be 100 000, the halves 50 000.
		{slices.Repeat([]int{10_000}, 140), 16, append(slices.Repeat([]int{100_000}, 12), 50_000, 50_000, 50_000, 50_000)},
		// The same in groups of 20 000: a chunk of a half share is cut at
		// the group whose middle row is on its end, with 40 000 rows (not
		// less than half its share; less than half a whole one).
		{slices.Repeat([]int{20_000}, 70), 16, append(slices.Repeat([]int{100_000}, 12), 40_000, 60_000, 40_000, 60_000)},
	} {
		path := filepath.Join(dir, fmt.Sprintf("t%d.parquet", i))
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		w := parquet.NewGenericWriter[row](f, parquet.MaxRowsPerRowGroup(1_000_000))
		for _, n := range c.groups {
			if _, err := w.Write(slices.Repeat([]row{{Key: "k", Time: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}}, n)); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil { // ends the row group
				t.Fatal(err)
			}
		}
		if err := errors.Join(w.Close(), f.Close()); err != nil {
			t.Fatal(err)
		}
		p := planOf(t, env, a, activities.PlanInput{Job: backfilltest.JobName, Sample: path, Chunks: c.chunks})
		if p.Sample.RowGroups != len(c.groups) {
			t.Fatalf("groups %v: the file has %d row groups", c.groups, p.Sample.RowGroups)
		}
		var got []int
		for i := range p.Sample.Offsets {
			got = append(got, p.Sample.Chunk(i).Rows)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("groups %v in %d chunks: chunks of %v rows, want %v", c.groups, c.chunks, got, c.want)
		}
	}
}

// A table of one chunk reports its own rows as the rows per chunk (what
// the summary and the manifest say), sized or not, CSV or Parquet.
func TestPlanOneChunkReportsItsRows(t *testing.T) {
	_, a, _ := fixture(t, 10)
	const rows = 4_999
	csvPath, _, pqPath := writeSampleTables(t, rows)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	for _, path := range []string{csvPath, pqPath} {
		for _, in := range []activities.PlanInput{{Chunks: 16}, {ChunkRows: 50_000}, {}} {
			in.Job, in.Sample = backfilltest.JobName, path
			p := planOf(t, env, a, in).Sample
			if len(p.Offsets) != 1 || p.ChunkRows != rows || p.Chunk(0).Rows != rows {
				t.Errorf("%s, %d rows a chunk, %d chunks: %d chunks, %d rows a chunk, first of %d rows; want one of %d", filepath.Base(path), in.ChunkRows, in.Chunks,
					len(p.Offsets), p.ChunkRows, p.Chunk(0).Rows, rows)
			}
		}
	}
}

// A sample row whose key begins or ends with white space is matched as
// written (its time is trimmed, its key is not), and counted, with the
// first such row named, so that the backfill can warn of it.
func TestSampleSpacedKeysCounted(t *testing.T) {
	_, a, evs := fixture(t, 200)
	path, text := appsSample(t, evs, "")
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n") // the header, then a row per application
	if len(lines) < 5 {
		t.Fatalf("sample of %d lines", len(lines))
	}
	key, rest, _ := strings.Cut(lines[3], ",") // row 2
	lines[3] = " " + key + "," + rest
	key, rest, _ = strings.Cut(lines[5], ",") // row 4
	lines[5] = key + "\t," + rest
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plan := planSample(t, a, activities.PlanInput{Job: backfilltest.JobName, Sample: path})
	res, _, err := runChunk(t, a, activities.ChunkInput{Backfill: "bf-spaced", Job: backfilltest.JobName, Sample: plan.Sample.Chunk(0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("row 2: %q", " "+strings.TrimSpace(strings.Split(lines[3], ",")[0])); res.SpacedKeys != 2 || res.SpacedKey != want || res.Missing != 2 {
		t.Fatalf("spaced keys %d (%s), missing %d; want 2 (%s), both without state", res.SpacedKeys, res.SpacedKey, res.Missing, want)
	}
}
