package activities_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/internal/backfilltest"
	"github.com/tidemark-dev/tidemark/job"
)

// TestSampleOfMultiTriggerJob: a sample backfill of a job triggered by two
// sources takes each row's state from every trigger source: the trigger is
// the latest change of the row's key at the row's time in any of them (the
// first source's on a tie), and a row is without state only when no source
// has one.
func TestSampleOfMultiTriggerJob(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	const acc, lim = "t.acc", "t.lim"
	evs := []eventcenter.Event{
		{Source: acc, Key: "a", Time: at(1), Pos: eventcenter.Position{Log: 1, Offset: 1}, Op: eventcenter.OpInsert, After: eventcenter.Row{"n": int64(1)}},
		{Source: lim, Key: "b", Time: at(2), Pos: eventcenter.Position{Log: 1, Offset: 1}, Op: eventcenter.OpInsert, After: eventcenter.Row{"n": int64(2)}},
		{Source: lim, Key: "a", Time: at(3), Pos: eventcenter.Position{Log: 1, Offset: 2}, Op: eventcenter.OpInsert, After: eventcenter.Row{"n": int64(3)}},
		{Source: acc, Key: "d", Time: at(1), Pos: eventcenter.Position{Log: 1, Offset: 2}, Op: eventcenter.OpInsert, After: eventcenter.Row{"n": int64(4)}},
		{Source: lim, Key: "d", Time: at(1), Pos: eventcenter.Position{Log: 1, Offset: 3}, Op: eventcenter.OpInsert, After: eventcenter.Row{"n": int64(5)}},
	}
	rows := []trainingSample{
		{0, "a", at(2), 0, nil}, // only acc has a's state yet
		{1, "b", at(3), 0, nil}, // only lim has b
		{2, "a", at(4), 0, nil}, // lim's change of a is the latest
		{3, "c", at(4), 0, nil}, // neither
		{4, "d", at(4), 0, nil}, // both at one time: the first source's
	}
	want := []struct {
		src string
		n   int64
	}{{acc, 1}, {lim, 2}, {lim, 3}, {"", 0}, {acc, 4}}

	pq := filepath.Join(t.TempDir(), "sample.parquet")
	writeParquetFile(t, pq, rows)
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	j := job.MustNew("acclim", func(c *job.Context) (eventcenter.Row, error) {
		return eventcenter.Row{"src": c.Trigger().Source, "n": c.Trigger().After["n"]}, nil
	}, job.Trigger(acc), job.Trigger(lim))
	a := &activities.Backfill{Store: st, Jobs: activities.NewJobs(j)}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	plan := planOf(t, env, a, activities.PlanInput{Job: "acclim", Sample: pq})
	out := t.TempDir()
	var res activities.ChunkResult
	for i := range plan.Sample.Offsets {
		r, _, err := runChunk(t, a, activities.ChunkInput{Backfill: "bf-multi", Job: "acclim", Index: i, Sample: plan.Sample.Chunk(i),
			Options: activities.Options{Sink: "file://" + out, Format: "jsonl"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		res.WithState += r.WithState
		res.Missing += r.Missing
	}
	if res.WithState != 4 || res.Missing != 1 {
		t.Errorf("%d rows with state, %d without; want 4 and 1", res.WithState, res.Missing)
	}
	recs, _, err := backfilltest.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(rows) {
		t.Fatalf("%d training rows, want %d", len(recs), len(rows))
	}
	for i, r := range recs {
		n, _ := number(r.Features["n"])
		if got, _ := r.Features["src"].(string); got != want[i].src || n != want[i].n || (want[i].src != "" && r.Trigger.Source != want[i].src) {
			t.Errorf("row %d (%s at %v): trigger %s, features %v; want the state of %s, n=%d", i, rows[i].Key, rows[i].Time, r.Trigger.Source, r.Features, want[i].src, want[i].n)
		}
	}
}
