package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/testsuite"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/api"
	"github.com/tidemark-dev/tidemark/calls"
	"github.com/tidemark-dev/tidemark/catalog"
	"github.com/tidemark-dev/tidemark/client"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/source"
)

// callStack is a callable job running live on the real Kafka, an API server
// with a Caller, and a client with a token.
type callStack struct {
	name   string
	store  eventcenter.Store
	client *client.Client
	runs   atomic.Int64
	amqp   string
	url    string
	// bare is the body of the server's /bare route (benchmarks).
	bare atomic.Pointer[[]byte]
}

// doubler is the callable job's logic: {"double": amount*2}, after
// sleep_ms milliseconds if the call asks.
func (cs *callStack) doubler(c *job.Context) (eventcenter.Row, error) {
	cs.runs.Add(1)
	row := c.Trigger().After
	if ms, ok := row["sleep_ms"].(int64); ok {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	a, _ := row["amount"].(int64)
	if a < 0 {
		return nil, fmt.Errorf("amount %d is negative", a)
	}
	return eventcenter.Row{"double": 2 * a}, nil
}

// amountFilter is the callable job's schema: an integer amount.
var amountFilter = job.Where("amount is an integer", func(e *eventcenter.Event) bool {
	_, ok := e.After["amount"].(int64)
	return ok
})

func startCallStack(t testing.TB) *callStack {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	amqpURL := testenv.AMQPURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	suffix := fmt.Sprintf("%d", time.Now().UnixNano())
	cs := &callStack{name: "calltest-" + suffix, store: openStore(t, nil), amqp: amqpURL}
	resultsTopic := "tidemark.test.call-results." + suffix

	kcl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kcl.Close)
	if err := source.EnsureTopics(ctx, kcl, 1, calls.Topic(cs.name)); err != nil {
		t.Fatal(err)
	}
	out, err := calls.NewOutput(calls.OutputConfig{Store: cs.store, Client: kcl, ResultsTopic: resultsTopic, AMQPURL: amqpURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	j, err := job.New(cs.name, cs.doubler, job.Trigger(calls.Source(cs.name), amountFilter), job.Outputs(out))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Publish(ctx, cs.store, j); err != nil {
		t.Fatal(err)
	}
	publish(t, cs.store, "notcallable", "test.apps")
	// The call source is an http source of the worker's registry: events
	// take their Kafka positions, as the API stores them.
	registry := &source.Config{Sources: []source.Source{{Name: calls.Source(cs.name), Kind: source.KindHTTP, Topic: calls.Topic(cs.name)}}}
	if err := registry.Validate(); err != nil {
		t.Fatal(err)
	}
	w, err := live.New(j, live.Config{Brokers: brokers, Store: cs.store, Sources: registry, DeadLetterTopic: live.DeadLetterTopic("tidemark.test.deadletter", cs.name)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() { done <- w.Run(ctx) }()
	// The worker joins its group and makes its dead-letter topic, which
	// the Caller then finds at once.
	for !w.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	caller, err := calls.NewCaller(calls.CallerConfig{Store: cs.store, Brokers: brokers, ResultsTopic: resultsTopic, DeadLetterPrefix: "tidemark.test.deadletter"})
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- caller.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
		caller.Close()
	})
	<-caller.Ready()
	srv, err := api.New(api.Config{Store: cs.store, Auth: testAuth, Caller: caller, MaxCallTimeout: 20 * time.Second, Jobs: []*job.Job{j}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", srv)
	mux.HandleFunc("/bare", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if b := cs.bare.Load(); b != nil {
			w.Write(*b)
		}
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	cs.client = client.New(hs.URL, client.WithToken("t-reader"), client.WithHTTPClient(newDocChecker(t)))
	cs.url = hs.URL
	return cs
}

// calls counts the stored calls of the stack's job.
func (cs *callStack) storedCalls(t testing.TB) int {
	n := 0
	for _, err := range cs.store.Replay(context.Background(), eventcenter.ReplayQuery{Sources: []string{calls.Source(cs.name)}, From: eventcenter.MinTime, To: eventcenter.AllTime.To}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func TestCalls(t *testing.T) {
	cs := startCallStack(t)
	ctx := context.Background()
	c := cs.client

	t.Run("sync", func(t *testing.T) {
		before := cs.runs.Load()
		res, err := c.Call(ctx, cs.name, map[string]any{"amount": 21}, client.CallOptions{Timeout: 15 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if res.Record == nil {
			t.Fatalf("no record within the timeout: %+v", res)
		}
		if got := res.Record.Features["double"]; got != 42.0 {
			t.Fatalf("double = %v, want 42", got)
		}
		if res.Record.Trigger.Source != calls.Source(cs.name) || calls.ID(cs.name, res.Record.Trigger.Key) != res.ID {
			t.Fatalf("record of trigger %v, call id %q", res.Record.Trigger, res.ID)
		}
		if n := cs.runs.Load() - before; n != 1 {
			t.Fatalf("%d runs, want 1", n)
		}
		// The API and the worker stored one event of the call.
		if n := cs.storedCalls(t); n != 1 {
			t.Fatalf("%d call events stored, want 1", n)
		}
		// The poll of an answered call gives the same record.
		p, err := c.Poll(ctx, res.ID)
		if err != nil || p.Record == nil || p.Record.ID != res.Record.ID {
			t.Fatalf("poll: %+v, %v", p, err)
		}
	})

	t.Run("timeout then poll", func(t *testing.T) {
		res, err := c.Call(ctx, cs.name, map[string]any{"amount": 5, "sleep_ms": 1500}, client.CallOptions{Timeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if res.Record != nil || res.ID == "" {
			t.Fatalf("want 202 with an id, got %+v", res)
		}
		p, err := c.Poll(ctx, res.ID)
		if err != nil || p.Record != nil {
			t.Fatalf("poll at once: %+v, %v (want 202)", p, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		rec, err := c.Wait(wctx, res.ID, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Features["double"] != 10.0 {
			t.Fatalf("double = %v, want 10", rec.Features["double"])
		}
	})

	t.Run("failed call", func(t *testing.T) {
		start := time.Now()
		_, err := c.Call(ctx, cs.name, map[string]any{"amount": -1}, client.CallOptions{Timeout: 15 * time.Second})
		var p *api.Problem
		if !errors.As(err, &p) || p.Status != http.StatusUnprocessableEntity || p.Type != "urn:tidemark:problem:call-failed" ||
			p.Extensions["outcome"] != "failed" || !strings.Contains(fmt.Sprint(p.Extensions["error"]), "amount -1 is negative") {
			t.Fatalf("a call the job fails on: %v (%+v), want 422 call-failed", err, p)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the failure took %v to arrive", d)
		}
		_, err = c.Poll(ctx, fmt.Sprint(p.Extensions["id"]))
		if !errors.As(err, &p) || p.Status != http.StatusUnprocessableEntity {
			t.Fatalf("poll of a failed call: %v, want 422", err)
		}
	})

	t.Run("rabbitmq reply", func(t *testing.T) {
		conn, err := amqp.Dial(cs.amqp)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		exchange := "tidemark.test.replies." + cs.name
		if err := ch.ExchangeDeclare(exchange, "direct", false, true, false, false, nil); err != nil {
			t.Fatal(err)
		}
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(q.Name, "scoring", exchange, false, nil); err != nil {
			t.Fatal(err)
		}
		msgs, err := ch.Consume(q.Name, "", true, true, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Timeout 0: answered 202 at once; the result comes by message.
		res, err := c.Call(ctx, cs.name, map[string]any{"amount": 7}, client.CallOptions{Timeout: time.Nanosecond, ReplyTo: "amqp://" + exchange + "/scoring"})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-msgs:
			var rec job.Record
			if err := json.Unmarshal(m.Body, &rec); err != nil {
				t.Fatal(err)
			}
			if m.CorrelationId != res.ID || rec.Features["double"] != 14.0 || m.MessageId != rec.ID {
				t.Fatalf("reply correlation %q message %q, record %+v; want call %q, double 14", m.CorrelationId, m.MessageId, rec, res.ID)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no reply on the RabbitMQ queue")
		}
	})

	// A reply_to naming an exchange that does not exist is the caller's
	// mistake: the call is answered (and pollable) without the reply, and
	// the job's worker goes on. It used to retry the reply until it gave
	// up and stopped, and the redelivered call stopped it again.
	t.Run("reply to a missing exchange", func(t *testing.T) {
		o := client.CallOptions{Timeout: 15 * time.Second, ReplyTo: "amqp://tidemark-test-missing-" + cs.name + "/x"}
		res, err := c.Call(ctx, cs.name, map[string]any{"amount": 4}, o)
		if err != nil || res.Record == nil || res.Record.Features["double"] != 8.0 {
			t.Fatalf("call with a missing exchange: %+v, %v", res, err)
		}
		next, err := c.Call(ctx, cs.name, map[string]any{"amount": 5}, client.CallOptions{Timeout: 15 * time.Second})
		if err != nil || next.Record == nil {
			t.Fatalf("the next call: %+v, %v", next, err)
		}
	})

	t.Run("idempotent retry", func(t *testing.T) {
		before := cs.runs.Load()
		o := client.CallOptions{Timeout: 15 * time.Second, IdempotencyKey: "order-" + cs.name}
		first, err := c.Call(ctx, cs.name, map[string]any{"amount": 50}, o)
		if err != nil || first.Record == nil {
			t.Fatalf("first: %+v, %v", first, err)
		}
		for range 3 {
			again, err := c.Call(ctx, cs.name, map[string]any{"amount": 50}, o)
			if err != nil || again.Record == nil || again.ID != first.ID || again.Record.ID != first.Record.ID {
				t.Fatalf("retry: %+v, %v; first %+v", again, err, first)
			}
		}
		// The key again with another body is refused.
		_, err = c.Call(ctx, cs.name, map[string]any{"amount": 51}, o)
		var p *api.Problem
		if !errors.As(err, &p) || p.Status != http.StatusUnprocessableEntity {
			t.Fatalf("the key with another body: %v, want 422", err)
		}
		// A retry while the first is still running waits for its result.
		o2 := client.CallOptions{Timeout: 50 * time.Millisecond, IdempotencyKey: "slow-" + cs.name}
		slow, err := c.Call(ctx, cs.name, map[string]any{"amount": 1, "sleep_ms": 800}, o2)
		if err != nil || slow.Record != nil {
			t.Fatalf("slow call: %+v, %v (want 202)", slow, err)
		}
		o2.Timeout = 15 * time.Second
		again, err := c.Call(ctx, cs.name, map[string]any{"amount": 1, "sleep_ms": 800}, o2)
		if err != nil || again.Record == nil || again.ID != slow.ID {
			t.Fatalf("retry of the slow call: %+v, %v", again, err)
		}
		time.Sleep(500 * time.Millisecond) // a second run, if any, would count by now
		if n := cs.runs.Load() - before; n != 2 {
			t.Fatalf("%d runs of 2 calls retried, want 2", n)
		}
	})

	// Idempotency keys are each principal's own: another principal using
	// a key first, with another body, neither blocks the key (it was 422)
	// nor hands over its call.
	t.Run("idempotency keys per principal", func(t *testing.T) {
		other := client.New(cs.url, client.WithToken("t-other"), client.WithHTTPClient(newDocChecker(t)))
		o := client.CallOptions{Timeout: 15 * time.Second, IdempotencyKey: "shared-" + cs.name}
		theirs, err := other.Call(ctx, cs.name, map[string]any{"amount": 7}, o)
		if err != nil || theirs.Record == nil {
			t.Fatalf("the other principal's call: %+v, %v", theirs, err)
		}
		mine, err := c.Call(ctx, cs.name, map[string]any{"amount": 8}, o)
		if err != nil || mine.Record == nil || mine.ID == theirs.ID || mine.Record.Features["double"] != 16.0 {
			t.Fatalf("my call with the key the other principal used: %+v, %v (theirs %s)", mine, err, theirs.ID)
		}
	})

	t.Run("refused", func(t *testing.T) {
		stored := cs.storedCalls(t)
		check := func(what string, err error, status int) {
			t.Helper()
			var p *api.Problem
			if !errors.As(err, &p) || p.Status != status {
				t.Fatalf("%s: %v, want %d", what, err, status)
			}
		}
		_, err := c.Call(ctx, cs.name, map[string]any{"_reply_to": "x"}, client.CallOptions{})
		check("reserved member", err, http.StatusBadRequest)
		_, err = c.Call(ctx, cs.name, map[string]any{"amount": "twelve"}, client.CallOptions{})
		check("a body the job's filters refuse", err, http.StatusBadRequest)
		_, err = c.Call(ctx, cs.name, map[string]any{"amount": 1}, client.CallOptions{Timeout: time.Minute})
		check("timeout over the cap", err, http.StatusBadRequest)
		_, err = c.Call(ctx, cs.name, map[string]any{"amount": 1}, client.CallOptions{ReplyTo: "smtp://x"})
		check("bad reply_to", err, http.StatusBadRequest)
		_, err = c.Call(ctx, "notcallable", map[string]any{"amount": 1}, client.CallOptions{})
		check("not callable", err, http.StatusConflict)
		_, err = c.Call(ctx, "nope", map[string]any{"amount": 1}, client.CallOptions{})
		check("unknown job", err, http.StatusNotFound)
		anon := client.New(cs.url, client.WithHTTPClient(newDocChecker(t)))
		_, err = anon.Call(ctx, cs.name, map[string]any{"amount": 1}, client.CallOptions{})
		check("no token", err, http.StatusUnauthorized)
		bad := client.New(cs.url, client.WithToken("forged"), client.WithHTTPClient(newDocChecker(t)))
		_, err = bad.Call(ctx, cs.name, map[string]any{"amount": 1}, client.CallOptions{})
		check("bad token", err, http.StatusUnauthorized)
		_, err = anon.Poll(ctx, calls.ID(cs.name, "k00000000000000000000000000000000"))
		check("poll without token", err, http.StatusUnauthorized)
		_, err = c.Poll(ctx, calls.ID(cs.name, "k00000000000000000000000000000000"))
		check("unknown call", err, http.StatusNotFound)
		_, err = c.Poll(ctx, "garbage")
		check("malformed call id", err, http.StatusNotFound)
		// The scheme is case-insensitive (RFC 9110), as auth.Middleware
		// reads it for the other routes.
		req, err := http.NewRequest("GET", cs.url+"/v1/calls/"+calls.ID(cs.name, "k00000000000000000000000000000000"), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "bearer t-reader")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("poll with a lower-case bearer scheme: %d, want 404", resp.StatusCode)
		}
		if n := cs.storedCalls(t); n != stored {
			t.Fatalf("%d calls stored by refused calls", n-stored)
		}
	})
}

// TestCallsReplay: a backfill whose trigger is the calls source (the
// backfill activity, in Temporal's activity test environment) re-evaluates
// the past calls, and its records equal the results the calls got.
func TestCallsReplay(t *testing.T) {
	cs := startCallStack(t)
	ctx := context.Background()
	want := map[string]job.Record{} // by record ID
	for i := range 5 {
		res, err := cs.client.Call(ctx, cs.name, map[string]any{"amount": i * 3}, client.CallOptions{Timeout: 15 * time.Second})
		if err != nil || res.Record == nil {
			t.Fatalf("call %d: %+v, %v", i, res, err)
		}
		want[res.Record.ID] = *res.Record
	}
	replayJob, err := job.New(cs.name, cs.doubler, job.Trigger(calls.Source(cs.name), amountFilter))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a := &activities.Backfill{Store: cs.store, Jobs: activities.NewJobs(replayJob)}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	in := activities.ChunkInput{Backfill: "replay-calls", Job: cs.name, From: eventcenter.MinTime, To: time.Now().Add(time.Minute),
		Options: activities.Options{Sink: "file://" + dir}}
	if _, err := env.ExecuteActivity(a.BackfillChunk, in); err != nil {
		t.Fatal(err)
	}
	got := map[string]job.Record{}
	files, err := filepath.Glob(filepath.Join(dir, "replay-calls", cs.name, "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no files of the backfill in %s: %v", dir, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var r job.Record
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			got[r.ID] = r
		}
	}
	if len(got) != len(want) {
		t.Fatalf("the backfill made %d records of %d calls", len(got), len(want))
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok || mustJSON(t, g) != mustJSON(t, w) {
			t.Fatalf("record %s: backfill %+v, call %+v", id, g, w)
		}
	}
}
