package activities_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/internal/backfilltest"
	"github.com/tidemark-dev/tidemark/job"
)

// trainingSample is a sample table row: "id" is also an output column, so
// the training set carries it as "sample_id".
type trainingSample struct {
	RowID int64     `parquet:"row_id"`
	Key   string    `parquet:"key"`
	Time  time.Time `parquet:"time,timestamp(microsecond)"`
	Label int64     `parquet:"label"`
	ID    *string   `parquet:"id,optional"`
}

// trainingOut is a row of a training set written as Parquet.
type trainingOut struct {
	ID       string    `parquet:"id"`
	Key      string    `parquet:"trigger_key"`
	Time     time.Time `parquet:"time,timestamp(nanosecond)"`
	Bal      *float64  `parquet:"bal,optional"`
	RowID    *int64    `parquet:"row_id,optional"`
	Label    *int64    `parquet:"label,optional"`
	SampleID *string   `parquet:"sample_id,optional"`
}

func ptr[T any](v T) *T { return &v }

// writeParquetFile writes rows to a Parquet file at path.
func writeParquetFile[T any](t testing.TB, path string, rows []T, opts ...parquet.WriterOption) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[T](f, opts...)
	if _, err := w.Write(rows); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := errors.Join(w.Close(), f.Close()); err != nil {
		t.Fatal(err)
	}
}

