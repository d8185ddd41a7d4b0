package live_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/live/livetest"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/wire"
)

var t0 = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

type collect struct {
	mu   sync.Mutex
	recs []job.Record
}

func (c *collect) Name() string { return "collect" }
func (c *collect) Write(_ context.Context, recs []job.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, recs...)
	return nil
}
func (c *collect) all() []job.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]job.Record(nil), c.recs...)
}

func openStore(t testing.TB) *embedded.Store {
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func app(i int) eventcenter.Event {
	return eventcenter.Event{Source: "test.apps", Key: fmt.Sprint("a", i), Time: t0.Add(time.Duration(i) * time.Second),
		Pos: eventcenter.Position{Offset: uint64(i)}, Op: eventcenter.OpInsert, After: eventcenter.Row{"user": fmt.Sprint("u", i%3), "amount": int64(100 * i)}}
}

// startWorker runs w until the test ends.
func startWorker(t *testing.T, w *live.Worker) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWorker: the worker stores each trigger before its run, so a run sees
// its own trigger and everything stored before it; outputs land once even
// when Kafka redelivers a range; a parameter change applies to the next run
// without a restart; malformed records are skipped.
func TestWorker(t *testing.T) {
	brokers := livetest.Fake(t)
	ctx := context.Background()
	topic := livetest.UniqueTopic("test.apps")
	livetest.CreateTopic(t, brokers, topic, 3)
	st := openStore(t)
	if err := st.DeclareIndex(ctx, eventcenter.Index{Source: "test.apps", Name: "user", Column: "user"}); err != nil {
		t.Fatal(err)
	}
	reg := params.NewEventCenter(st, nil)
	out := &collect{}
	j := job.MustNew("apps-per-user", func(c *job.Context) (eventcenter.Row, error) {
		tr := c.Trigger()
		apps, err := c.Lookup("test.apps", "user", tr.After["user"])
		if err != nil {
			return nil, err
		}
		return eventcenter.Row{"apps": int64(len(apps)), "limit": c.Int("limit")}, nil
	}, job.Trigger("test.apps"), job.Version("1"), job.Outputs(out, outputs.FeatureStore(st, "")),
		job.Param(params.Decl{Name: "limit", Type: params.Int, Default: 2, Min: 0, Max: 9, Description: "limit"}))
	var runsMu sync.Mutex
	var runs []live.Run
	w, err := live.New(j, live.Config{Brokers: brokers, Topic: topic, Store: st, Params: reg, OnRun: func(r live.Run) {
		runsMu.Lock()
		runs = append(runs, r)
		runsMu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	p := livetest.NewProducer(t, brokers, topic, wire.JSON)
	// Three rounds of one application per user: each run sees the user's
	// earlier applications because their runs stored them (nothing else
	// stores test.apps here: no ingest).
	var evs []eventcenter.Event
	for i := range 9 {
		evs = append(evs, app(i))
	}
	for round := range 3 {
		if err := p.Produce(ctx, evs[3*round:3*round+3]...); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a round", func() bool { return len(out.all()) == 3*round+3 })
	}
	if err := p.ProduceRaw(ctx, "junk", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	for _, r := range out.all() {
		var i int
		fmt.Sscanf(r.Entity, "a%d", &i)
		if r.Features["apps"] != int64(i/3+1) || r.Features["limit"] != int64(2) || r.ParamVersion != 0 || r.JobVersion != "1" {
			t.Errorf("%s: %v (param version %d)", r.Entity, r.Features, r.ParamVersion)
		}
		if _, err := st.AsOf(ctx, eventcenter.AsOf{Source: "test.apps", Key: r.Entity, Time: r.Trigger.Time}); err != nil {
			t.Errorf("trigger %s not stored: %v", r.Entity, err)
		}
	}
	waitFor(t, "the malformed record", func() bool { return w.Stats().Malformed == 1 })
	// Declared at start, so the registry checks values.
	if _, err := reg.Set(ctx, j.Name(), params.Values{"limit": 10}, "op"); err == nil {
		t.Fatal("out-of-bounds value accepted")
	}
	if _, err := reg.Set(ctx, j.Name(), params.Values{"limit": 7}, "op"); err != nil {
		t.Fatal(err)
	}
	// Kafka redelivers a range (a producer retry, an offset reset): no new
	// outputs. Then a new event runs with the new parameter value.
	if err := p.Produce(ctx, evs[3:6]...); err != nil {
		t.Fatal(err)
	}
	if err := p.Produce(ctx, app(9)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "13 runs", func() bool { return w.Stats().Runs == 13 })
	recs := out.all()
	if len(recs) != 10 {
		t.Fatalf("%d records delivered, want 10 (redelivered triggers must not duplicate)", len(recs))
	}
	last := recs[9]
	if last.Entity != "a9" || last.Features["limit"] != int64(7) || last.ParamVersion != 1 {
		t.Fatalf("after the change: %+v", last)
	}
	fs, err := st.History(ctx, eventcenter.HistoryQuery{Source: "feature.apps-per-user", Key: "a4", From: t0, To: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 {
		t.Fatalf("feature store has %d events for a4", len(fs))
	}
	runsMu.Lock()
	defer runsMu.Unlock()
	for _, r := range runs {
		if r.Outcome != job.OK || r.Done.Before(r.Produced) {
			t.Errorf("run %+v", r)
		}
	}
}

// TestWorkerStale: a fetch-strong job whose fetched source's watermark
// does not arrive reports Stale, outputs nothing, and moves on.
func TestWorkerStale(t *testing.T) {
	brokers := livetest.Fake(t)
	ctx := context.Background()
	topic := livetest.UniqueTopic("test.apps")
	livetest.CreateTopic(t, brokers, topic, 1)
	st := openStore(t)
	out := &collect{}
	j := job.MustNew("stale", func(c *job.Context) (eventcenter.Row, error) {
		if _, err := c.Get("test.reports", c.Trigger().Key); err != nil && err != job.ErrNotFound {
			return nil, err
		}
		return eventcenter.Row{"x": 1}, nil
	}, job.Trigger("test.apps"), job.Consistency(job.FetchStrong), job.WaitTimeout(50*time.Millisecond), job.Outputs(out))
	w, err := live.New(j, live.Config{Brokers: brokers, Topic: topic, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	p := livetest.NewProducer(t, brokers, topic, wire.Binary)
	if err := p.Produce(ctx, app(1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a stale run", func() bool { return w.Stats().ByOutcome[job.Stale] == 1 })
	// The reports' watermark arrives: the next run completes.
	if err := st.AdvanceWatermark(ctx, "test.reports", 0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := p.Produce(ctx, app(2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an ok run", func() bool { return w.Stats().ByOutcome[job.OK] == 1 })
	if n := len(out.all()); n != 1 {
		t.Fatalf("%d outputs", n)
	}
}
