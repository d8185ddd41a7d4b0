package job_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
)

// TestFailedRunsOutputNothing: a run that fails after its logic returned
// features (here: an empty entity key) has no Record and reaches no output,
// in every mode, while the good triggers around it are output.
func TestFailedRunsOutputNothing(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	out := &collect{name: "c"}
	j := job.MustNew("entity", func(*job.Context) (eventcenter.Row, error) {
		return eventcenter.Row{"x": int64(1)}, nil
	}, job.Trigger("test.apps"), job.Outputs(out), job.Entity(func(e *eventcenter.Event) string {
		if e.Key == "bad" {
			return ""
		}
		return e.Key
	}))
	triggers := []eventcenter.Event{trigger("good1", t0, 1), trigger("bad", t0.Add(time.Second), 2), trigger("good2", t0.Add(2*time.Second), 3)}
	if err := st.Append(ctx, triggers); err != nil {
		t.Fatal(err)
	}
	env := &job.Env{Store: st}
	entities := func() []string {
		var es []string
		for _, r := range out.recs {
			es = append(es, r.Entity)
		}
		out.recs = nil
		return es
	}
	want := []string{"good1", "good2"}

	res, err := job.Evaluate(ctx, j, triggers[1], env)
	if res.Outcome != job.Failed || !errors.Is(err, job.ErrLogic) || res.Record != nil {
		t.Fatalf("Evaluate: outcome %v, err %v, record %+v", res.Outcome, err, res.Record)
	}
	for _, tr := range triggers {
		if res, err := job.Run(ctx, j, tr, env); (err != nil) != (tr.Key == "bad") || (res.Record != nil) != (res.Outcome == job.OK) {
			t.Fatalf("Run %s: outcome %v, err %v, record %+v", tr.Key, res.Outcome, err, res.Record)
		}
	}
	if got := entities(); !slices.Equal(got, want) {
		t.Errorf("Run output %v, want %v", got, want)
	}

	b := job.NewBatch(j, env, 10)
	for _, tr := range triggers {
		if _, err := b.Add(ctx, tr); (err != nil) != (tr.Key == "bad") {
			t.Fatalf("Batch.Add %s: %v", tr.Key, err)
		}
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := entities(); !slices.Equal(got, want) {
		t.Errorf("Batch output %v, want %v", got, want)
	}
	if b.Counts[job.OK] != 2 || b.Counts[job.Failed] != 1 {
		t.Errorf("Batch counts %v", b.Counts)
	}

	sum, err := job.RunAll(ctx, j, env, st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{"test.apps"}, From: t0, To: t0.Add(time.Hour)}), job.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := entities(); !slices.Equal(got, want) || sum.Counts[job.Failed] != 1 || len(sum.Failures) != 1 {
		t.Errorf("RunAll output %v, want %v; summary %+v", got, want, sum)
	}
}