// TestTrainingSet: a sample-table backfill to a file sink writes one row
// per sample row, in order, whatever the chunks and segments: the job's
// features as of the row's time, or nulls where the key has no state then
// (unknown, not yet inserted, deleted), with the table's other columns
// carried through; two rows of one key and time are two rows. The counts
// say rows / with state / without, and a row without state is no error.
// The same comes out whether the rows' state is prefetched (the source's
// watermark covers the rows) or read row by row (it does not), from a
// Parquet table or the same table as CSV.
func TestTrainingSet(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	const src = "t.acc"
	evs := []eventcenter.Event{
		{Source: src, Key: "a", Time: at(1), Pos: eventcenter.Position{Log: 1, Offset: 1}, Op: eventcenter.OpInsert, After: eventcenter.Row{"bal": 1.0}},
		{Source: src, Key: "b", Time: at(2), Pos: eventcenter.Position{Log: 1, Offset: 2}, Op: eventcenter.OpInsert, After: eventcenter.Row{"bal": 2.0}},
		{Source: src, Key: "a", Time: at(3), Pos: eventcenter.Position{Log: 1, Offset: 3}, Op: eventcenter.OpUpdate, After: eventcenter.Row{"bal": 3.0}},
		{Source: src, Key: "b", Time: at(4), Pos: eventcenter.Position{Log: 1, Offset: 4}, Op: eventcenter.OpDelete},
	}
	rows := []trainingSample{
		{0, "a", at(0), 1, nil}, // before a existed
		{1, "a", at(1), 0, ptr("x1")},
		{2, "a", at(2), 1, nil},
		{3, "c", at(2), 0, ptr("x3")}, // unknown
		{4, "b", at(3), 1, nil},
		{5, "a", at(3), 0, ptr("x5")},
		{6, "a", at(3), 1, ptr("x6")}, // the same key and time again
		{7, "b", at(5), 0, nil},       // deleted
		{8, "a", at(5), 1, ptr("x8")},
	}
	wantBal := []*float64{nil, ptr(1.0), ptr(1.0), nil, ptr(2.0), ptr(3.0), ptr(3.0), nil, ptr(3.0)}

	dir := t.TempDir()
	pq := filepath.Join(dir, "sample.parquet")
	writeParquetFile(t, pq, rows, parquet.MaxRowsPerRowGroup(2))
	var b strings.Builder
	b.WriteString("row_id,key,time,label,id\n")
	for _, r := range rows {
		id := ""
		if r.ID != nil {
			id = *r.ID
		}
		fmt.Fprintf(&b, "%d,%s,%s,%d,%s\n", r.RowID, r.Key, r.Time.Format(time.RFC3339Nano), r.Label, id)
	}
	csvPath := filepath.Join(dir, "sample.csv")
	if err := os.WriteFile(csvPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	j := job.MustNew("acc", func(c *job.Context) (eventcenter.Row, error) {
		if tr := c.Trigger().After; tr != nil {
			tr["bal"] = -3.0 // before the fetch: the fetch must not see it
		}
		r, err := c.Get(src, c.Trigger().Key)
		if err != nil {
			return nil, err
		}
		out := eventcenter.Row{"bal": r["bal"]}
		// A logic may change the rows it reads; no other run's rows
		// change (rows 5 and 6 read the same state).
		r["bal"] = -1.0
		if tr := c.Trigger().After; tr != nil {
			tr["bal"] = -2.0
		}
		return out, nil
	}, job.Trigger(src))

	for _, tc := range []struct {
		name      string
		sample    string
		watermark bool
	}{{"parquet/prefetched", pq, true}, {"parquet/per-row", pq, false}, {"csv/prefetched", csvPath, true}} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if err := st.Append(ctx, evs); err != nil {
				t.Fatal(err)
			}
			if tc.watermark {
				if err := st.AdvanceWatermark(ctx, src, 0, at(10)); err != nil {
					t.Fatal(err)
				}
			}
			a := &activities.Backfill{Store: st, Jobs: activities.NewJobs(j)}
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			env.RegisterActivity(a)
			plan := planOf(t, env, a, activities.PlanInput{Job: "acc", Sample: tc.sample, ChunkRows: 4})
			sp := plan.Sample
			if sp.Rows != len(rows) || len(sp.Offsets) < 3 || !slices.Equal(sp.Carry, []string{"row_id", "label", "id"}) || !sp.Latest.Equal(at(5)) {
				t.Fatalf("plan %+v", sp)
			}
			for _, format := range []string{"jsonl", "parquet"} {
				out := t.TempDir()
				var total activities.ChunkResult
				for i := range sp.Offsets {
					r, _, err := runChunk(t, a, activities.ChunkInput{Backfill: "bf-ts", Job: "acc", Index: i, Sample: sp.Chunk(i),
						Options: activities.Options{Sink: "file://" + out, Format: format, SegmentEvents: 3}}, nil)
					if err != nil {
						t.Fatal(err)
					}
					total.Events += r.Events
					total.WithState += r.WithState
					total.Missing += r.Missing
					total.Outputs += r.Outputs
					total.Written += r.Written
					total.Failed += r.Failed
					total.Errors = append(total.Errors, r.Errors...)
					// The parameter versions of the chunk's records: the
					// job's defaults (version 0), where it has any.
					if want := []int64{0}; r.Outputs > 0 && !slices.Equal(r.ParamVersions, want) || r.Outputs == 0 && len(r.ParamVersions) != 0 {
						t.Fatalf("%s: chunk %d: %d records of parameter versions %v", format, i, r.Outputs, r.ParamVersions)
					}
				}
				if total.Events != 9 || total.WithState != 6 || total.Missing != 3 || total.Outputs != 6 || total.Written != 9 || total.Failed != 0 || len(total.Errors) != 0 {
					t.Fatalf("%s: counts %+v", format, total)
				}
				got := readTrainingSet(t, out, format)
				if len(got) != len(rows) {
					t.Fatalf("%s: %d rows, want %d: %+v", format, len(got), len(rows), got)
				}
				ids := map[string]bool{}
				for i, r := range got {
					want := rows[i]
					wantID := want.ID // (an empty CSV cell is null)
					if r.Key != want.Key || !r.Time.Equal(want.Time) || !reflect.DeepEqual(r.Bal, wantBal[i]) ||
						r.RowID == nil || *r.RowID != want.RowID || r.Label == nil || *r.Label != want.Label || !reflect.DeepEqual(r.SampleID, wantID) || ids[r.ID] {
						t.Fatalf("%s: row %d: %+v, want %+v with bal %v", format, i, r, want, wantBal[i])
					}
					ids[r.ID] = true
				}
			}
		})
	}
}

// readTrainingSet reads a training set's objects in name order.
func readTrainingSet(t *testing.T, dir, format string) []trainingOut {
	t.Helper()
	if format == "parquet" {
		objs, err := filepath.Glob(filepath.Join(dir, "*", "*", "chunk-*.parquet")) // one backfill in dir
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(objs)
		var out []trainingOut
		for _, o := range objs {
			rs, err := parquet.ReadFile[trainingOut](o)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rs...)
		}
		return out
	}
	var out []trainingOut
	{
		recs, _, err := backfilltest.ReadDir(dir) // in name order
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			o := trainingOut{ID: r.ID, Key: r.Trigger.Key, Time: r.Trigger.Time}
			if v, ok := r.Features["bal"].(float64); ok {
				o.Bal = &v
			}
			if v, ok := number(r.Features["_sample.row_id"]); ok {
				o.RowID = &v
			}
			if v, ok := number(r.Features["_sample.label"]); ok {
				o.Label = &v
			}
			if v, ok := r.Features["_sample.id"].(string); ok {
				o.SampleID = &v
			}
			out = append(out, o)
		}
	}
	return out
}

