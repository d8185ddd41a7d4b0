package activities_test

import (
	"context"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/internal/backfilltest"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/params"
)

// A fill backfill writes only the records the live run did not; a replace
// backfill after a parameter change writes a new version of every record,
// which latest reads return, while as-known-at reads from before it still
// return the records that were live.
func TestFeatureStoreFillAndReplace(t *testing.T) {
	ctx := context.Background()
	st, a, evs := fixture(t, 1000)
	const src = "out.modes"
	j := backfilltest.Job()

	// The live run handled the first half of the triggers.
	var triggers []eventcenter.Event
	for _, e := range evs {
		if j.Accepts(&e) {
			triggers = append(triggers, e)
		}
	}
	var live []job.Record
	for _, e := range triggers[:len(triggers)/2] {
		res, err := job.Evaluate(ctx, j, e, &job.Env{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		live = append(live, *res.Record)
	}
	if err := outputs.FeatureStore(st, src).Write(ctx, live); err != nil {
		t.Fatal(err)
	}

	in := activities.ChunkInput{Backfill: "bf-fill", Job: backfilltest.JobName, From: backfilltest.T0, To: backfilltest.T0.Add(span),
		Options: activities.Options{Sink: "featurestore:" + src, SegmentEvents: 300}}
	r, _, err := runChunk(t, a, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (outputs.WriteCounts{Written: len(triggers) - len(live), Unchanged: len(live)}); r.WriteCounts != want || r.Outputs != len(triggers) {
		t.Fatalf("fill: %+v, want %+v", r, want)
	}
	latest := func(key string, knownAt time.Time) job.Record {
		t.Helper()
		e, err := st.AsOf(ctx, eventcenter.AsOf{Source: src, Key: key, Time: backfilltest.T0.Add(48 * time.Hour), KnownAt: knownAt})
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		return job.RecordFromEvent(backfilltest.JobName, &e)
	}
	for _, e := range triggers {
		h, err := st.History(ctx, eventcenter.HistoryQuery{Source: src, Key: e.Key, From: backfilltest.T0, To: backfilltest.T0.Add(48 * time.Hour)})
		if err != nil || len(h) != 1 {
			t.Fatalf("%s: %d records after fill (%v), want 1", e.Key, len(h), err)
		}
	}
	before := latest(triggers[0].Key, time.Time{})

	// A parameter change, then a replace backfill with the current values.
	time.Sleep(2 * time.Millisecond)
	beforeReplace := time.Now()
	time.Sleep(2 * time.Millisecond)
	reg := params.NewMemory(nil)
	v, err := reg.Set(ctx, backfilltest.JobName, params.Values{"factor": int64(5)}, "test")
	if err != nil {
		t.Fatal(err)
	}
	a.Params = reg
	in.Backfill, in.Options.Write, in.Options.Params = "bf-replace", "replace", "current"
	r, _, err = runChunk(t, a, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (outputs.WriteCounts{Replaced: len(triggers)}); r.WriteCounts != want {
		t.Fatalf("replace: %+v, want %+v", r, want)
	}
	for _, e := range triggers {
		now, old := latest(e.Key, time.Time{}), latest(e.Key, beforeReplace)
		if now.ParamVersion != v || old.ParamVersion != 0 || now.ID != old.ID {
			t.Fatalf("%s: latest %+v, known before the replace %+v", e.Key, now, old)
		}
		if now.Features["score"] != old.Features["score"].(int64)*5/3 {
			t.Fatalf("%s: score %v after the replace, %v before", e.Key, now.Features["score"], old.Features["score"])
		}
	}
	if !backfilltest.Same(latest(triggers[0].Key, beforeReplace), before) {
		t.Fatal("the as-known-at read before the replace does not return the live record")
	}
	// Redone after a crash, the replace stores no third version.
	r, _, err = runChunk(t, a, in, nil)
	if err != nil || r.Replaced != len(triggers) {
		t.Fatalf("redone replace: %+v %v", r, err)
	}
	h, err := st.History(ctx, eventcenter.HistoryQuery{Source: src, Key: triggers[0].Key, From: backfilltest.T0, To: backfilltest.T0.Add(48 * time.Hour)})
	if err != nil || len(h) != 2 {
		t.Fatalf("%d versions after a redone replace (%v), want 2", len(h), err)
	}
}

// A backfill to the job's own outputs writes its feature store outputs in
// the backfill's write mode too, and counts them.
func TestJobOutputsFill(t *testing.T) {
	st, a, evs := fixture(t, 500)
	a.Jobs = activities.NewJobs(backfilltest.Job(job.Outputs(outputs.FeatureStore(st, "out.jobsink"))))
	triggers := backfilltest.Triggers(evs)
	in := activities.ChunkInput{Backfill: "bf-job", Job: backfilltest.JobName, From: backfilltest.T0, To: backfilltest.T0.Add(span)}
	for i, want := range []outputs.WriteCounts{{Written: triggers}, {Unchanged: triggers}} {
		if i == 1 {
			in.Backfill = "bf-job-again"
		}
		r, _, err := runChunk(t, a, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.WriteCounts != want {
			t.Fatalf("run %d: %+v, want %+v", i, r.WriteCounts, want)
		}
	}
}
