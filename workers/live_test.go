package workers_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/internal/backfilltest"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/live/livetest"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/wire"
	"github.com/tidemark-dev/tidemark/workers"
	"github.com/tidemark-dev/tidemark/workflows"
)

// TestLiveEqualsBackfill runs the job live over a Kafka stream (an
// in-process broker), with an operator changing a parameter halfway, then
// backfills the same period through Temporal with the parameter versions
// current at each trigger's time: the backfill's records are the live
// run's, record for record.
func TestLiveEqualsBackfill(t *testing.T) {
	ctx := context.Background()
	brokers := livetest.Fake(t)
	topic := livetest.UniqueTopic("test.apps")
	livetest.CreateTopic(t, brokers, topic, 3)
	st := openStore(t, "")

	const span = time.Hour
	var users, apps []eventcenter.Event
	for _, e := range backfilltest.Events(3000, 60, span) {
		if e.Source == backfilltest.Apps {
			apps = append(apps, e)
		} else {
			users = append(users, e)
		}
	}
	// The ingest has stored the users' changes.
	if err := backfilltest.Fill(ctx, st, users); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := backfilltest.T0.Add(-2 * time.Hour)
	registry := params.NewMemory(func() time.Time { mu.Lock(); defer mu.Unlock(); return clock })

	j := backfilltest.Job(job.Outputs(outputs.FeatureStore(st, "")))
	var runs atomic.Int64
	w, err := live.New(j, live.Config{Brokers: brokers, Topic: topic, Group: topic + ".live", Store: st, Params: registry,
		OnRun: func(live.Run) { runs.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitRuns := func(n int) {
		deadline := time.Now().Add(2 * time.Minute)
		for runs.Load() < int64(n) {
			if time.Now().After(deadline) {
				t.Fatalf("%d live runs, want %d", runs.Load(), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	p := livetest.NewProducer(t, brokers, topic, wire.JSON)
	half := len(apps) / 2
	if err := p.Produce(ctx, apps[:half]...); err != nil {
		t.Fatal(err)
	}
	waitRuns(half)
	// An operator changes the factor; the change is stamped at the event
	// time of the second half's first application.
	mu.Lock()
	clock = apps[half].Time
	mu.Unlock()
	if _, err := registry.Set(ctx, backfilltest.JobName, params.Values{"factor": 5}, "ops"); err != nil {
		t.Fatal(err)
	}
	if err := p.Produce(ctx, apps[half:]...); err != nil {
		t.Fatal(err)
	}
	waitRuns(len(apps))
	liveRecs, err := backfilltest.FeatureRecords(ctx, st, backfilltest.JobName, job.FeatureSource(backfilltest.JobName), backfilltest.T0, backfilltest.T0.Add(span))
	if err != nil {
		t.Fatal(err)
	}
	versions := map[params.Version]int{}
	for _, r := range liveRecs {
		versions[r.ParamVersion]++
	}
	if len(liveRecs) != backfilltest.Triggers(apps) || len(versions) != 2 {
		t.Fatalf("live wrote %d records with parameter versions %v", len(liveRecs), versions)
	}

	// The backfill of the same period, through Temporal.
	srv := server(t, false)
	c := dial(t, srv)
	startWorker(t, c, "live-eq", workers.Deps{Store: st, Jobs: []*job.Job{backfilltest.Job()}, Params: registry})
	dir := t.TempDir()
	var sum workflows.Summary
	err = backfill(t, c, "live-eq", "live-eq", workflows.BackfillInput{Job: backfilltest.JobName, From: backfilltest.T0, To: backfilltest.T0.Add(span),
		Chunk: workflows.Duration(7 * time.Minute), Parallelism: 3, Options: activities.Options{Sink: "file://" + dir, Params: "asof", SegmentEvents: 100}}).Get(ctx, &sum)
	if err != nil {
		t.Fatal(err)
	}
	back, _, err := backfilltest.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := backfilltest.Diff(back, liveRecs); len(d) > 0 {
		t.Fatalf("backfill differs from live:\n%s", strings.Join(d, "\n"))
	}
	if sum.Outputs != len(liveRecs) || sum.Errors != 0 {
		t.Fatalf("summary %+v, live %d records", sum, len(liveRecs))
	}
}