// number reads an integer column as JSON or CSV gives it.
func number(v any) (int64, bool) {
	switch v := v.(type) {
	case float64:
		return int64(v), true
	case string:
		var n int64
		_, err := fmt.Sscan(v, &n)
		return n, err == nil
	}
	return 0, false
}

// Every Parquet object of a training set has the same columns with the
// same types once the backfill is finished, also when a whole segment has
// no state (no features: the column would be missing) or its feature is
// null in every row (the column would be typed as text): a reader of the
// objects as one table (DuckDB, Spark) sees one schema.
func TestTrainingSetObjectsShareOneSchema(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	const src = "t.acc"
	evs := []eventcenter.Event{
		{Source: src, Key: "a", Time: at(1), Pos: eventcenter.Position{Log: 1, Offset: 1}, Op: eventcenter.OpInsert, After: eventcenter.Row{"bal": 1.0}},
		{Source: src, Key: "n", Time: at(1), Pos: eventcenter.Position{Log: 1, Offset: 2}, Op: eventcenter.OpInsert, After: eventcenter.Row{"bal": nil}},
	}
	// Segments of 2 rows: the first has no state, the second a null
	// feature, the third a value.
	rows := []trainingSample{{0, "a", at(0), 1, nil}, {1, "c", at(2), 0, nil}, {2, "n", at(2), 1, nil}, {3, "n", at(3), 0, nil}, {4, "a", at(2), 1, nil}}
	_, a, env, plan := balBackfill(t, src, evs, rows, time.Time{})
	out := t.TempDir()
	opts := activities.Options{Sink: "file://" + out, Format: "parquet", SegmentEvents: 2}
	if _, _, err := runChunk(t, a, activities.ChunkInput{Backfill: "bf-ts", Job: "acc", Sample: plan.Sample.Chunk(0), Options: opts}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := env.ExecuteActivity(a.BackfillFinish, activities.FinishInput{Backfill: "bf-ts", Job: "acc", Options: opts, Status: "done"}); err != nil {
		t.Fatal(err)
	}
	objs, err := filepath.Glob(filepath.Join(out, "bf-ts", "acc", "chunk-*.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(objs)
	if len(objs) != 3 {
		t.Fatalf("objects %q, want one per segment", objs)
	}
	var first string
	for i, o := range objs {
		f, err := os.Open(o)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		pf, err := parquet.OpenFile(f, fi.Size())
		if err != nil {
			t.Fatal(err)
		}
		schema := pf.Schema().String()
		f.Close()
		if i == 0 {
			first = schema
		} else if schema != first {
			t.Fatalf("%s has the schema\n%s\nbut %s has\n%s", filepath.Base(o), schema, filepath.Base(objs[0]), first)
		}
	}
	if !strings.Contains(first, "optional double bal") {
		t.Fatalf("schema %s: want bal as an optional double", first)
	}
	got := readTrainingSet(t, out, "parquet")
	if len(got) != len(rows) || got[4].Bal == nil || *got[4].Bal != 1.0 || got[0].Bal != nil || got[2].Bal != nil || *got[3].Label != 0 {
		t.Fatalf("rows %+v", got)
	}
}

// planSample plans in on an activity environment of its own.
func planSample(t testing.TB, a *activities.Backfill, in activities.PlanInput) activities.Plan {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	return planOf(t, env, a, in)
}

// planOf runs a's BackfillPlan on in in env and returns its plan.
func planOf(t testing.TB, env *testsuite.TestActivityEnvironment, a *activities.Backfill, in activities.PlanInput) activities.Plan {
	t.Helper()
	v, err := env.ExecuteActivity(a.BackfillPlan, in)
	if err != nil {
		t.Fatal(err)
	}
	var p activities.Plan
	if err := v.Get(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

// balBackfill opens an in-memory store holding evs, with src's watermark
// at watermark (none if zero), and plans a backfill of the sample table
// rows (a Parquet file) for balJob(src).
func balBackfill[T any](t *testing.T, src string, evs []eventcenter.Event, rows []T, watermark time.Time) (*embedded.Store, *activities.Backfill, *testsuite.TestActivityEnvironment, activities.Plan) {
	t.Helper()
	return sampleBackfill(t, balJob(src), evs, rows, watermark)
}

// balJob is the job "acc", which outputs the trigger key's "bal" in src.
func balJob(src string) *job.Job {
	return job.MustNew("acc", func(c *job.Context) (eventcenter.Row, error) {
		r, err := c.Get(src, c.Trigger().Key)
		if err != nil {
			return nil, err
		}
		return eventcenter.Row{"bal": r["bal"]}, nil
	}, job.Trigger(src))
}

// sampleBackfill opens an in-memory store holding evs, with the watermark
// of j's trigger source at watermark (none if zero), and plans a backfill
// of the sample table rows (a Parquet file) for j.
func sampleBackfill[T any](t *testing.T, j *job.Job, evs []eventcenter.Event, rows []T, watermark time.Time) (*embedded.Store, *activities.Backfill, *testsuite.TestActivityEnvironment, activities.Plan) {
	t.Helper()
	ctx := context.Background()
	pq := filepath.Join(t.TempDir(), "sample.parquet")
	if err := parquet.WriteFile(pq, rows); err != nil {
		t.Fatal(err)
	}
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if !watermark.IsZero() {
		if err := st.AdvanceWatermark(ctx, j.Source(), 0, watermark); err != nil {
			t.Fatal(err)
		}
	}
	a := &activities.Backfill{Store: st, Jobs: activities.NewJobs(j)}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	return st, a, env, planOf(t, env, a, activities.PlanInput{Job: j.Name(), Sample: pq})
}

// TestTrainingSetResumes: a training-set chunk run in segments of 2 rows
// gives each row its key's state as the store reads it at the row's time
// (nulls where none), and a chunk resumed after row 4 writes the same
// rows after.
func TestTrainingSetResumes(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	const src = "t.acc"
	var evs []eventcenter.Event
	for i, k := range []string{"a", "b", "n", "a", "b", "a"} {
		evs = append(evs, eventcenter.Event{Source: src, Key: k, Time: at(i), Pos: eventcenter.Position{Log: 1, Offset: uint64(i)},
			Op: eventcenter.OpUpdate, After: eventcenter.Row{"bal": float64(i)}})
	}
	var rows []trainingSample
	for i := range 23 {
		// Keys known, unknown (c) and repeated at one time; times from
		// before the first change to after the last.
		rows = append(rows, trainingSample{RowID: int64(i), Key: []string{"a", "b", "c", "n"}[i*7%4], Time: at(i * 5 % 8), Label: int64(i % 2)})
	}
	st, a, _, plan := balBackfill(t, src, evs, rows, at(10))
	run := func(hb *activities.Cursor) ([]trainingOut, activities.ChunkResult) {
		out := t.TempDir()
		r, _, err := runChunk(t, a, activities.ChunkInput{Backfill: "bf-ts", Job: "acc", Sample: plan.Sample.Chunk(0),
			Options: activities.Options{Sink: "file://" + out, Format: "parquet", SegmentEvents: 2}}, hb)
		if err != nil {
			t.Fatal(err)
		}
		return readTrainingSet(t, out, "parquet"), r
	}
	whole, wr := run(nil)
	if len(whole) != len(rows) || wr.WithState == 0 || wr.Missing == 0 || wr.WithState+wr.Missing != len(rows) {
		t.Fatalf("%d rows, %+v", len(whole), wr)
	}
	for i, row := range rows { // each row's state as the store reads it
		var want *float64
		if e, err := st.AsOf(ctx, eventcenter.AsOf{Source: src, Key: row.Key, Time: row.Time}); err == nil {
			want = ptr(e.After["bal"].(float64))
		}
		if got := whole[i]; got.Key != row.Key || !reflect.DeepEqual(got.Bal, want) || got.RowID == nil || *got.RowID != row.RowID {
			t.Fatalf("row %d (%s at %v): %+v, want bal %v", i, row.Key, row.Time, got, want)
		}
	}
	resumed, rr := run(&activities.Cursor{Ordinal: 4})
	if !reflect.DeepEqual(resumed, whole[4:]) || rr.Events != len(rows)-4 || !rr.Resumed {
		t.Fatalf("resumed after row 4: %+v (%+v), want %+v", resumed, rr, whole[4:])
	}
}

// TestTrainingSetLeavesTheLogicsRow: a logic may return a row it shares
// (here one map for every run); the training set's rows carry each sample
// row's own columns beside it, in JSON Lines and Parquet alike, and the
// shared row is left as it was.
func TestTrainingSetLeavesTheLogicsRow(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	const src = "t.shared"
	shared := eventcenter.Row{"bal": 7.0}
	j := job.MustNew("shared", func(c *job.Context) (eventcenter.Row, error) { return shared, nil }, job.Trigger(src))
	var rows []trainingSample
	for i := range 5 {
		rows = append(rows, trainingSample{RowID: int64(i), Key: "a", Time: t0.Add(time.Duration(i+1) * time.Minute), Label: int64(10 + i)})
	}
	evs := []eventcenter.Event{{Source: src, Key: "a", Time: t0, Pos: eventcenter.Position{Log: 1}, Op: eventcenter.OpInsert, After: eventcenter.Row{"bal": 1.0}}}
	_, a, _, plan := sampleBackfill(t, j, evs, rows, t0.Add(time.Hour))
	for _, format := range []string{"jsonl", "parquet"} {
		out := t.TempDir()
		if _, _, err := runChunk(t, a, activities.ChunkInput{Backfill: "bf-" + format, Job: "shared", Sample: plan.Sample.Chunk(0),
			Options: activities.Options{Sink: "file://" + out, Format: format, SegmentEvents: 2}}, nil); err != nil {
			t.Fatal(err)
		}
		got := readTrainingSet(t, out, format)
		if len(got) != len(rows) {
			t.Fatalf("%s: %d rows, want %d", format, len(got), len(rows))
		}
		for i, r := range got {
			if r.Bal == nil || *r.Bal != 7 || r.Label == nil || *r.Label != rows[i].Label || r.RowID == nil || *r.RowID != rows[i].RowID {
				t.Fatalf("%s: row %d is %+v, want bal 7, label %d, row_id %d", format, i, r, rows[i].Label, rows[i].RowID)
			}
		}
		if len(shared) != 1 || shared["bal"] != 7.0 {
			t.Fatalf("%s: the logic's shared row became %v", format, shared)
		}
	}
}

// TestTrainingSetRunsOwnTheirRows: each run reads its trigger's rows and
// its fetch of the same state as the store holds them, whatever the runs
// of the other rows of that key and time (three here), or the run itself
// before, did to theirs: a logic may change the rows it is given. Both
// orders: the trigger's rows read before the fetch, and after it.
func TestTrainingSetRunsOwnTheirRows(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	const src = "t.own"
	for _, triggerFirst := range []bool{true, false} {
		t.Run(fmt.Sprint("triggerFirst=", triggerFirst), func(t *testing.T) {
			var evs []eventcenter.Event
			for i, k := range []string{"a", "b", "a"} {
				evs = append(evs, eventcenter.Event{Source: src, Key: k, Time: t0.Add(time.Duration(i) * time.Hour), Pos: eventcenter.Position{Log: 1, Offset: uint64(i)},
					Op: eventcenter.OpUpdate, After: eventcenter.Row{"bal": float64(10 * (i + 1))}})
			}
			j := job.MustNew("own", func(c *job.Context) (eventcenter.Row, error) {
				var trig eventcenter.Row
				if triggerFirst {
					trig = c.Trigger().After
				}
				got, err := c.Get(src, c.Trigger().Key)
				if err != nil {
					return nil, err
				}
				fetched := got["bal"]
				if !triggerFirst {
					got["bal"] = -2.0 // before the trigger's rows are read
					trig = c.Trigger().After
				}
				out := eventcenter.Row{"trig": trig["bal"], "fetched": fetched}
				trig["bal"], got["bal"] = -1.0, -2.0
				return out, nil
			}, job.Trigger(src))
			var rows []trainingSample
			for i := range 12 { // keys a and b at four times, each three times
				rows = append(rows, trainingSample{RowID: int64(i), Key: []string{"a", "b"}[i/6], Time: t0.Add(time.Duration(i/3%2)*time.Hour + 90*time.Minute)})
			}
			st, a, _, plan := sampleBackfill(t, j, evs, rows, t0.Add(10*time.Hour))
			out := t.TempDir()
			if _, _, err := runChunk(t, a, activities.ChunkInput{Backfill: "bf-own", Job: "own", Sample: plan.Sample.Chunk(0),
				Options: activities.Options{Sink: "file://" + out, Format: "jsonl"}}, nil); err != nil {
				t.Fatal(err)
			}
			recs, _, err := backfilltest.ReadDir(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(rows) {
				t.Fatalf("%d records, want %d", len(recs), len(rows))
			}
			for i, r := range recs {
				e, err := st.AsOf(ctx, eventcenter.AsOf{Source: src, Key: rows[i].Key, Time: rows[i].Time})
				if err != nil {
					t.Fatal(err)
				}
				want := e.After["bal"]
				if r.Features["trig"] != want || r.Features["fetched"] != want {
					t.Fatalf("row %d (%s at %v): trigger's bal %v, fetched %v, want %v as stored", i, rows[i].Key, rows[i].Time, r.Features["trig"], r.Features["fetched"], want)
				}
			}
		})
	}
}

// TestParquetSampleColumnTypes: a Parquet sample table's key may be text
// or an integer, and its time a timestamp of any unit, a date or text; each
// row's trigger is its key and time whatever the columns' types. An empty
// key is refused by the chunk (the plan's column statistics pass it), a
// null one by the plan.
func TestParquetSampleColumnTypes(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	const src = "t.types"
	j := balJob(src)
	evs := []eventcenter.Event{{Source: src, Key: "7", Time: t0, Pos: eventcenter.Position{Log: 1}, Op: eventcenter.OpInsert, After: eventcenter.Row{"bal": 1.0}}}
	check := func(t *testing.T, a *activities.Backfill, plan activities.Plan, want time.Time) {
		t.Helper()
		out := t.TempDir()
		if _, _, err := runChunk(t, a, activities.ChunkInput{Backfill: "bf", Job: j.Name(), Sample: plan.Sample.Chunk(0),
			Options: activities.Options{Sink: "file://" + out, Format: "jsonl"}}, nil); err != nil {
			t.Fatal(err)
		}
		got := readTrainingSet(t, out, "jsonl")
		if len(got) != 1 || got[0].Key != "7" || !got[0].Time.Equal(want) || got[0].Bal == nil || *got[0].Bal != 1 {
			t.Fatalf("rows %+v: want key 7 at %v with bal 1", got, want)
		}
	}
	day := t0.Add(24 * time.Hour)
	t.Run("integer key, milliseconds", func(t *testing.T) {
		type row struct {
			Key  int64     `parquet:"key"`
			Time time.Time `parquet:"time,timestamp(millisecond)"`
		}
		_, a, _, plan := balBackfill(t, src, evs, []row{{7, day.Add(1500 * time.Millisecond)}}, day.Add(time.Hour))
		check(t, a, plan, day.Add(1500*time.Millisecond))
	})
	t.Run("text time", func(t *testing.T) {
		type row struct {
			Key  string `parquet:"key"`
			Time string `parquet:"time"`
		}
		_, a, _, plan := balBackfill(t, src, evs, []row{{"7", "2026-05-02T00:00:00.25Z"}}, day.Add(time.Hour))
		check(t, a, plan, day.Add(250*time.Millisecond))
	})
	t.Run("date", func(t *testing.T) {
		type row struct { // days since 1970 (parquet-go writes a time.Time as a date wrong)
			Key  string `parquet:"key"`
			Time int32  `parquet:"time,date"`
		}
		_, a, _, plan := balBackfill(t, src, evs, []row{{"7", int32(day.Unix() / 86400)}}, day.Add(time.Hour))
		check(t, a, plan, day)
	})
	t.Run("empty key", func(t *testing.T) { // not null: the plan's statistics pass it, the chunk refuses it
		type row struct {
			Key  string    `parquet:"key"`
			Time time.Time `parquet:"time,timestamp(nanosecond)"`
		}
		_, a, _, plan := balBackfill(t, src, evs, []row{{"7", day}, {"", day}}, day.Add(time.Hour))
		_, _, err := runChunk(t, a, activities.ChunkInput{Backfill: "bf", Job: j.Name(), Sample: plan.Sample.Chunk(0),
			Options: activities.Options{Sink: "file://" + t.TempDir(), Format: "jsonl"}}, nil)
		// Named by its row, and permanent: retrying reads the same row.
		var ae *temporal.ApplicationError
		if !errors.As(err, &ae) || ae.Type() != activities.ErrTypeBadSample || !ae.NonRetryable() || !strings.Contains(err.Error(), "row 1: empty key") {
			t.Fatalf("an empty key: %v, want the chunk's non-retryable BadSample error of row 1's empty key", err)
		}
	})
	t.Run("key and entity", func(t *testing.T) { // which is the key? (each was taken, the other's values carried under the wrong name)
		type row struct {
			Key    string    `parquet:"key"`
			Entity string    `parquet:"entity"`
			Time   time.Time `parquet:"time,timestamp(microsecond)"`
			Lab    string    `parquet:"lab"`
		}
		planSampleErr(t, j, []row{{"7", "x", day, "a"}}, `columns "key" and "entity" are both a key column`)
	})
	t.Run("a double key", func(t *testing.T) {
		type row struct {
			Key  float64   `parquet:"key"`
			Time time.Time `parquet:"time,timestamp(microsecond)"`
		}
		planSampleErr(t, j, []row{{7, day}}, `key column "key" is DOUBLE`)
	})
	t.Run("a time of day", func(t *testing.T) {
		type row struct {
			Key  string        `parquet:"key"`
			Time time.Time     `parquet:"time,timestamp(microsecond)"`
			At   time.Duration `parquet:"at,time(microsecond)"`
		}
		planSampleErr(t, j, []row{{"7", day, time.Hour}}, `column "at" has an unsupported type`)
	})
	t.Run("a time past 2262", func(t *testing.T) { // was read as a time in 1715
		type row struct {
			Key  string    `parquet:"key"`
			Time time.Time `parquet:"time,timestamp(millisecond)"`
		}
		planSampleErr(t, j, []row{{"7", time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}}, "time 2300-01-01T00:00:00Z is outside the event center's times")
	})
	t.Run("a time before 1677 beside later ones", func(t *testing.T) { // the row group's statistics say so: refused by the plan
		type row struct {
			Key  string    `parquet:"key"`
			Time time.Time `parquet:"time,timestamp(microsecond)"`
		}
		planSampleErr(t, j, []row{{"7", day}, {"8", time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)}}, "row 1: time 1600-01-01T00:00:00Z is outside the event center's times")
	})
	t.Run("a carried time past 9999", func(t *testing.T) { // Java's "never": Long.MAX_VALUE milliseconds
		type row struct {
			Key  string    `parquet:"key"`
			Time time.Time `parquet:"time,timestamp(microsecond)"`
			Upto int64     `parquet:"upto,timestamp(millisecond)"`
		}
		_, a, _, plan := balBackfill(t, src, evs, []row{{"7", day, 0}, {"7", day, math.MaxInt64}}, day.Add(time.Hour))
		for _, format := range []string{"jsonl", "parquet"} {
			_, _, err := runChunk(t, a, activities.ChunkInput{Backfill: "bf", Job: j.Name(), Sample: plan.Sample.Chunk(0),
				Options: activities.Options{Sink: "file://" + t.TempDir(), Format: format}}, nil)
			var ae *temporal.ApplicationError
			if !errors.As(err, &ae) || ae.Type() != activities.ErrTypeBadSample || !ae.NonRetryable() || !strings.Contains(err.Error(), `row 1: column "upto"`) {
				t.Fatalf("%s: %v, want the chunk's non-retryable BadSample error of row 1's upto", format, err)
			}
		}
	})
	t.Run("carried types", func(t *testing.T) {
		// A decimal (its text, not its unscaled integer), a UUID (its
		// text), bytes (bytes, not text), a far "valid to" (not wrapped
		// through nanoseconds) and a time in nanoseconds (all its digits),
		// in both formats.
		type row struct {
			Key     string    `parquet:"key"`
			Time    time.Time `parquet:"time,timestamp(microsecond)"`
			Amount  int64     `parquet:"amount,decimal(2:10)"`
			Ref     [16]byte  `parquet:"ref,uuid"`
			Blob    []byte    `parquet:"blob"`
			ValidTo time.Time `parquet:"valid_to,timestamp(millisecond)"`
			Seen    time.Time `parquet:"seen,timestamp(nanosecond)"`
		}
		validTo := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
		seen := day.Add(-time.Hour + 123456789*time.Nanosecond)
		uuid := [16]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
		_, a, _, plan := balBackfill(t, src, evs, []row{{"7", day, -125, uuid, []byte{0xff, 0x00}, validTo, seen}}, day.Add(time.Hour))
		if !slices.Equal(plan.Sample.CarryNanos, []string{"seen"}) {
			t.Fatalf("plan: carried columns in nanoseconds %q, want seen", plan.Sample.CarryNanos)
		}
		for _, format := range []string{"jsonl", "parquet"} {
			out := t.TempDir()
			if _, _, err := runChunk(t, a, activities.ChunkInput{Backfill: "bf", Job: j.Name(), Sample: plan.Sample.Chunk(0),
				Options: activities.Options{Sink: "file://" + out, Format: format}}, nil); err != nil {
				t.Fatal(err)
			}
			objs, _ := filepath.Glob(filepath.Join(out, "*", "*", "chunk-*."+format))
			if len(objs) != 1 {
				t.Fatalf("%s: objects %v", format, objs)
			}
			if format == "jsonl" {
				b, err := os.ReadFile(objs[0])
				if err != nil {
					t.Fatal(err)
				}
				var line struct{ Features map[string]any }
				if err := json.Unmarshal(b, &line); err != nil {
					t.Fatal(err)
				}
				got := line.Features
				want := map[string]any{"_sample.amount": "-1.25", "_sample.ref": "12345678-9abc-def0-0123-456789abcdef", "_sample.blob": "/wA=", "_sample.valid_to": "9999-12-31T00:00:00Z",
					"_sample.seen": seen.Format(time.RFC3339Nano)}
				for k, v := range want {
					if g := fmt.Sprint(got[k]); g != v {
						t.Errorf("jsonl: %s = %v, want %v (line %s)", k, got[k], v, b)
					}
				}
				continue
			}
			type outRow struct {
				Amount  *string `parquet:"amount,optional"`
				Ref     *string `parquet:"ref,optional"`
				Blob    []byte  `parquet:"blob,optional"`
				ValidTo *int64  `parquet:"valid_to,optional"` // (parquet-go reads a time through nanoseconds)
				Seen    *int64  `parquet:"seen,optional"`
			}
			rs, err := parquet.ReadFile[outRow](objs[0])
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != 1 || rs[0].Amount == nil || *rs[0].Amount != "-1.25" || rs[0].Ref == nil || *rs[0].Ref != "12345678-9abc-def0-0123-456789abcdef" ||
				!bytes.Equal(rs[0].Blob, []byte{0xff, 0x00}) || rs[0].ValidTo == nil || *rs[0].ValidTo != validTo.UnixMicro() ||
				rs[0].Seen == nil || *rs[0].Seen != seen.UnixNano() {
				t.Errorf("parquet: %+v", rs)
			}
			f, err := os.Open(objs[0])
			if err != nil {
				t.Fatal(err)
			}
			pf, err := parquet.OpenFile(f, func() int64 { fi, _ := f.Stat(); return fi.Size() }())
			if err != nil {
				t.Fatal(err)
			}
			for _, fd := range pf.Schema().Fields() {
				switch lt := fd.Type().LogicalType(); {
				case fd.Name() == "blob" && lt != nil:
					t.Errorf("parquet: blob is %v, want bytes without a string annotation", lt)
				case fd.Name() == "valid_to" && (lt == nil || !strings.Contains(lt.String(), "unit=MICROS")):
					t.Errorf("parquet: valid_to is %v, want a timestamp in microseconds", lt)
				case fd.Name() == "seen" && (lt == nil || !strings.Contains(lt.String(), "unit=NANOS")):
					t.Errorf("parquet: seen is %v, want a timestamp in nanoseconds", lt)
				}
			}
			f.Close()
		}
	})
	t.Run("null key", func(t *testing.T) {
		type row struct {
			Key  *string   `parquet:"key,optional"`
			Time time.Time `parquet:"time,timestamp(nanosecond)"`
		}
		pq := filepath.Join(t.TempDir(), "sample.parquet")
		if err := parquet.WriteFile(pq, []row{{nil, day}}); err != nil {
			t.Fatal(err)
		}
		st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		a := &activities.Backfill{Store: st, Jobs: activities.NewJobs(j)}
		var s testsuite.WorkflowTestSuite
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(a)
		_, err = env.ExecuteActivity(a.BackfillPlan, activities.PlanInput{Job: j.Name(), Sample: pq})
		if err == nil || !strings.Contains(err.Error(), "row 0: empty key") {
			t.Fatalf("a null key: %v, want the plan's error of an empty key", err)
		}
	})
}

// planSampleErr plans a Parquet sample table of rows for j and wants a
// BadSample error saying want.
func planSampleErr[T any](t *testing.T, j *job.Job, rows []T, want string) {
	t.Helper()
	pq := filepath.Join(t.TempDir(), "sample.parquet")
	if err := parquet.WriteFile(pq, rows); err != nil {
		t.Fatal(err)
	}
	a, env := emptyBackfill(t, j)
	_, err := env.ExecuteActivity(a.BackfillPlan, activities.PlanInput{Job: j.Name(), Sample: pq})
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != activities.ErrTypeBadSample || !strings.Contains(err.Error(), want) {
		t.Fatalf("plan: %v, want a BadSample error saying %q", err, want)
	}
}

// A Parquet table named otherwise (no .parquet or .pq) is read as Parquet,
// by its first bytes, not as a CSV whose header is binary.
func TestParquetSampleByContent(t *testing.T) {
	type row struct {
		Key  string    `parquet:"key"`
		Time time.Time `parquet:"time,timestamp(microsecond)"`
	}
	day := time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "sample.bin")
	if err := parquet.WriteFile(path, []row{{"7", day}, {"8", day}}); err != nil {
		t.Fatal(err)
	}
	j := balJob("t.content")
	a, env := emptyBackfill(t, j)
	p := planOf(t, env, a, activities.PlanInput{Job: j.Name(), Sample: path})
	if p.Sample.Format != activities.FormatParquet || p.Sample.Rows != 2 {
		t.Fatalf("plan %+v: want a Parquet table of 2 rows", p.Sample)
	}
}

// emptyBackfill returns the activities of j over an empty in-memory store
// (closed when t ends), registered in a test environment.
func emptyBackfill(t *testing.T, j *job.Job) (*activities.Backfill, *testsuite.TestActivityEnvironment) {
	t.Helper()
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a := &activities.Backfill{Store: st, Jobs: activities.NewJobs(j)}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	return a, env
}
