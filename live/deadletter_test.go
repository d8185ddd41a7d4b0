package live_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/live/livetest"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

// TestWorkerDeadLetters runs the dead-letter scenario on the in-process
// broker.
func TestWorkerDeadLetters(t *testing.T) { testDeadLetters(t, livetest.Fake(t)) }

// TestWorkerDeadLettersKafka runs it on the real Kafka of the harness.
func TestWorkerDeadLettersKafka(t *testing.T) { testDeadLetters(t, testenv.KafkaBrokers(t)) }

// testDeadLetters: one batch holds good triggers and two that fail on the
// job's own fault: one whose features cannot be stored (an empty entity)
// and one whose logic fetches with an empty foreign key (an invalid fetch).
// The good ones are output; each bad one is dead-lettered once, with the
// job, its version, the trigger's identity and the error, and is not
// retried; the worker keeps running and outputs the next trigger.
func testDeadLetters(t *testing.T, brokers []string) {
	ctx := context.Background()
	topic := livetest.UniqueTopic("test.apps")
	livetest.CreateTopic(t, brokers, topic, 1)
	dlq := topic + ".dead"
	st := openStore(t)
	out := &collect{}
	j := job.MustNew("dead-letters", func(c *job.Context) (eventcenter.Row, error) {
		tr := c.Trigger()
		user, _ := tr.After["user"].(string)
		if tr.Key == "a2" {
			user = "" // a bug of the logic: an empty foreign key
		}
		if _, err := c.Get("test.users", user); err != nil && !errors.Is(err, job.ErrNotFound) {
			return nil, err
		}
		return eventcenter.Row{"n": int64(1)}, nil
	}, job.Trigger("test.apps"), job.Version("3"), job.Outputs(out, outputs.FeatureStore(st, "")),
		job.Entity(func(e *eventcenter.Event) string {
			if e.Key == "a1" {
				return "" // a bug of the entity function
			}
			return e.Key
		}))
	w, err := live.New(j, live.Config{Brokers: brokers, Topic: topic, Group: topic, Store: st, DeadLetterTopic: dlq,
		Backoff: time.Millisecond, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	p := livetest.NewProducer(t, brokers, topic, wire.JSON)
	if err := p.Produce(ctx, app(0), app(1), app(2), app(3)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the batch", func() bool { return w.Stats().Runs == 4 })
	if err := p.Produce(ctx, app(4)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next trigger", func() bool { return w.Stats().Runs == 5 })

	var entities []string
	for _, r := range out.all() {
		entities = append(entities, r.Entity)
	}
	if got := strings.Join(entities, ","); got != "a0,a3,a4" {
		t.Errorf("outputs %s, want a0,a3,a4", got)
	}
	s := w.Stats()
	if s.DeadLetters != 2 || s.Retries != 0 || s.ByOutcome[job.Failed] != 2 || s.ByOutcome[job.OK] != 3 {
		t.Errorf("stats %+v: want 2 dead letters, no retries", s)
	}
	want := map[string]string{"a1": "empty entity", "a2": "invalid fetch"}
	for _, r := range livetest.Consume(t, brokers, dlq, 2, 30*time.Second) {
		var d live.DeadLetter
		if err := json.Unmarshal(r.Value, &d); err != nil {
			t.Fatalf("dead letter %s: %v", r.Value, err)
		}
		tr := app(int(d.Offset))
		why, ok := want[d.Trigger.Key]
		if !ok || string(r.Key) != tr.Key || d.Job != "dead-letters" || d.JobVersion != "3" || d.Outcome != "failed" ||
			d.Trigger != (live.DeadTrigger{Source: "test.apps", Key: tr.Key, Time: tr.Time, Pos: [2]uint64{0, tr.Pos.Offset}}) ||
			d.Topic != topic || !strings.Contains(d.Error, why) {
			t.Errorf("dead letter %s", r.Value)
		}
		delete(want, d.Trigger.Key)
	}
	if len(want) > 0 {
		t.Errorf("not dead-lettered: %v", want)
	}
}

// outageStore fails every as-of read, as a store that is down.
type outageStore struct {
	eventcenter.Store
}

func (outageStore) AsOf(context.Context, eventcenter.AsOf) (eventcenter.Event, error) {
	return eventcenter.Event{}, errors.New("dial tcp: connection refused")
}

// TestWorkerStoreOutage: runs failing on a store outage are retried with
// backoff, a bounded number of times, then the worker stops with the error
// (the batch stays uncommitted for the restart); nothing is dead-lettered.
func TestWorkerStoreOutage(t *testing.T) {
	brokers := livetest.Fake(t)
	ctx := context.Background()
	topic := livetest.UniqueTopic("test.apps")
	livetest.CreateTopic(t, brokers, topic, 1)
	out := &collect{}
	j := job.MustNew("outage", func(c *job.Context) (eventcenter.Row, error) {
		_, err := c.Get("test.users", "u1")
		return eventcenter.Row{"n": int64(1)}, err
	}, job.Trigger("test.apps"), job.Outputs(out))
	w, err := live.New(j, live.Config{Brokers: brokers, Topic: topic, Store: outageStore{openStore(t)}, Backoff: time.Millisecond, MaxAttempts: 4})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { done <- w.Run(rctx) }()
	p := livetest.NewProducer(t, brokers, topic, wire.JSON)
	if err := p.Produce(ctx, app(0)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, job.ErrFetch) || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "4 attempts") {
			t.Fatalf("worker stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker retried a store outage without bound")
	}
	if s := w.Stats(); s.Retries != 3 || s.DeadLetters != 0 || len(out.all()) != 0 {
		t.Fatalf("stats %+v, %d outputs", s, len(out.all()))
	}
}

// refusingStore refuses, as invalid, every batch holding an event of key
// bad (as a store with stricter bounds than the wire format refuses one).
type refusingStore struct {
	eventcenter.Store
	bad string
}

func (s refusingStore) Append(ctx context.Context, evs []eventcenter.Event) error {
	for i := range evs {
		if evs[i].Key == s.bad {
			return &eventcenter.InvalidEventError{Index: i, Source: evs[i].Source, Key: evs[i].Key, Field: "after", Reason: "too large"}
		}
	}
	return s.Store.Append(ctx, evs)
}

// pickyOutput refuses, as invalid, every batch holding the record of
// entity bad, and stores nothing of such a batch.
type pickyOutput struct {
	collect
	bad string
}

func (o *pickyOutput) Write(ctx context.Context, recs []job.Record) error {
	for _, r := range recs {
		if r.Entity == o.bad {
			return fmt.Errorf("%w: entity %s: too large", eventcenter.ErrInvalidEvent, r.Entity)
		}
	}
	return o.collect.Write(ctx, recs)
}

// TestWorkerRefusals: a trigger event the store refuses and a record an
// output refuses are dead letters; the rest of their batch is stored and
// output.
func TestWorkerRefusals(t *testing.T) {
	brokers := livetest.Fake(t)
	ctx := context.Background()
	topic := livetest.UniqueTopic("test.apps")
	livetest.CreateTopic(t, brokers, topic, 1)
	st := openStore(t)
	out := &pickyOutput{bad: "a2"}
	j := job.MustNew("refusals", func(c *job.Context) (eventcenter.Row, error) {
		return eventcenter.Row{"n": int64(1)}, nil
	}, job.Trigger("test.apps"), job.Outputs(out))
	dlq := topic + ".dead"
	w, err := live.New(j, live.Config{Brokers: brokers, Topic: topic, Store: refusingStore{st, "a1"}, DeadLetterTopic: dlq, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	p := livetest.NewProducer(t, brokers, topic, wire.JSON)
	if err := p.Produce(ctx, app(0), app(1), app(2), app(3)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dead letters", func() bool { return w.Stats().DeadLetters == 2 })
	var entities []string
	for _, r := range out.all() {
		entities = append(entities, r.Entity)
	}
	if got := strings.Join(entities, ","); got != "a0,a3" {
		t.Errorf("outputs %s, want a0,a3", got)
	}
	for _, k := range []string{"a0", "a2", "a3"} {
		if _, err := st.AsOf(ctx, eventcenter.AsOf{Source: "test.apps", Key: k, Time: t0.Add(time.Hour)}); err != nil {
			t.Errorf("trigger %s not stored: %v", k, err)
		}
	}
	want := map[string]string{"a1": "invalid", "a2": "refused"}
	for _, r := range livetest.Consume(t, brokers, dlq, 2, 30*time.Second) {
		var d live.DeadLetter
		if err := json.Unmarshal(r.Value, &d); err != nil {
			t.Fatalf("dead letter %s: %v", r.Value, err)
		}
		if want[d.Trigger.Key] != d.Outcome || !strings.Contains(d.Error, "too large") {
			t.Errorf("dead letter %s", r.Value)
		}
		delete(want, d.Trigger.Key)
	}
	if len(want) > 0 {
		t.Errorf("not dead-lettered: %v", want)
	}
}

// TestWorkerUnknownSource: with a source registry, a fetch of a source
// that is neither registered nor a job's features fails at once as an
// invalid fetch, even under FetchStrong: a dead letter naming the source,
// not a stale run after the whole wait timeout.
func TestWorkerUnknownSource(t *testing.T) {
	reg, err := source.Parse([]byte(`
sources:
  - name: test.apps
    kind: http
  - name: test.users
    kind: http
`))
	if err != nil {
		t.Fatal(err)
	}
	brokers := livetest.Fake(t)
	ctx := context.Background()
	topic := source.TopicName("test.apps")
	livetest.CreateTopic(t, brokers, topic, 1)
	st := openStore(t)
	for _, src := range []string{"test.users", "feature.other"} {
		if err := st.AdvanceWatermark(ctx, src, 0, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	out := &collect{}
	j := job.MustNew("typo", func(c *job.Context) (eventcenter.Row, error) {
		for _, src := range []string{"test.users", "feature.other", "test.userz"} {
			if _, err := c.Get(src, "u1"); err != nil && !errors.Is(err, job.ErrNotFound) {
				return nil, err
			}
		}
		return eventcenter.Row{"n": int64(1)}, nil
	}, job.Trigger("test.apps"), job.Consistency(job.FetchStrong), job.WaitTimeout(time.Minute), job.Outputs(out))
	dlq := livetest.UniqueTopic("test.dead")
	w, err := live.New(j, live.Config{Brokers: brokers, Sources: reg, Store: st, DeadLetterTopic: dlq})
	if err != nil {
		t.Fatal(err)
	}
	startWorker(t, w)
	p := livetest.NewProducer(t, brokers, topic, wire.JSON)
	start := time.Now()
	if err := p.Produce(ctx, app(1)); err != nil {
		t.Fatal(err)
	}
	recs := livetest.Consume(t, brokers, dlq, 1, 30*time.Second)
	var d live.DeadLetter
	if err := json.Unmarshal(recs[0].Value, &d); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Error, `unknown source "test.userz"`) || time.Since(start) > 10*time.Second || len(out.all()) != 0 {
		t.Fatalf("after %v: dead letter %+v, %d outputs", time.Since(start), d, len(out.all()))
	}
}
