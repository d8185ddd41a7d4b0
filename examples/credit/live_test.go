package credit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/live/livetest"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/wire"
)

// TestLive runs the credit job live against the harness's real Kafka and
// RabbitMQ: applications produced to Kafka come out as features in the
// feature store and on a RabbitMQ exchange.
func TestLive(t *testing.T) {
	runLive(t, testenv.KafkaBrokers(t), testenv.AMQPURL(t))
}

// TestLiveKfake is TestLive on an in-process Kafka-protocol broker, with
// RabbitMQ when the harness has it: the same path, always runnable.
func TestLiveKfake(t *testing.T) {
	runLive(t, livetest.Fake(t), os.Getenv("TIDEMARK_AMQP_URL"))
}

func runLive(t *testing.T, brokers []string, amqpURL string) {
	ctx := context.Background()
	// The event center on disk, as in production. The ingest has stored the
	// applicants' history but its watermarks lag: FetchStrong runs wait.
	st := openStoreAt(t, embedded.Config{Dir: t.TempDir()}, t0.Add(-time.Minute))
	registry := params.NewEventCenter(st, nil)
	topic := livetest.UniqueTopic("mysql.loan.applications")
	livetest.CreateTopic(t, brokers, topic, 3)

	outs := []job.Output{outputs.FeatureStore(st, "")}
	var deliveries <-chan amqp.Delivery
	if amqpURL != "" {
		exchange := fmt.Sprintf("tidemark.test.credit.%d", time.Now().UnixNano())
		rmq, err := outputs.RabbitMQ(outputs.RabbitMQConfig{URL: amqpURL, Exchange: exchange, Kind: "topic"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rmq.Close() })
		if err := rmq.Write(ctx, nil); err != nil { // declares the exchange
			t.Fatal(err)
		}
		deliveries = bindQueue(t, amqpURL, exchange)
		outs = append(outs, rmq)
	} else {
		t.Log("TIDEMARK_AMQP_URL not set: RabbitMQ output not exercised here")
	}
	j, err := credit.New(job.Consistency(job.FetchStrong), job.WaitTimeout(20*time.Second), job.Outputs(outs...))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	runs := map[string]live.Run{}
	w, err := live.New(j, live.Config{Brokers: brokers, Topic: topic, Group: topic + ".credit", Store: st, Params: registry,
		OnRun: func(r live.Run) {
			mu.Lock()
			runs[r.Trigger.Key] = r
			mu.Unlock()
		}})
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
	nRuns := func() int { mu.Lock(); defer mu.Unlock(); return len(runs) }

	p := livetest.NewProducer(t, brokers, topic, wire.JSON)
	apps := []eventcenter.Event{application(1, "u1", "20000.00"), application(2, "u2", "100.00"), application(3, "u1", "90000.00")}
	if err := p.Produce(ctx, apps...); err != nil {
		t.Fatal(err)
	}
	// The runs wait for the fetched sources' watermarks; the ingest catches
	// up a little later.
	time.Sleep(300 * time.Millisecond)
	if n := nRuns(); n != 0 {
		t.Fatalf("%d runs finished before the watermarks reached their time", n)
	}
	for _, src := range []string{credit.Profiles, credit.Orders, credit.Repayments} {
		if err := st.AdvanceWatermark(ctx, src, 0, t0.Add(2*day)); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "3 runs", func() bool { return nRuns() == 3 })

	want := map[string]eventcenter.Row{}
	for _, a := range apps {
		res, err := job.Evaluate(ctx, j, a, &job.Env{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		want[a.Key] = res.Record.Features
	}
	got := map[string]job.Record{}
	waits := 0
	for _, a := range apps {
		fe, err := st.AsOf(ctx, eventcenter.AsOf{Source: job.FeatureSource(credit.Name), Key: a.Key, Time: a.Time})
		if err != nil {
			t.Fatalf("%s not in the feature store: %v", a.Key, err)
		}
		r := job.RecordFromEvent(credit.Name, &fe)
		got[a.Key] = r
		if !reflect.DeepEqual(r.Features, want[a.Key]) || r.JobVersion != credit.Version || r.ParamVersion != 0 {
			t.Errorf("%s in the feature store: %+v, want %v", a.Key, r, want[a.Key])
		}
		mu.Lock()
		run := runs[a.Key]
		mu.Unlock()
		if run.Outcome != job.OK || run.Stats.Fetches != 3 {
			t.Errorf("%s: run %+v", a.Key, run)
		}
		waits += run.Stats.Waits
	}
	if waits == 0 {
		t.Error("no run waited for a watermark")
	}
	if deliveries != nil {
		msgs := receive(t, deliveries, 3)
		for _, m := range msgs {
			checkMessage(t, m, got[m.rec.Entity], 0)
		}
	}

	// An operator tightens a parameter: the next application uses it, no restart.
	if _, err := registry.Set(ctx, credit.Name, params.Values{"max_open_orders": 2}, "ops"); err != nil {
		t.Fatal(err)
	}
	app4 := applicationAt(4, "u1", "20000.00", time.Now())
	if err := p.Produce(ctx, app4); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the 4th run", func() bool { return nRuns() == 4 })
	fe, err := st.AsOf(ctx, eventcenter.AsOf{Source: job.FeatureSource(credit.Name), Key: "app-4", Time: app4.Time})
	if err != nil {
		t.Fatal(err)
	}
	r4 := job.RecordFromEvent(credit.Name, &fe)
	if r4.ParamVersion != 1 || r4.Features["eligible"] != false || r4.Features["reasons"] != "too many open orders" {
		t.Fatalf("after the change: %+v", r4)
	}
	if deliveries != nil {
		checkMessage(t, receive(t, deliveries, 1)[0], r4, 1)
	}

	// The same job as a backfill over the stored applications, with the
	// parameter versions current at each trigger's time, gives the records
	// the live runs gave.
	dir := t.TempDir()
	sink, err := outputs.JSONLines(outputs.Dir(dir), "credit/chunk-0000.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	replay := st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{credit.Applications}, From: t0, To: time.Now().Add(time.Hour)})
	sum, err := job.RunAll(ctx, j, &job.Env{Mode: job.Backfill, Store: st, Outputs: []job.Output{sink},
		Params: job.ParamsAsOfTrigger(registry)}, replay, job.RunOptions{})
	if err != nil || sum.Counts[job.OK] != 4 {
		t.Fatalf("backfill: %+v %v", sum, err)
	}
	got["app-4"] = r4
	if err := sink.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var back []job.Record
	b, err := os.ReadFile(filepath.Join(dir, "credit/chunk-0000.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var r job.Record
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		back = append(back, r)
	}
	if len(back) != 4 {
		t.Fatalf("backfill wrote %d records", len(back))
	}
	for _, r := range back {
		live := got[r.Entity]
		if r.ID != live.ID || r.ParamVersion != live.ParamVersion || r.JobVersion != live.JobVersion || !sameJSON(r.Features, live.Features) {
			t.Errorf("backfill record %s differs from live:\n%+v\n%+v", r.Entity, r, live)
		}
	}
}

type message struct {
	d   amqp.Delivery
	rec job.Record
}

func receive(t *testing.T, deliveries <-chan amqp.Delivery, n int) []message {
	t.Helper()
	var out []message
	for len(out) < n {
		select {
		case d := <-deliveries:
			var r job.Record
			if err := json.Unmarshal(d.Body, &r); err != nil {
				t.Fatal(err)
			}
			out = append(out, message{d, r})
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d messages received", len(out), n)
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].rec.Entity < out[k].rec.Entity })
	return out
}

func checkMessage(t *testing.T, m message, want job.Record, paramVersion int64) {
	t.Helper()
	if m.d.MessageId != want.ID || m.rec.ID != want.ID || m.d.RoutingKey != credit.Name ||
		m.d.Headers[outputs.HeaderJobVersion] != credit.Version || m.d.Headers[outputs.HeaderParamVersion] != paramVersion ||
		m.rec.JobVersion != credit.Version || int64(m.rec.ParamVersion) != paramVersion || !sameJSON(m.rec.Features, want.Features) {
		t.Errorf("message %s: %+v %+v\nwant %+v", m.rec.Entity, m.d.Headers, m.rec, want)
	}
}

// sameJSON compares feature rows by their JSON form (JSON numbers come
// back as float64).
func sameJSON(a, b eventcenter.Row) bool {
	var x, y any
	for _, c := range []struct {
		row eventcenter.Row
		to  *any
	}{{a, &x}, {b, &y}} {
		j, err := json.Marshal(c.row)
		if err != nil || json.Unmarshal(j, c.to) != nil {
			return false
		}
	}
	return reflect.DeepEqual(x, y)
}

func bindQueue(t *testing.T, url, exchange string) <-chan amqp.Delivery {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "#", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	d, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
